"""RSC-A's regional semantic contrast: region embeddings of the present classes against a memory bank."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg_clip_wsss.registry import MODELS
from ..memory import ClassMemoryBank

__all__ = ['RegionContrast', 'EMPTY']

#: Regions whose activation mass or embedding norm is below this are empty.
EMPTY = 1e-6


class RegionContrast(nn.Module):
    """Per present class an activation-weighted region embedding of the fused features, InfoNCE
    against the class prototypes of a memory bank (same class positive, other classes negative), then
    a momentum update of the bank rows of the present classes.

    A present class whose region is empty (its activation map sums to ~0 on the feature grid, or its
    embedding has norm ~0) takes part in neither the loss nor the update: its zero embedding would set
    (and mark initialised) a prototype and add a constant to the InfoNCE.

    Args:
        num_classes (int): Classes K (rows of the bank).
        background_index (int, optional): Background row, left out unless ``contrast_background``.
        contrast_background (bool): Also contrast and update the background row.
        loss_region (dict, optional): Config of the region-memory loss; None: no loss, update only.
        align_corners (bool): ``align_corners`` of the CAM resize.
    """

    def __init__(self, num_classes: int, background_index: Optional[int], contrast_background: bool,
                 loss_region: Optional[dict], align_corners: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.background_index = background_index
        self.contrast_background = contrast_background
        self.align_corners = align_corners
        self.loss = MODELS.build(loss_region) if loss_region is not None else None

    def region_weights(self, fused: Tensor, cams: Tensor) -> Tensor:
        """Non-negative, detached activation weights of every class on the fused grid, (B, K, HW)."""
        cams = cams.detach().to(fused.dtype)
        if cams.shape[-2:] != fused.shape[-2:]:
            cams = F.interpolate(cams, size=fused.shape[-2:], mode='bilinear',
                                 align_corners=self.align_corners)
        return cams.clamp(min=0).flatten(2)

    @staticmethod
    def pool(weights: Tensor, fused: Tensor) -> Tensor:
        """Weighted means (B, K, C) of ``fused`` (B, C, H, W) under ``weights`` (B, K, HW)."""
        weights = weights / weights.sum(dim=2, keepdim=True).clamp(min=EMPTY)
        return torch.einsum('bkn,bcn->bkc', weights, fused.flatten(2))

    def contrast_mask(self, image_labels: Tensor) -> Tensor:
        """Bool (B, K): the present classes that take part (not the background row unless
        ``contrast_background``)."""
        present = image_labels > 0
        if self.background_index is not None and not self.contrast_background:
            present = present.clone()
            present[:, self.background_index] = False
        return present

    def forward(self, fused: Tensor, cams: Tensor, image_labels: Tensor, memory_bank: ClassMemoryBank,
                update_memory: bool = True) -> Dict[str, Tensor]:
        """The contrast loss, then (training only) the bank update.

        Args:
            fused (Tensor): Fused features (B, C, H, W).
            cams (Tensor): Non-negative class activation maps (B, K, H', W').
            image_labels (Tensor): Multi-hot image-level labels (B, K).
            memory_bank (ClassMemoryBank): The bank contrasted against and updated.
            update_memory (bool): Update the bank after the loss (a no-op in eval mode).

        Returns:
            dict[str, Tensor]: ``{loss_name: loss}`` (empty without ``loss_region``).

        Raises:
            ValueError: labels or CAMs whose K is not ``num_classes``.
        """
        if image_labels.shape != cams.shape[:2] or image_labels.shape[1] != self.num_classes:
            raise ValueError(f'RSCANeck: image labels {tuple(image_labels.shape)} and CAMs '
                             f'{tuple(cams.shape)} must be (B, K) / (B, K, H, W) with K = num_classes '
                             f'= {self.num_classes}.')
        weights = self.region_weights(fused, cams)  # (B, K, HW)
        embeds = self.pool(weights, fused)  # (B, K, C)
        nonempty = (weights.sum(dim=2) > EMPTY) & (embeds.detach().norm(dim=2) > EMPTY)  # (B, K)
        use = self.contrast_mask(image_labels) & nonempty
        losses = {}
        if self.loss is not None:
            labels = torch.arange(self.num_classes, device=fused.device).expand_as(use)[use]
            prototypes, initialized = memory_bank.snapshot(embeds.dtype)
            losses[self.loss.loss_name] = self.loss(embeds[use], labels, prototypes, initialized)
        if update_memory:
            memory_bank.update(embeds.detach(), use)
        return losses
