"""RSC-A neck: multi-scale fusion, memory-bank aggregation and regional semantic contrast."""
import math
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmseg_clip_wsss.registry import MODELS, register_seg_and_det
from ..memory import ClassMemoryBank

#: Regions whose activation mass or embedding norm is below this are empty.
_EMPTY = 1e-6


def _rename_legacy_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """Load checkpoints written before the bank was a submodule (exact key mapping)."""
    for old, new in module.LEGACY_STATE_DICT_KEYS.items():
        if prefix + old in state_dict and prefix + new not in state_dict:
            state_dict[prefix + new] = state_dict.pop(prefix + old)


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
       (:class:`RegionMemoryInfoNCELoss`), then a momentum update of the rows of the present classes
       in the :class:`~mmseg_clip_wsss.models.memory.ClassMemoryBank` ``memory_bank`` (saved in
       checkpoints, identical on every rank).

    ``forward(feats)`` needs no labels, so the neck drops into any mmseg/mmdet model.

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
        background_index (int, optional): Background class index; None when the class list has no
            background (every row is contrasted). :class:`WSSSEncoderDecoder` sets it to its own.
            Defaults to 0.
        loss_region (dict): Config of the region-memory loss. Defaults to
            ``dict(type='RegionMemoryInfoNCELoss', temperature=0.1, loss_weight=0.1)``.
        conv_cfg (dict, optional): Conv config. Defaults to None.
        norm_cfg (dict, optional): Norm config of the fusion convs. Defaults to ``dict(type='BN')``.
        act_cfg (dict, optional): Activation config. Defaults to ``dict(type='ReLU')``.
        align_corners (bool): ``align_corners`` of the upsampling. Defaults to False.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    #: Checkpoint keys of the bank before it became a :class:`ClassMemoryBank` -> today's keys
    #: (read by the load hook and by :func:`~mmseg_clip_wsss.engine.check_checkpoint_fits`).
    LEGACY_STATE_DICT_KEYS = {'memory_bank': 'memory_bank.prototypes',
                              'memory_initialized': 'memory_bank.initialized'}

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
                 background_index: Optional[int] = 0,
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
        if num_outs < 1:
            raise ValueError(f'RSCANeck: num_outs must be >= 1, got {num_outs}.')
        self.in_channels = in_channels
        self.channels = channels
        self.num_classes = num_classes
        self.fusion = fusion
        self.num_outs = num_outs
        self.use_aggregation = use_aggregation
        self.contrast_background = contrast_background
        self.background_index = background_index
        self.align_corners = align_corners
        self.memory_bank = ClassMemoryBank(num_classes, channels, memory_momentum)
        self.register_load_state_dict_pre_hook(_rename_legacy_keys)

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
        bank, valid = self.memory_bank.snapshot(fused.dtype)  # (K, C), (K,)
        has_memory = bool(valid.any())
        if not has_memory and not torch.is_grad_enabled():
            return fused  # nothing to read, no graph to keep
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
    def _region_weights(self, fused: Tensor, cams: Tensor) -> Tensor:
        """Non-negative, detached activation weights of every class on the fused grid, (B, K, HW)."""
        cams = cams.detach().to(fused.dtype)
        if cams.shape[-2:] != fused.shape[-2:]:
            cams = F.interpolate(cams, size=fused.shape[-2:], mode='bilinear',
                                 align_corners=self.align_corners)
        return cams.clamp(min=0).flatten(2)

    @staticmethod
    def _pool(weights: Tensor, fused: Tensor) -> Tensor:
        """Weighted means (B, K, C) of ``fused`` (B, C, H, W) under ``weights`` (B, K, HW)."""
        weights = weights / weights.sum(dim=2, keepdim=True).clamp(min=_EMPTY)
        return torch.einsum('bkn,bcn->bkc', weights, fused.flatten(2))

    def region_embeddings(self, fused: Tensor, cams: Tensor) -> Tensor:
        """Activation-weighted region embedding of every class of every image.

        Args:
            fused (Tensor): Fused features, (B, C, H, W).
            cams (Tensor): Non-negative class activation maps, (B, K, H', W') (resized to (H, W) and
                detached here; the weights are the maps normalised to sum 1).

        Returns:
            Tensor: (B, K, C) region embeddings (zero where a class has no activation).
        """
        return self._pool(self._region_weights(fused, cams), fused)

    def _contrast_mask(self, image_labels: Tensor) -> Tensor:
        """Bool (B, K): the present classes that take part in the contrast (not the background row
        unless ``contrast_background``)."""
        present = image_labels > 0
        if self.background_index is not None and not self.contrast_background:
            present = present.clone()
            present[:, self.background_index] = False
        return present

    def region_contrast_loss(self, fused: Tensor, cams: Tensor, image_labels: Tensor,
                             update_memory: bool = True) -> Dict[str, Tensor]:
        """Regional semantic contrast against the memory bank, then (training only) its update.

        A present class whose region is empty (its activation map sums to ~0 on the fused grid, or
        its embedding has norm ~0) takes part in neither the loss nor the update: its zero embedding
        would set (and mark initialised) a prototype and add a constant to the InfoNCE.

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
        weights = self._region_weights(fused, cams)  # (B, K, HW)
        embeds = self._pool(weights, fused)  # (B, K, C)
        nonempty = (weights.sum(dim=2) > _EMPTY) & (embeds.detach().norm(dim=2) > _EMPTY)  # (B, K)
        use = self._contrast_mask(image_labels) & nonempty
        losses = {}
        if self.loss_region is not None:
            labels = torch.arange(self.num_classes, device=fused.device).expand_as(use)[use]
            prototypes, initialized = self.memory_bank.snapshot(embeds.dtype)
            losses[self.loss_region.loss_name] = self.loss_region(embeds[use], labels, prototypes,
                                                                  initialized)
        if update_memory:
            self.memory_bank.update(embeds.detach(), use)
        return losses
