"""mmseg's Swin Transformer with a convolutional stem in place of the patchify layer."""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.models.backbones import SwinTransformer

from mmseg_clip_wsss.registry import register_seg_and_det


class ConvStem(nn.Module):
    """Stacked 3x3 stride-2 convolutions that turn an image into Swin tokens.

    Drop-in replacement of Swin's ``PatchEmbed``: the same output, ``(tokens, hw_shape)``, with
    tokens (B, H / stride * W / stride, embed_dims), normalised by ``token_norm`` when given.

    Args:
        in_channels (int): Image channels.
        embed_dims (int): Token width.
        stride (int): Total down-sampling, a power of 2 (Swin's first stride, 4).
        stem_channels (int): Width of the hidden convolutions.
        norm_cfg (dict): Norm layer of the convolutions.
        token_norm (nn.Module, optional): Norm of the tokens (Swin's patch norm), or None.
    """

    def __init__(self, in_channels: int, embed_dims: int, stride: int, stem_channels: int,
                 norm_cfg: dict, token_norm: Optional[nn.Module]):
        super().__init__()
        num_convs = int(round(math.log2(stride)))
        if stride < 2 or 2**num_convs != stride:
            raise ValueError(f'ConvStem needs a power-of-2 stride >= 2, got {stride}')
        convs, channels = [], in_channels
        for _ in range(num_convs):
            convs.append(ConvModule(channels, stem_channels, 3, stride=2, padding=1,
                                    norm_cfg=norm_cfg, act_cfg=dict(type='ReLU')))
            channels = stem_channels
        self.convs = nn.Sequential(*convs)
        self.proj = nn.Conv2d(channels, embed_dims, 1)
        self.token_norm = token_norm if token_norm is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x = self.proj(self.convs(x))  # (B, C, H / s, W / s)
        hw_shape = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)  # (B, L, C)
        return self.token_norm(x), hw_shape


@register_seg_and_det
class ConvStemSwinTransformer(SwinTransformer):
    """Swin Transformer whose first stage reads tokens from a small convolutional stem.

    A non-overlapping 4x4 patchify layer makes a transformer slow to optimise from random
    initialisation; a few stride-2 3x3 convolutions instead make it train faster and more stably
    (Xiao et al., "Early Convolutions Help Transformers See Better", NeurIPS 2021). The demo trains
    its small Swin from scratch on a CPU, where this matters most (docs/benchmarks.md measures both
    stems). With ImageNet-pretrained Swin weights use mmseg's ``SwinTransformer``; such weights load
    here too, except the stem's.

    Args:
        stem_channels (int): Width of the stem's hidden convolutions. Defaults to ``embed_dims // 2``
            (at least 8).
        stem_norm_cfg (dict): Norm layer of the stem convolutions. Defaults to BN.
        **kwargs: Arguments of :class:`mmseg.models.backbones.SwinTransformer`; its first stride
            (``patch_size``) must be a power of 2.
    """

    def __init__(self, stem_channels: int = None, stem_norm_cfg: dict = dict(type='BN'), **kwargs):
        super().__init__(**kwargs)
        patchify = self.patch_embed.projection  # the parent's layer: its sizes, its patch norm
        embed_dims = patchify.out_channels
        self.patch_embed = ConvStem(patchify.in_channels, embed_dims, patchify.stride[0],
                                    stem_channels or max(embed_dims // 2, 8), stem_norm_cfg,
                                    self.patch_embed.norm)
        if self.frozen_stages >= 0:  # the parent froze the patchify layer it built
            self._freeze_stages()
