"""Decode head that scores pixels against class text embeddings."""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.utils import ConfigType
from torch import Tensor

from mmseg_clip_wsss.registry import MODELS
from ..utils import clamped_scale, register_logit_scale
from .weak_decode_head import WeakDecodeHead


@MODELS.register_module()
class TextGuidedHead(WeakDecodeHead):
    """Text-guided decode head: cosine(pixel embedding, class text embedding) x learnable scale.

    The selected input feature goes through ``num_convs`` 3x3 conv blocks (``channels`` wide) and a 1x1
    projection to the text embedding dim ``embed_dim``; pixels and class embeddings are L2-normalised
    and their cosine similarity, times ``exp(logit_scale)`` (clamped to ``max_logit_scale``), is the
    score map (B, K, H, W). The class embeddings are an explicit argument of :meth:`forward`
    (the segmentor computes them once per call), so the head holds no text state.

    Weak mode losses (:meth:`loss_weak`): the multi-label loss on the pooled score maps
    (``loss_mlc``) and, if ``loss_itc`` is set, an image-text contrastive loss between the mean
    normalised pixel embedding of each image and the class text embeddings. Full mode: the per-pixel
    ``loss_decode`` of mmseg on ``gt_sem_seg``, so the head also works as a supervised open-vocabulary
    head.

    Args:
        in_channels (int): Channels of the selected input feature.
        channels (int): Channels of the conv blocks.
        num_classes (int): Number of classes K; must equal the text encoder's number of rows.
        embed_dim (int): Text embedding dim D.
        num_convs (int): 3x3 conv blocks before the projection (0: project the input directly).
            Defaults to 1.
        logit_scale_init (float): Initial scale (CLIP: 1 / 0.07). Defaults to 1 / 0.07.
        max_logit_scale (float): Upper clamp of the scale. Defaults to 100.
        learnable_logit_scale (bool): Learn the (log) scale. Defaults to True.
        loss_itc (dict, optional): Image-text contrastive loss config; None disables it. The head
            passes its scale; whether the loss uses it is the loss's rule
            (:meth:`ImageTextContrastiveLoss.scale`: a fixed ``temperature`` wins). Defaults to
            ``dict(type='ImageTextContrastiveLoss', temperature=0.07, loss_weight=0.1)``.
        in_index (int): Input feature index. Defaults to 0 (the neck's finest output).
        dropout_ratio (float): Dropout before the projection. Defaults to 0.1.
        **kwargs: :class:`WeakDecodeHead` / ``BaseDecodeHead`` arguments (``supervision``,
            ``loss_mlc`` -- default ``dict(type='MultiLabelScoreLoss', pooling='lse', lse_r=1.0)``,
            ``loss_decode``, ``norm_cfg``, ...).
    """

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 num_classes: int,
                 embed_dim: int,
                 num_convs: int = 1,
                 logit_scale_init: float = 1 / 0.07,
                 max_logit_scale: float = 100.0,
                 learnable_logit_scale: bool = True,
                 loss_itc: Optional[ConfigType] = dict(
                     type='ImageTextContrastiveLoss', temperature=0.07, loss_weight=0.1),
                 in_index: int = 0,
                 dropout_ratio: float = 0.1,
                 **kwargs):
        # log-sum-exp pooling sits between average and max pooling: it scores an image by its most
        # class-like pixels without ignoring the extent of the object
        kwargs.setdefault('loss_mlc', dict(type='MultiLabelScoreLoss', pooling='lse', lse_r=1.0))
        super().__init__(in_channels=in_channels, channels=channels, num_classes=num_classes,
                         in_index=in_index, dropout_ratio=dropout_ratio, **kwargs)
        self.embed_dim = embed_dim
        self.convs, out_channels = self.conv_stack(num_convs)
        self.proj = nn.Conv2d(out_channels, embed_dim, 1)
        register_logit_scale(self, logit_scale_init, max_logit_scale, learnable_logit_scale)
        self.loss_itc = self.build_weak_loss(loss_itc)

    @property
    def scale(self) -> Tensor:
        """Current multiplicative logit scale, ``exp(logit_scale)`` clamped to ``max_logit_scale``."""
        return clamped_scale(self.logit_scale, self.max_logit_scale)

    def embed_pixels(self, inputs: Union[List[Tensor], Tuple[Tensor]]) -> Tensor:
        """Pixel embeddings (B, D, H, W), not normalised."""
        x = self._transform_inputs(inputs)  # (B, C_in, H, W)
        x = self.convs(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.proj(x)

    def score(self, pixel_embeds: Tensor, text_embeds: Tensor) -> Tensor:
        """Cosine similarity x scale of (B, D, H, W) pixels and (K, D) classes -> (B, K, H, W)."""
        pixels = F.normalize(pixel_embeds, dim=1)
        text = F.normalize(text_embeds.to(pixels), dim=1)
        return self.scale * torch.einsum('bdhw,kd->bkhw', pixels, text)

    def _check_text(self, text_embeds: Optional[Tensor]) -> None:
        if text_embeds is None:
            raise ValueError('TextGuidedHead needs the class text embeddings: build it inside a '
                             'WSSSEncoderDecoder with '
                             '`text_encoder=dict(type="CLIPPromptTextEncoder", ...)` (or pass '
                             'text_embeds (K, D) to forward/loss/predict).')
        if text_embeds.shape != (self.num_classes, self.embed_dim):
            raise ValueError(f'TextGuidedHead: text embeddings of shape {tuple(text_embeds.shape)} '
                             'do not match (num_classes, embed_dim) = '
                             f'({self.num_classes}, {self.embed_dim}).')

    def forward(self, inputs: Union[List[Tensor], Tuple[Tensor]], text_embeds: Optional[Tensor] = None,
                return_embeds: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Score pixels against the classes.

        Args:
            inputs (list[Tensor]): Multi-level features (the neck's outputs).
            text_embeds (Tensor): (K, D) class embeddings.
            return_embeds (bool): Also return the pixel embeddings. Defaults to False.

        Returns:
            Tensor | tuple[Tensor, Tensor]: Score maps (B, K, H, W) [, pixel embeddings (B, D, H, W)].
        """
        self._check_text(text_embeds)
        pixel_embeds = self.embed_pixels(inputs)  # (B, D, H, W)
        scores = self.score(pixel_embeds, text_embeds)  # (B, K, H, W)
        return (scores, pixel_embeds) if return_embeds else scores

    def loss_weak(self, score_maps: Tensor, pixel_embeds: Tensor, text_embeds: Optional[Tensor],
                  image_labels: Tensor, weight: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Multi-label loss (+ image-text contrastive loss).

        Args:
            score_maps (Tensor): (B, K, H, W).
            pixel_embeds (Tensor): (B, D, H, W).
            text_embeds (Tensor): (K, D).
            image_labels (Tensor): (B, K) multi-hot (or soft targets in [0, 1]).
            weight (Tensor, optional): (B,) or (B, K) weights of the multi-label loss.

        Returns:
            dict[str, Tensor]: ``{loss_mlc.loss_name: ..., loss_itc.loss_name: ...}``.
        """
        losses = super().loss_weak(score_maps, pixel_embeds, text_embeds, image_labels, weight)
        if self.loss_itc is not None:
            self._check_text(text_embeds)
            image_embeds = F.normalize(pixel_embeds, dim=1).mean(dim=(2, 3))  # (B, D)
            losses[self.loss_itc.loss_name] = self.loss_itc(
                image_embeds, text_embeds.to(image_embeds), image_labels.to(image_embeds), self.scale)
        return losses
