"""mmseg decode heads whose losses receive the pseudo-mask confidence as per-pixel weights."""
from typing import List

from mmseg.models.decode_heads import FCNHead, UPerHead
from torch import Tensor

from ...registry import MODELS
from ...structures import stack_confidence

__all__ = ['ConfidenceWeightedHeadMixin', 'ConfidenceUPerHead', 'ConfidenceFCNHead']


class _FixedWeights:
    """A pixel sampler that returns the given weights (see :class:`ConfidenceWeightedHeadMixin`)."""

    def __init__(self, weights: Tensor):
        self.weights = weights  # (B, H, W)

    def sample(self, seg_logit: Tensor, seg_label: Tensor) -> Tensor:
        return self.weights.to(seg_logit.device)


class ConfidenceWeightedHeadMixin:
    """Hands the confidence of the pseudo masks to every loss of an mmseg decode head.

    mmseg's ``BaseDecodeHead.loss_by_feat`` passes the weights of its pixel sampler to each loss as
    ``weight``; during ``loss_by_feat`` this mixin makes the batch's confidence maps
    (``data_sample.gt_confidence``, :class:`~mmseg_clip_wsss.datasets.LoadConfidenceMap`) that
    sampler. So mmseg's ``CrossEntropyLoss`` becomes a confidence-weighted cross-entropy and
    :class:`~mmseg_clip_wsss.models.ConfidenceGuidedCrossEntropyLoss` thresholds them. Prediction is
    the plain head's.

    Raises:
        ValueError: at build time when the head is also given a pixel ``sampler``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.sampler is not None:
            raise ValueError(f'{type(self).__name__}: the confidence takes the place of the pixel '
                             'sampler; remove `sampler` from the head config.')

    def loss_by_feat(self, seg_logits: Tensor, batch_data_samples: List) -> dict:
        size = tuple(batch_data_samples[0].gt_sem_seg.shape)  # (H, W), as padded by the preprocessor
        self.sampler = _FixedWeights(stack_confidence(batch_data_samples, size))  # (B, H, W)
        try:
            return super().loss_by_feat(seg_logits, batch_data_samples)
        finally:
            self.sampler = None


@MODELS.register_module()
class ConfidenceUPerHead(ConfidenceWeightedHeadMixin, UPerHead):
    """mmseg's ``UPerHead`` with the pseudo-mask confidence as the losses' pixel weights
    (:class:`ConfidenceWeightedHeadMixin`); arguments as ``UPerHead``."""


@MODELS.register_module()
class ConfidenceFCNHead(ConfidenceWeightedHeadMixin, FCNHead):
    """mmseg's ``FCNHead`` (e.g. the auxiliary head) with the pseudo-mask confidence as the losses'
    pixel weights (:class:`ConfidenceWeightedHeadMixin`); arguments as ``FCNHead``."""
