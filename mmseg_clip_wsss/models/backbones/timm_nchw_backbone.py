"""mmseg's ``TIMMBackbone`` with channels-first outputs for every timm model."""
import torch
from mmseg.models.backbones import TIMMBackbone

from mmseg_clip_wsss.registry import MODELS


@MODELS.register_module()
class TIMMNCHWBackbone(TIMMBackbone):
    """:class:`mmseg.models.backbones.TIMMBackbone` whose feature maps are always (B, C, H, W).

    timm's feature extractors of Swin (and other ``NHWC`` models such as ConvNeXt-V2 variants)
    return channels-last maps (``feature_info``/``output_fmt == 'NHWC'`` in timm >= 0.9), while mmseg
    necks and heads expect channels-first maps. This wrapper permutes them when the timm feature
    extractor declares ``NHWC`` output and leaves ``NCHW`` models untouched. All arguments are those of
    ``TIMMBackbone`` (``model_name``, ``features_only``, ``pretrained``, ``checkpoint_path``,
    ``out_indices``, timm model kwargs such as ``img_size``/``window_size``...).
    """

    @property
    def channels_last(self) -> bool:
        """Whether the wrapped timm model returns (B, H, W, C) maps."""
        return str(getattr(self.timm_model, 'output_fmt', 'NCHW')).upper().endswith('NHWC')

    def forward(self, x: torch.Tensor):
        """Feature maps of ``x`` (B, 3, H, W), each (B, C_i, H_i, W_i)."""
        feats = super().forward(x)
        if not self.channels_last:
            return feats
        return [f.permute(0, 3, 1, 2).contiguous() for f in feats]
