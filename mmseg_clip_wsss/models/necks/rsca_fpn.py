"""RSC-A neck with an FPN output pyramid: a drop-in for mmdet's ``FPN`` in detection configs."""
from typing import List, Optional, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor

from mmseg_clip_wsss.registry import register_seg_and_det
from .rsca_neck import RSCANeck


@register_seg_and_det
class RSCAFPN(RSCANeck):
    """The RSC-A neck as a multi-level, FPN-compatible neck.

    Same constructor vocabulary as mmdet's ``FPN`` (``in_channels``, ``out_channels``, ``num_outs``,
    ``start_level``, ``end_level``), so ``neck=dict(type='RSCAFPN', ...)`` replaces an FPN in any
    two-stage or one-stage mmdet config; every output level has ``out_channels`` channels and the
    strides of the used backbone levels, extra levels are stride-2 subsamplings of the last one
    (FPN's ``add_extra_convs=False``).

    1. **Laterals + top-down**: the 1x1 lateral convs of :class:`RSCANeck` map the used levels to
       ``out_channels``; coarser laterals are upsampled (nearest) and added to finer ones.
    2. **Fused map**: the finest top-down map through the 3x3 ``fuse_conv`` -- the features of the
       regional semantic contrast (``forward(feats, return_fused=True)[1]``) and, aggregated, the
       first output level. The other used levels go through their own 3x3 ``fpn_convs``.
    3. **Aggregation**: every output level reads the memory bank's class prototypes through the
       shared attention of :meth:`RSCANeck.aggregate` (gated residual; a no-op while the bank is
       empty).

    The regional contrast and the memory update are :meth:`RSCANeck.region_contrast_loss` with the
    fused map, class activation maps (B, K, H, W) and image-level labels (B, K).

    Args:
        in_channels (Sequence[int]): Channels of every backbone level.
        out_channels (int): Channels of every output level, of the fused map and of the memory bank.
        num_outs (int): Number of output levels (>= the number of used backbone levels).
        num_classes (int): Rows of the memory bank (K).
        start_level (int): First backbone level used. Defaults to 0.
        end_level (int): Last backbone level used (inclusive); -1 for the last. Defaults to -1.
        background_index (int, optional): Row of a background class, left out of the contrast and the
            memory update. None: every row is an object class (detection). Defaults to None.
        norm_cfg (dict, optional): Norm config of the lateral / output convs. Defaults to None (as FPN).
        act_cfg (dict, optional): Activation config of those convs. Defaults to None (as FPN).
        init_cfg (dict | list[dict], optional): Initialisation config. Defaults to Xavier (uniform)
            on every ``Conv2d``, as FPN.
        **kwargs: The other :class:`RSCANeck` arguments (``use_aggregation``, ``gate_init``,
            ``memory_momentum``, ``contrast_background``, ``loss_region``, ``conv_cfg``), with its
            defaults.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 num_outs: int,
                 num_classes: int,
                 start_level: int = 0,
                 end_level: int = -1,
                 background_index: Optional[int] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = dict(
                     type='Xavier', layer='Conv2d', distribution='uniform'),
                 **kwargs):
        num_ins = len(in_channels)
        last = num_ins - 1 if end_level == -1 else end_level
        if not 0 <= start_level <= last < num_ins:
            raise ValueError(f'RSCAFPN: start_level={start_level} / end_level={end_level} do not select '
                             f'levels of the {num_ins} in_channels {list(in_channels)}.')
        in_index = list(range(start_level, last + 1))
        if num_outs < len(in_index):
            raise ValueError(f'RSCAFPN: num_outs={num_outs} is smaller than the {len(in_index)} used '
                             f'backbone levels {in_index}; raise num_outs or start_level.')
        super().__init__(in_channels=in_channels, channels=out_channels, num_classes=num_classes,
                         in_index=in_index, fusion='sum', num_outs=1, background_index=background_index,
                         norm_cfg=norm_cfg, act_cfg=act_cfg, init_cfg=init_cfg, **kwargs)
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.start_level = start_level
        self.end_level = end_level
        # level 0 is fuse_conv; one 3x3 output conv per coarser used level
        self.fpn_convs = nn.ModuleList([
            ConvModule(out_channels, out_channels, 3, padding=1, conv_cfg=kwargs.get('conv_cfg'),
                       norm_cfg=norm_cfg, act_cfg=act_cfg) for _ in in_index[1:]
        ])

    def fuse(self, feats: Sequence[Tensor]) -> Tensor:
        """The fused map (B, C, H, W): top-down sum at the finest used level, through ``fuse_conv``."""
        return self._top_down(feats)[0]

    def _top_down(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """[fused (B, C, H_0, W_0), top-down laterals of the coarser used levels (B, C, H_l, W_l)]."""
        if len(feats) != len(self.in_channels):
            raise ValueError(f'RSCAFPN: got {len(feats)} feature maps, expected {len(self.in_channels)} '
                             f'(in_channels={self.in_channels}).')
        laterals = [conv(feats[i]) for conv, i in zip(self.lateral_convs, self.in_index)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode='nearest')
        return [self.fuse_conv(laterals[0])] + laterals[1:]

    def forward(self, feats: Sequence[Tensor], return_fused: bool = False):
        """Output pyramid (and the fused map).

        Args:
            feats (Sequence[Tensor]): Backbone levels, each (B, C_i, H_i, W_i).
            return_fused (bool): Also return the fused map before aggregation. Defaults to False.

        Returns:
            tuple[Tensor]: ``num_outs`` maps (B, out_channels, H_l, W_l), finest first; with
            ``return_fused``, ``(outs, fused)``.
        """
        fused, *coarser = self._top_down(feats)
        levels = [fused] + [conv(x) for conv, x in zip(self.fpn_convs, coarser)]
        outs = [self.aggregate(x) for x in levels]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        outs = tuple(outs)
        return (outs, fused) if return_fused else outs
