"""InfoNCE between region embeddings and the class prototypes of a memory bank."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg_clip_wsss.registry import register_seg_and_det
from .utils import check_loss_name


@register_seg_and_det
class RegionMemoryInfoNCELoss(nn.Module):
    """Region-to-memory InfoNCE (regional semantic contrast).

    Each region embedding (one per present class of an image) is scored against every class prototype
    of the memory bank by cosine similarity / ``temperature``; the prototype of its own class is the
    positive, the other *initialised* prototypes are the negatives. Regions whose class prototype is
    not initialised yet are left out; if no region is left the loss is a graph-connected zero.

    Args:
        temperature (float): Softmax temperature, > 0. Defaults to 0.1.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        loss_name (str): Name of the loss item. Defaults to ``'loss_region_nce'``.
    """

    def __init__(self, temperature: float = 0.1, loss_weight: float = 1.0,
                 loss_name: str = 'loss_region_nce'):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'RegionMemoryInfoNCELoss: temperature must be > 0, got {temperature}.')
        self.temperature = temperature
        self.loss_weight = loss_weight
        self._loss_name = check_loss_name('RegionMemoryInfoNCELoss', loss_name)

    def forward(self,
                region_embeds: Tensor,
                region_labels: Tensor,
                memory: Tensor,
                memory_valid: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            region_embeds (Tensor): Region embeddings, (N, C) (normalised here).
            region_labels (Tensor): Class index of each region, (N,) long.
            memory (Tensor): Class prototypes, (K, C) (normalised here).
            memory_valid (Tensor, optional): Bool (K,), which prototypes are initialised.
                Defaults to None (all).

        Returns:
            Tensor: The weighted scalar loss.
        """
        if memory_valid is None:
            memory_valid = torch.ones(memory.shape[0], dtype=torch.bool, device=memory.device)
        keep = memory_valid[region_labels]  # (N,)
        if not bool(keep.any()):
            return region_embeds.sum() * 0.0
        region_embeds, region_labels = region_embeds[keep], region_labels[keep]
        # float32 whatever the autocast dtype
        with torch.autocast(device_type=region_embeds.device.type, enabled=False):
            regions = F.normalize(region_embeds.float(), dim=1)
            logits = regions @ F.normalize(memory.float(), dim=1).t()  # (N, K)
        logits = (logits / self.temperature).masked_fill(~memory_valid[None], float('-inf'))
        return self.loss_weight * F.cross_entropy(logits, region_labels)

    @property
    def loss_name(self) -> str:
        """Name of the loss item."""
        return self._loss_name
