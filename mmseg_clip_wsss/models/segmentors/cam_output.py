"""The CAM output of :class:`WSSSEncoderDecoder` (``test_cfg.output='cam'``): which classes an image
holds, and its CAMs over them.

An image of the pseudo-mask protocol carries its ``gt_image_labels``; a photo to segment does not, and
its classes are found here: by a CLIP checking the regions the CAMs claim (``test_cfg.verify_classes``,
:class:`CLIPRegionVerifier`), else by the pooled image-level scores of the head's multi-label loss.
"""
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from mmseg_clip_wsss.structures import IMAGE_LABELS, stack_image_labels
from ..data_preprocessor import denormalise_images
from .clip_region_verifier import CLIPRegionVerifier

__all__ = ['CAMOutput', 'build_class_verifier', 'rgb_pixels']

_KEY = 'model.test_cfg.verify_classes'


def build_class_verifier(cfg: Optional[dict], text_encoder) -> Optional[CLIPRegionVerifier]:
    """The CLIP of ``test_cfg.verify_classes``, by default the text encoder's model and weights.

    Args:
        cfg (dict, optional): :class:`CLIPRegionVerifier` arguments; None: no verifier.
        text_encoder (nn.Module, optional): The segmentor's text encoder (its class names are the
            ones checked).

    Returns:
        CLIPRegionVerifier | None: Built under ``fork_rng`` (building a CLIP draws random numbers,
        and training must stay as it was).

    Raises:
        ValueError: ``cfg`` is no dict, there is no text encoder, ``clip_model`` comes without
            ``clip_pretrained``, or the verifier refuses its arguments; each names the config key.
    """
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise ValueError(f'{_KEY} must be a dict of CLIPRegionVerifier arguments (dict() for the text '
                         f"encoder's CLIP) or None, got {cfg!r}; on the command line set a key of it, "
                         f'e.g. {_KEY}.region_threshold=0.5.')
    if text_encoder is None:
        raise ValueError(f'{_KEY} needs the class names of a text_encoder; set it to None for this '
                         'classifier.')
    if 'clip_model' in cfg and 'clip_pretrained' not in cfg:
        raise ValueError(f"{_KEY}.clip_model={cfg['clip_model']!r} needs its weights too: set "
                         f'{_KEY}.clip_pretrained (a pretrained tag or a checkpoint file).')
    defaults = dict(clip_model=text_encoder.model_name, clip_pretrained=text_encoder.pretrained)
    try:
        with torch.random.fork_rng(devices=[]):
            return CLIPRegionVerifier(**{**defaults, **cfg})
    except (TypeError, ValueError) as error:
        raise ValueError(f'{_KEY}: {error}') from error


def rgb_pixels(inputs: Tensor, data_preprocessor) -> Tensor:
    """(B, 3, H, W) RGB values in [0, 255] of ``inputs`` normalised by ``data_preprocessor``.

    mmcv loads BGR; without a channel conversion (mmseg's ``channel_conversion``, mmengine's private
    ``_channel_conversion``) the inputs are still BGR and are flipped here.
    """
    pixels = denormalise_images(inputs, data_preprocessor).permute(0, 3, 1, 2).float()
    pre = data_preprocessor
    if not getattr(pre, 'channel_conversion', getattr(pre, '_channel_conversion', False)):
        pixels = pixels.flip(1)
    return pixels


class CAMOutput:
    """CAMs as the prediction of a weakly supervised segmentor, over each image's classes.

    Not a module: the verifier's CLIP stays out of the segmentor's checkpoints. The segmentor is
    passed to each call, so thresholds read from its ``test_cfg`` at call time (an inferencer may set
    them after building).

    Args:
        verifier (CLIPRegionVerifier, optional): Checks the classes of images without labels.
        background_index (int, optional): Background class index, None without background.
    """

    def __init__(self, verifier: Optional[CLIPRegionVerifier], background_index: Optional[int]):
        self.verifier = verifier
        self.background_index = background_index

    def foreground_channels(self, num_classes: int) -> List[int]:
        """Class indices other than the background."""
        return [k for k in range(num_classes) if k != self.background_index]

    def set_class_prompts(self, class_prompts: Sequence[Sequence[str]]) -> None:
        """Give the verifier the prompts of a (new) class list (background row included)."""
        if self.verifier is not None:
            fg = self.foreground_channels(len(class_prompts))
            self.verifier.set_class_prompts([class_prompts[k] for k in fg])

    def predict(self, segmentor, inputs: Tensor, data_samples) -> Tensor:
        """CAMs (B, K, H, W) over each image's classes; with ``test_cfg.bg_threshold`` the background
        channel is that constant (the pseudo-mask protocol's ``bg_mode='threshold'`` rule)."""
        scores = segmentor._forward(inputs)  # (B, K, h, w)
        labels = self.image_labels(segmentor, scores, data_samples, inputs)
        cams = segmentor.scores_to_cams(scores, labels, size=inputs.shape[-2:])
        bg_threshold = segmentor.test_cfg.get('bg_threshold')
        if bg_threshold is not None and self.background_index is not None:
            cams[:, self.background_index] = bg_threshold
        return cams

    def image_labels(self, segmentor, scores: Tensor, data_samples, inputs: Tensor) -> Tensor:
        """(B, K) classes of the CAMs: each sample's ``gt_image_labels``, else those the verifier
        finds, else those predicted from the pooled scores (sigmoid > ``test_cfg.label_threshold``,
        default 0.5), background included."""
        pool = getattr(getattr(segmentor.decode_head, 'loss_mlc', None), 'pool', None)
        if all(IMAGE_LABELS in s for s in data_samples) or (pool is None and self.verifier is None):
            return stack_image_labels(data_samples).to(scores.device)
        if self.verifier is not None:
            every_class = segmentor.scores_to_cams(scores, scores.new_ones(scores.shape[:2]),
                                                   size=inputs.shape[-2:])
            predicted = self.verifier(rgb_pixels(inputs, segmentor.data_preprocessor), every_class,
                                      self.foreground_channels(scores.shape[1]))
        else:
            threshold = segmentor.test_cfg.get('label_threshold', 0.5)
            predicted = (pool(scores.float()).sigmoid() > threshold).float()
        if self.background_index is not None:
            predicted[:, self.background_index] = 1
        return torch.stack([s.get(IMAGE_LABELS).to(scores.device) if IMAGE_LABELS in s else predicted[i]
                            for i, s in enumerate(data_samples)])
