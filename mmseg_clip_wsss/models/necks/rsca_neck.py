"""RSC-A neck: multi-scale fusion, memory-bank aggregation and regional semantic contrast."""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.dist import get_world_size, is_distributed
from mmengine.model import BaseModule
from torch import Tensor

from mmseg_clip_wsss.engine.dist import all_gather_rows
from mmseg_clip_wsss.registry import MODELS, register_seg_and_det


@register_seg_and_det
class RSCANeck(BaseModule):
    """Regional Semantic Contrast and Aggregation neck.

    1. **Fusion**: the selected backbone levels go through lateral 1x1 convs to ``channels``, are
       upsampled to the finest selected level and summed (``fusion='sum'``) or concatenated and mixed
       by a 3x3 conv (``fusion='concat'``) -> one fused map (B, C, H, W).
    2. **Aggregation**: every pixel attends to the class prototypes of the memory bank
       (softmax over the initialised classes of ``q . k / sqrt(C)``), reads back the values, and adds
       them through a learnable sigmoid gate (initialised small): ``x + gate * out(attn @ v)``.
       Before any prototype exists the read-back is zero.
    3. **Regional semantic contrast** (training, labels passed explicitly): per present class an
       activation-weighted region embedding of the fused map, InfoNCE against the bank
       (:class:`RegionMemoryInfoNCELoss`), then a momentum update of the rows of the present classes.

    ``forward(feats)`` needs no labels, so the neck drops into any mmseg/mmdet model. The bank lives in
    buffers (``memory_bank`` (K, C), ``memory_initialized`` (K,) bool), so it is saved in checkpoints
    and restored on resume. In distributed training every rank updates it with the regions of all
    ranks (:meth:`gather_regions`), so the banks stay identical across ranks.

    Args:
        in_channels (Sequence[int]): Channels of every backbone level.
        channels (int): Channels of the fused map and of the memory bank.
        num_classes (int): Rows of the memory bank (K, background included when the dataset has it).
        in_index (Sequence[int], optional): Backbone levels used. Defaults to None (all).
        fusion (str): ``'sum'`` or ``'concat'``. Defaults to ``'sum'``.
        num_outs (int): Number of output levels. 1 returns ``(aggregated,)``; more appends
            stride-2 max-pooled copies (an FPN-like pyramid for detection). Defaults to 1.
        use_aggregation (bool): Enable the memory read-back. Defaults to True.
        gate_init (float): Initial value of the sigmoid gate, in (0, 1). Defaults to 0.1.
        memory_momentum (float): Momentum ``m`` of ``bank = m * bank + (1 - m) * new``. Defaults to 0.9.
        contrast_background (bool): Also contrast/update the background row. Defaults to False.
        background_index (int): Background class index. Defaults to 0.
        loss_region (dict): Config of the region-memory loss. Defaults to
            ``dict(type='RegionMemoryInfoNCELoss', temperature=0.1, loss_weight=0.1)``.
        conv_cfg (dict, optional): Conv config. Defaults to None.
        norm_cfg (dict, optional): Norm config of the fusion convs. Defaults to ``dict(type='BN')``.
        act_cfg (dict, optional): Activation config. Defaults to ``dict(type='ReLU')``.
        align_corners (bool): ``align_corners`` of the upsampling. Defaults to False.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: int,
                 num_classes: int,
                 in_index: Optional[Sequence[int]] = None,
                 fusion: str = 'sum',
                 num_outs: int = 1,
                 use_aggregation: bool = True,
                 gate_init: float = 0.1,
                 memory_momentum: float = 0.9,
                 contrast_background: bool = False,
                 background_index: int = 0,
                 loss_region: Optional[dict] = dict(
                     type='RegionMemoryInfoNCELoss', temperature=0.1, loss_weight=0.1),
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = dict(type='BN', requires_grad=True),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 align_corners: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg)
        in_channels = list(in_channels)
        self.in_index = list(range(len(in_channels))) if in_index is None else list(in_index)
        if any(i >= len(in_channels) or i < -len(in_channels) for i in self.in_index):
            raise ValueError(f'RSCANeck: in_index={self.in_index} is out of range for '
                             f'{len(in_channels)} in_channels {in_channels}.')
        if fusion not in ('sum', 'concat'):
            raise ValueError(f"RSCANeck: fusion={fusion!r} must be 'sum' or 'concat'.")
        if not 0 < gate_init < 1:
            raise ValueError(f'RSCANeck: gate_init must be in (0, 1), got {gate_init}.')
        if not 0 <= memory_momentum < 1:
            raise ValueError(f'RSCANeck: memory_momentum must be in [0, 1), got {memory_momentum}.')
        if num_outs < 1:
            raise ValueError(f'RSCANeck: num_outs must be >= 1, got {num_outs}.')
        self.in_channels = in_channels
        self.channels = channels
        self.num_classes = num_classes
        self.fusion = fusion
        self.num_outs = num_outs
        self.use_aggregation = use_aggregation
        self.memory_momentum = memory_momentum
        self.contrast_background = contrast_background
        self.background_index = background_index
        self.align_corners = align_corners

        self.lateral_convs = nn.ModuleList([
            ConvModule(in_channels[i], channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                       act_cfg=act_cfg) for i in self.in_index
        ])
        fuse_in = channels * len(self.in_index) if fusion == 'concat' else channels
        self.fuse_conv = ConvModule(fuse_in, channels, 3, padding=1, conv_cfg=conv_cfg,
                                    norm_cfg=norm_cfg, act_cfg=act_cfg)

        if use_aggregation:
            self.query = nn.Conv2d(channels, channels, 1)
            self.key = nn.Linear(channels, channels)
            self.value = nn.Linear(channels, channels)
            self.out_proj = nn.Conv2d(channels, channels, 1)
            self.gate = nn.Parameter(torch.tensor(math.log(gate_init / (1 - gate_init))))

        self.loss_region = MODELS.build(loss_region) if loss_region is not None else None
        self.register_buffer('memory_bank', torch.zeros(num_classes, channels))  # (K, C)
        self.register_buffer('memory_initialized', torch.zeros(num_classes, dtype=torch.bool))  # (K,)

    # ------------------------------------------------------------------ forward
    def fuse(self, feats: Sequence[Tensor]) -> Tensor:
        """Fuse the selected backbone levels into one map (B, C, H, W) at the finest level."""
        laterals = [conv(feats[i]) for conv, i in zip(self.lateral_convs, self.in_index)]
        size = max((x.shape[-2:] for x in laterals), key=lambda s: s[0] * s[1])
        laterals = [
            x if x.shape[-2:] == size else F.interpolate(
                x, size=size, mode='bilinear', align_corners=self.align_corners) for x in laterals
        ]
        if self.fusion == 'sum':
            total = laterals[0]
            for x in laterals[1:]:  # a running sum: no (L, B, C, H, W) stack
                total = total + x
            return self.fuse_conv(total)
        return self.fuse_conv(torch.cat(laterals, dim=1))

    def aggregate(self, fused: Tensor) -> Tensor:
        """Let every pixel read the memory bank's prototypes (residual, gated).

        Args:
            fused (Tensor): (B, C, H, W).

        Returns:
            Tensor: (B, C, H, W). Equal to ``fused`` while no prototype is initialised.
        """
        if not self.use_aggregation:
            return fused
        b, c, h, w = fused.shape
        valid = self.memory_initialized.clone()  # (K,)
        has_memory = bool(valid.any())
        if not has_memory and not torch.is_grad_enabled():
            return fused  # nothing to read, no graph to keep
        # a copy: the bank is updated in place after the forward, before the backward
        bank = self.memory_bank.to(fused.dtype, copy=True)  # (K, C)
        k = self.key(bank)  # (K, C)
        v = self.value(bank)  # (K, C)
        # The 1x1 query and output convs are linear, and only K prototypes are read, so both fold
        # into the K rows instead of running on every pixel (same result, C*C*H*W fewer MACs each):
        #   q_p . k_j = x_p . (W_q^T k_j) + b_q . k_j
        #   W_o (sum_j a_pj v_j) + b_o = sum_j a_pj (W_o v_j + b_o)     (softmax rows sum to 1)
        w_q = self.query.weight.flatten(1)  # (C, C) out x in
        w_o = self.out_proj.weight.flatten(1)  # (C, C)
        k_fold = k @ w_q  # (K, C)
        logits = k_fold @ fused.flatten(2)  # (B, K, HW)
        if self.query.bias is not None:
            logits = logits + (k @ self.query.bias)[:, None]
        logits = logits / math.sqrt(c)
        if has_memory:
            logits = logits.masked_fill(~valid[:, None], float('-inf'))
        v_fold = v @ w_o.t()  # (K, C)
        if self.out_proj.bias is not None:
            v_fold = v_fold + self.out_proj.bias
        read = (v_fold.t() @ logits.softmax(dim=1)).reshape(b, c, h, w)  # (B, C, H, W)
        if not has_memory:
            # keep every parameter in the graph (distributed training) but add nothing
            read = read * 0.0
        return fused + torch.sigmoid(self.gate) * read

    def forward(self, feats: Sequence[Tensor], return_fused: bool = False):
        """Fuse and aggregate.

        Args:
            feats (Sequence[Tensor]): Backbone levels, each (B, C_i, H_i, W_i).
            return_fused (bool): Also return the fused map before aggregation (the features of the
                regional contrast). Defaults to False.

        Returns:
            tuple[Tensor]: ``num_outs`` maps, the first (B, C, H, W) at the finest selected level;
            with ``return_fused``, ``(outs, fused)``.
        """
        fused = self.fuse(feats)  # (B, C, H, W)
        out = self.aggregate(fused)
        outs = [out]
        for _ in range(self.num_outs - 1):
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        outs = tuple(outs)
        return (outs, fused) if return_fused else outs

    # ------------------------------------------------------- regional contrast
    def region_embeddings(self, fused: Tensor, cams: Tensor) -> Tensor:
        """Activation-weighted region embedding of every class of every image.

        Args:
            fused (Tensor): Fused features, (B, C, H, W).
            cams (Tensor): Non-negative class activation maps, (B, K, H', W') (resized to (H, W) and
                detached here; the weights are the maps normalised to sum 1).

        Returns:
            Tensor: (B, K, C) region embeddings (zero where a class has no activation).
        """
        cams = cams.detach().to(fused.dtype)
        if cams.shape[-2:] != fused.shape[-2:]:
            cams = F.interpolate(cams, size=fused.shape[-2:], mode='bilinear',
                                 align_corners=self.align_corners)
        weights = cams.clamp(min=0).flatten(2)  # (B, K, HW)
        weights = weights / weights.sum(dim=2, keepdim=True).clamp(min=1e-6)
        return torch.einsum('bkn,bcn->bkc', weights, fused.flatten(2))  # (B, K, C)

    def _contrast_mask(self, image_labels: Tensor) -> Tensor:
        """Bool (B, K): the (image, class) pairs that take part in the contrast."""
        present = image_labels > 0
        if not self.contrast_background:
            present = present.clone()
            present[:, self.background_index] = False
        return present

    def region_contrast_loss(self, fused: Tensor, cams: Tensor, image_labels: Tensor,
                             update_memory: bool = True) -> Dict[str, Tensor]:
        """Regional semantic contrast against the memory bank, then (training only) its update.

        Args:
            fused (Tensor): Fused features (B, C, H, W) (``forward(feats, return_fused=True)[1]``).
            cams (Tensor): Non-negative class activation maps (B, K, H', W').
            image_labels (Tensor): Multi-hot image-level labels (B, K).
            update_memory (bool): Update the bank with this batch's regions after the loss is computed
                (a no-op in eval mode). Defaults to True.

        Returns:
            dict[str, Tensor]: ``{loss_name: loss}`` (empty if no ``loss_region`` is configured).
        """
        if image_labels.shape != cams.shape[:2] or image_labels.shape[1] != self.num_classes:
            raise ValueError(f'RSCANeck: image labels {tuple(image_labels.shape)} and CAMs '
                             f'{tuple(cams.shape)} must be (B, K) / (B, K, H, W) with K = num_classes '
                             f'= {self.num_classes}.')
        embeds = self.region_embeddings(fused, cams)  # (B, K, C)
        losses = {}
        if self.loss_region is not None:
            present = self._contrast_mask(image_labels)  # (B, K)
            labels = torch.arange(self.num_classes, device=fused.device).expand_as(present)[present]
            losses[self.loss_region.loss_name] = self.loss_region(
                embeds[present], labels, self.memory_bank.to(embeds.dtype, copy=True),
                self.memory_initialized.clone())
        if update_memory:
            self.update_memory(embeds.detach(), image_labels)
        return losses

    def gather_regions(self, region_embeds: Tensor, image_labels: Tensor) -> Tuple[Tensor, Tensor]:
        """Collect the regions of the memory update from every rank.

        Single process: returns its inputs. Distributed: the regions and labels of all ranks,
        concatenated in rank order (ranks may hold different batch sizes), so every rank applies the
        same update and the memory banks stay identical without broadcasting buffers.

        Args:
            region_embeds (Tensor): (B_r, K, C) region embeddings of this rank.
            image_labels (Tensor): (B_r, K) multi-hot labels of this rank.

        Returns:
            tuple[Tensor, Tensor]: (sum_r B_r, K, C) and (sum_r B_r, K).
        """
        if not is_distributed() or get_world_size() == 1:
            return region_embeds, image_labels
        k, c = region_embeds.shape[1:]
        labels = image_labels.to(region_embeds.dtype)
        # one collective for both: (B_r, K * C + K)
        rows = torch.cat([region_embeds.reshape(len(region_embeds), k * c), labels], dim=1)
        rows = all_gather_rows(rows)
        return rows[:, :k * c].reshape(-1, k, c), rows[:, k * c:].to(image_labels.dtype)

    @torch.no_grad()
    def update_memory(self, region_embeds: Tensor, image_labels: Tensor) -> None:
        """Momentum update of the prototypes of the classes present in the batch (training only).

        Each present class's new prototype is the L2-normalised mean of its normalised region
        embeddings over the images that contain it; an uninitialised row takes it as is, an
        initialised one becomes ``normalize(m * bank + (1 - m) * new)``. Other rows are untouched.
        A no-op in eval mode.

        Args:
            region_embeds (Tensor): (B, K, C) region embeddings (:meth:`region_embeddings`).
            image_labels (Tensor): (B, K) multi-hot labels.
        """
        if not self.training:
            return
        region_embeds, image_labels = self.gather_regions(region_embeds, image_labels)
        present = self._contrast_mask(image_labels).to(region_embeds.dtype)  # (B, K)
        counts = present.sum(dim=0)  # (K,)
        rows = counts > 0  # (K,)
        if not bool(rows.any()):
            return
        summed = torch.einsum('bk,bkc->kc', present, F.normalize(region_embeds, dim=2))  # (K, C)
        new = F.normalize(summed[rows], dim=1).to(self.memory_bank.dtype)  # (R, C)
        old = self.memory_bank[rows]
        was_init = self.memory_initialized[rows][:, None]  # (R, 1)
        m = self.memory_momentum
        mixed = F.normalize(m * old + (1 - m) * new, dim=1)
        self.memory_bank[rows] = torch.where(was_init, mixed, new)
        self.memory_initialized[rows] = True
