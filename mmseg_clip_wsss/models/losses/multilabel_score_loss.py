"""Multi-label classification loss computed from dense score maps."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg_clip_wsss.registry import MODELS
from .utils import check_loss_name, foreground_columns

_POOLINGS = ('gap', 'topk', 'lse')
_LOSS_TYPES = ('bce', 'soft_margin')


@MODELS.register_module()
class MultiLabelScoreLoss(nn.Module):
    """Image-level multi-label loss from per-pixel class scores.

    The score maps are pooled over space into one logit per class and compared with the image-level
    multi-hot labels. Pooling choices:

    - ``'gap'``: global average pooling (the classic CAM training objective).
    - ``'topk'``: mean of the ``topk_ratio`` highest scores of each class map (at least one pixel).
    - ``'lse'``: log-sum-exp pooling ``1/r * log(mean(exp(r * s)))``, between average (``r -> 0``) and
      max (``r -> inf``) pooling.

    Args:
        pooling (str): ``'gap'``, ``'topk'`` or ``'lse'``. Defaults to ``'gap'``.
        topk_ratio (float): Fraction of pixels averaged by ``'topk'`` pooling, in (0, 1].
            Defaults to 0.25.
        lse_r (float): Sharpness ``r`` of ``'lse'`` pooling, > 0. Defaults to 1.0.
        loss_type (str): ``'bce'`` (binary cross-entropy with logits, averaged over classes) or
            ``'soft_margin'`` (``F.multilabel_soft_margin_loss``; the same formula, kept for
            familiarity). Defaults to ``'bce'``.
        ignore_background (bool): Leave the background channel out of the loss (it is present in
            every image, so it carries no image-level signal). Defaults to True.
        background_index (int, optional): Channel of the background class; None when the class list
            has no background (every channel is trained). The head sets it to the segmentor's.
            Defaults to 0.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        loss_name (str): Name of the loss item; must start with ``loss_`` to be back-propagated.
            Defaults to ``'loss_mlc'``.
    """

    def __init__(self,
                 pooling: str = 'gap',
                 topk_ratio: float = 0.25,
                 lse_r: float = 1.0,
                 loss_type: str = 'bce',
                 ignore_background: bool = True,
                 background_index: Optional[int] = 0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_mlc'):
        super().__init__()
        if pooling not in _POOLINGS:
            raise ValueError(f'MultiLabelScoreLoss: pooling={pooling!r} is not one of {_POOLINGS}.')
        if loss_type not in _LOSS_TYPES:
            raise ValueError(f'MultiLabelScoreLoss: loss_type={loss_type!r} is not one of '
                             f'{_LOSS_TYPES}.')
        if not 0 < topk_ratio <= 1:
            raise ValueError(f'MultiLabelScoreLoss: topk_ratio must be in (0, 1], got {topk_ratio}.')
        if lse_r <= 0:
            raise ValueError(f'MultiLabelScoreLoss: lse_r must be > 0, got {lse_r}.')
        self.pooling = pooling
        self.topk_ratio = topk_ratio
        self.lse_r = lse_r
        self.loss_type = loss_type
        self.ignore_background = ignore_background
        self.background_index = background_index
        self.loss_weight = loss_weight
        self._loss_name = check_loss_name('MultiLabelScoreLoss', loss_name)

    def pool(self, score_maps: Tensor) -> Tensor:
        """Pool score maps (B, K, H, W) into image-level logits (B, K)."""
        flat = score_maps.flatten(2)  # (B, K, HW)
        if self.pooling == 'gap':
            return flat.mean(dim=2)
        if self.pooling == 'topk':
            k = max(1, int(round(self.topk_ratio * flat.shape[2])))
            return flat.topk(k, dim=2).values.mean(dim=2)
        r = self.lse_r  # 'lse'
        return (torch.logsumexp(r * flat, dim=2) - math.log(flat.shape[2])) / r

    def forward(self,
                score_maps: Tensor,
                image_labels: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            score_maps (Tensor): Per-pixel class logits, (B, K, H, W).
            image_labels (Tensor): Multi-hot image-level labels, (B, K), or soft targets in [0, 1].
            weight (Tensor, optional): Per-image weights, (B,), or per-image and per-class weights,
                (B, K) (e.g. the confidences of :class:`DescriptionTargets`; the binary
                cross-entropy of each class is weighted before the mean over classes; both loss
                types are that formula). Defaults to None.

        Returns:
            Tensor: The weighted scalar loss.
        """
        if score_maps.shape[:2] != image_labels.shape:
            raise ValueError(f'MultiLabelScoreLoss: score maps of shape {tuple(score_maps.shape)} do '
                             f'not match image labels of shape {tuple(image_labels.shape)} '
                             '(expected (B, K)).')
        logits = self.pool(score_maps.float())  # (B, K), float32 whatever the autocast dtype
        targets = image_labels.to(logits.dtype)
        keep = foreground_columns(logits.shape[1], self.background_index, logits.device)
        if self.ignore_background and keep is not None:
            logits, targets = logits[:, keep], targets[:, keep]
        if weight is not None and weight.dim() == 2:  # per class (e.g. confidences of soft targets)
            weight = weight[:, keep] if self.ignore_background and keep is not None else weight
            per_image = (F.binary_cross_entropy_with_logits(logits, targets, reduction='none') *
                         weight.to(logits.dtype)).mean(dim=1)  # (B,)
        elif self.loss_type == 'soft_margin':
            per_image = F.multilabel_soft_margin_loss(logits, targets, reduction='none')  # (B,)
        else:
            per_image = F.binary_cross_entropy_with_logits(
                logits, targets, reduction='none').mean(dim=1)  # (B,)
        if weight is not None and weight.dim() == 1:
            per_image = per_image * weight
        return self.loss_weight * per_image.mean()

    @property
    def loss_name(self) -> str:
        """Name of the loss item (mmseg convention: a ``loss_`` prefix puts it in the total loss)."""
        return self._loss_name
