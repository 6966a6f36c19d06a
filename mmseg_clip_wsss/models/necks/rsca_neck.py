"""RSC-A neck: multi-scale fusion, memory-bank aggregation and regional semantic contrast."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmseg_clip_wsss.registry import register_seg_and_det
from ..memory import ClassMemoryBank
from .memory_readout import MemoryReadout
from .region_contrast import RegionContrast


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

    #: Checkpoint keys of the bank before it became a :class:`ClassMemoryBank`, and of the aggregation
    #: before it became a :class:`MemoryReadout` -> today's keys
    #: (read by the load hook and by :func:`~mmseg_clip_wsss.engine.check_checkpoint_fits`).
    LEGACY_STATE_DICT_KEYS = {'memory_bank': 'memory_bank.prototypes',
                              'memory_initialized': 'memory_bank.initialized',
                              **{f'{layer}.{p}': f'readout.{layer}.{p}'
                                 for layer in ('query', 'key', 'value', 'out_proj') for p in ('weight', 'bias')},
                              'gate': 'readout.gate'}

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

        self.readout = MemoryReadout(channels, gate_init) if use_aggregation else None
        self.region_contrast = RegionContrast(num_classes, background_index, contrast_background,
                                              loss_region, align_corners)

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
        """Let every pixel read the memory bank's prototypes (:class:`MemoryReadout`).

        Args:
            fused (Tensor): (B, C, H, W).

        Returns:
            Tensor: (B, C, H, W). Equal to ``fused`` while no prototype is initialised.
        """
        if not self.use_aggregation:
            return fused
        return self.readout(fused, *self.memory_bank.snapshot(fused.dtype))

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
    @property
    def loss_region(self) -> Optional[nn.Module]:
        """The region-memory loss (None: the bank is updated without a loss)."""
        return self.region_contrast.loss

    @property
    def background_index(self) -> Optional[int]:
        """Background row, left out of the contrast unless ``contrast_background``."""
        return self.region_contrast.background_index

    def region_embeddings(self, fused: Tensor, cams: Tensor) -> Tensor:
        """Activation-weighted region embedding of every class of every image.

        Args:
            fused (Tensor): Fused features, (B, C, H, W).
            cams (Tensor): Non-negative class activation maps, (B, K, H', W') (resized to (H, W) and
                detached here; the weights are the maps normalised to sum 1).

        Returns:
            Tensor: (B, K, C) region embeddings (zero where a class has no activation).
        """
        return self.region_contrast.pool(self.region_contrast.region_weights(fused, cams), fused)

    def region_contrast_loss(self, fused: Tensor, cams: Tensor, image_labels: Tensor,
                             update_memory: bool = True) -> Dict[str, Tensor]:
        """Regional semantic contrast against the memory bank, then (training only) its update
        (:class:`RegionContrast`).

        Args:
            fused (Tensor): Fused features (B, C, H, W) (``forward(feats, return_fused=True)[1]``).
            cams (Tensor): Non-negative class activation maps (B, K, H', W').
            image_labels (Tensor): Multi-hot image-level labels (B, K).
            update_memory (bool): Update the bank with this batch's regions after the loss is computed
                (a no-op in eval mode). Defaults to True.

        Returns:
            dict[str, Tensor]: ``{loss_name: loss}`` (empty if no ``loss_region`` is configured).
        """
        return self.region_contrast(fused, cams, image_labels, self.memory_bank, update_memory)
