"""A memory bank of one prototype per class, shared by the segmentation and detection RSC-A necks."""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import get_world_size, is_distributed
from torch import Tensor

from mmseg_clip_wsss.engine.dist import all_gather_rows

__all__ = ['ClassMemoryBank']


class ClassMemoryBank(nn.Module):
    """Class prototypes updated by momentum from region embeddings of every rank.

    The bank lives in buffers, so it is saved in checkpoints and restored on resume:
    ``prototypes`` (K, C) and ``initialized`` (K,) bool. :meth:`update` gathers the regions of all
    ranks first, so every rank applies the same update and the banks stay identical without
    broadcasting buffers. The momentum update of class prototypes follows regional semantic contrast
    (RCA, Zhou et al., CVPR 2022).

    Args:
        num_classes (int): Rows K (background included when the class list has one).
        channels (int): Prototype dimension C.
        momentum (float): ``m`` of ``prototype = normalize(m * prototype + (1 - m) * new)``, in
            [0, 1). Defaults to 0.9.
    """

    def __init__(self, num_classes: int, channels: int, momentum: float = 0.9):
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f'ClassMemoryBank: momentum must be in [0, 1), got {momentum}.')
        self.num_classes = num_classes
        self.channels = channels
        self.momentum = momentum
        self.register_buffer('prototypes', torch.zeros(num_classes, channels))  # (K, C)
        self.register_buffer('initialized', torch.zeros(num_classes, dtype=torch.bool))  # (K,)

    def snapshot(self, dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
        """Copies of ``(prototypes (K, C) in dtype, initialized (K,))``.

        Readers of the bank inside a forward take copies: :meth:`update` changes the buffers in place
        after the forward, before the backward.
        """
        return self.prototypes.to(dtype, copy=True), self.initialized.clone()

    @staticmethod
    def gather(region_embeds: Tensor, use: Tensor) -> Tuple[Tensor, Tensor]:
        """The regions of every rank, concatenated in rank order (ranks may hold different batches).

        Single process: returns its inputs. One collective carries both tensors.

        Args:
            region_embeds (Tensor): (B_r, K, C) region embeddings of this rank.
            use (Tensor): (B_r, K) bool, the regions that take part.

        Returns:
            tuple[Tensor, Tensor]: (sum_r B_r, K, C) and (sum_r B_r, K) bool.
        """
        if not is_distributed() or get_world_size() == 1:
            return region_embeds, use
        b, k, c = region_embeds.shape
        rows = torch.cat([region_embeds.reshape(b, k * c), use.to(region_embeds.dtype)], dim=1)
        rows = all_gather_rows(rows)  # (sum_r B_r, K * C + K)
        return rows[:, :k * c].reshape(-1, k, c), rows[:, k * c:] > 0

    @torch.no_grad()
    def update(self, region_embeds: Tensor, use: Tensor) -> None:
        """Momentum update of the rows of the classes with a region (a no-op in eval mode).

        Each class's new prototype is the L2-normalised mean of its normalised region embeddings
        over the images (of all ranks) where ``use`` is set; an uninitialised row takes it as is, an
        initialised one becomes ``normalize(m * old + (1 - m) * new)``. Other rows are untouched.

        Args:
            region_embeds (Tensor): (B, K, C) region embeddings.
            use (Tensor): (B, K) bool, the regions to learn from (present, non-empty regions).
        """
        if not self.training:
            return
        region_embeds, use = self.gather(region_embeds, use)
        weights = use.to(region_embeds.dtype)  # (B, K)
        rows = weights.sum(dim=0) > 0  # (K,)
        if not bool(rows.any()):
            return
        summed = torch.einsum('bk,bkc->kc', weights, F.normalize(region_embeds, dim=2))  # (K, C)
        new = F.normalize(summed[rows], dim=1).to(self.prototypes.dtype)  # (R, C)
        was_init = self.initialized[rows][:, None]  # (R, 1)
        m = self.momentum
        mixed = F.normalize(m * self.prototypes[rows] + (1 - m) * new, dim=1)
        self.prototypes[rows] = torch.where(was_init, mixed, new)
        self.initialized[rows] = True

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, channels={self.channels}, momentum={self.momentum}'
