"""Confidence-guided cross-entropy for stage 2 on pseudo masks (CLIP-ES)."""
from mmseg.models.losses import CrossEntropyLoss
from torch import Tensor

from ...registry import MODELS

__all__ = ['ConfidenceGuidedCrossEntropyLoss']

_MODES = ('ignore', 'weight')


@MODELS.register_module()
class ConfidenceGuidedCrossEntropyLoss(CrossEntropyLoss):
    """Per-pixel cross-entropy that ignores (or down-weights) pseudo-mask pixels of low confidence.

    The confidence-guided loss of CLIP-ES (Lin et al., "CLIP is Also an Efficient Segmenter: A
    Text-Driven Approach for Weakly Supervised Semantic Segmentation", CVPR 2023): pixels
    whose pseudo-label confidence is below ``threshold`` do not count. ``mode='weight'`` also weights
    the remaining pixels by their confidence. The confidence comes as the ``weight`` that the decode
    head passes: a ``Confidence*`` head (e.g. :class:`~mmseg_clip_wsss.models.ConfidenceUPerHead`) with
    :class:`~mmseg_clip_wsss.datasets.LoadConfidenceMap` in the train pipeline.

    Args:
        threshold (float): Pixels with confidence below it are ignored. Defaults to 0.5.
        mode (str): ``'ignore'`` (the kept pixels count fully, as in CLIP-ES) or ``'weight'`` (the
            kept pixels count with their confidence). Defaults to ``'ignore'``.
        avg_non_ignore (bool): Average over the kept pixels (True) or over all pixels. Defaults to
            True.
        loss_name (str): Defaults to ``'loss_ce'``.
        **kwargs: Other arguments of mmseg's ``CrossEntropyLoss`` (``loss_weight``,
            ``class_weight``, ...); ``use_sigmoid`` / ``use_mask`` are not supported.
    """

    def __init__(self, threshold: float = 0.5, mode: str = 'ignore', avg_non_ignore: bool = True,
                 loss_name: str = 'loss_ce', **kwargs):
        if mode not in _MODES:
            raise ValueError(f'ConfidenceGuidedCrossEntropyLoss: mode={mode!r} must be one of '
                             f'{_MODES}.')
        if not 0 <= threshold <= 1:
            raise ValueError(f'ConfidenceGuidedCrossEntropyLoss: threshold={threshold} must lie in '
                             '[0, 1] (confidences are in [0, 1]).')
        if kwargs.get('use_sigmoid') or kwargs.get('use_mask'):
            raise ValueError('ConfidenceGuidedCrossEntropyLoss is a softmax cross-entropy.')
        super().__init__(avg_non_ignore=avg_non_ignore, loss_name=loss_name, **kwargs)
        self.threshold = float(threshold)
        self.mode = mode

    def forward(self, cls_score: Tensor, label: Tensor, weight: Tensor = None,
                ignore_index: int = 255, **kwargs) -> Tensor:
        """Confidence-guided cross-entropy.

        Args:
            cls_score (Tensor): (B, K, H, W) logits.
            label (Tensor): (B, H, W) long labels, ``ignore_index`` ignored.
            weight (Tensor): (B, H, W) confidence in [0, 1] (the head's pixel weights).
            ignore_index (int): Defaults to 255.

        Returns:
            Tensor: scalar loss.

        Raises:
            ValueError: when no confidence comes in.
        """
        if weight is None:
            raise ValueError('ConfidenceGuidedCrossEntropyLoss needs the per-pixel confidence: use a '
                             "Confidence* decode head (e.g. type='ConfidenceUPerHead') and "
                             'LoadConfidenceMap + PackWSSSInputs in the train pipeline '
                             '(configs/stage2/demo/ shows how).')
        label = label.masked_fill(weight < self.threshold, ignore_index)
        return super().forward(cls_score, label, weight=weight if self.mode == 'weight' else None,
                               ignore_index=ignore_index, **kwargs)

    def extra_repr(self) -> str:
        return f'threshold={self.threshold}, mode={self.mode!r}'
