"""The image tower of an open_clip model as a dense backbone (ViT or ModifiedResNet)."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import Tensor

from mmseg_clip_wsss.registry import register_seg_and_det
from ..open_clip_models import load_open_clip
from .dense_modes import dense_last_block, dense_mode_settings

__all__ = ['CLIPVisionBackbone', 'resize_pos_embed']


def resize_pos_embed(pos_embed: Tensor, size: Tuple[int, int], num_prefix: int = 1,
                     mode: str = 'bicubic', scale_offset: Optional[float] = None) -> Tensor:
    """Resize the grid part of a (1 + g * g, C) position embedding to ``size`` = (h, w).

    The first ``num_prefix`` rows (class token) are kept as they are; the g x g grid is resized with
    ``F.interpolate`` (``align_corners=False``), the way open_clip and timm resize position embeddings.
    With ``scale_offset`` it is resized by the scale factors ``(h + offset) / g`` and
    ``(w + offset) / g`` instead (the output still has ``size``; the sampling positions follow the
    factors), as the released code of SCLIP, ClearCLIP and NACLIP does with offset 0.1.

    Returns:
        Tensor: (num_prefix + h * w, C); ``pos_embed`` itself when the grid already has ``size``.
    """
    prefix, grid = pos_embed[:num_prefix], pos_embed[num_prefix:]
    g = int(round(grid.shape[0]**0.5))
    if g * g != grid.shape[0]:
        raise ValueError(f'resize_pos_embed: {grid.shape[0]} grid positions are not a square grid.')
    if tuple(size) == (g, g):
        return pos_embed
    grid = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2)  # (1, C, g, g)
    if scale_offset is None:
        grid = F.interpolate(grid.float(), size=tuple(size), mode=mode, align_corners=False)
    else:
        factors = tuple((side + float(scale_offset)) / g for side in size)
        grid = F.interpolate(grid.float(), scale_factor=factors, mode=mode, align_corners=False,
                             recompute_scale_factor=False)
        if tuple(grid.shape[-2:]) != tuple(size):
            raise ValueError(f'resize_pos_embed: scale_offset={scale_offset} gives a '
                             f'{tuple(grid.shape[-2:])} grid, not {tuple(size)}; use an offset in [0, 1).')
    grid = grid.permute(0, 2, 3, 1).reshape(size[0] * size[1], -1).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=0)


@register_seg_and_det
class CLIPVisionBackbone(BaseModule):
    """An open_clip image tower that returns dense feature maps.

    Built through open_clip's own loader from a model-config name and a ``pretrained`` tag or local
    checkpoint file (the code path of :class:`CLIPPromptTextEncoder`: ``'ViT-B-16'`` + ``'openai'``,
    ``'RN50'`` + ``'openai'``, or a CLIP pretrained here by ``tools/pretrain_clip.py``); only the
    image tower is kept. Inputs of any size work: position embeddings are resized to the input's
    grid (the attention-pooling embedding of a ModifiedResNet likewise).

    Outputs, one (B, C, H / s, W / s) map per entry of ``out_indices``:

    - ViT (open_clip ``VisionTransformer``): the patch tokens after block ``i`` (0-based; negative
      indices count from the last block), all at stride ``s`` = patch size, C = width.
    - ModifiedResNet: stage ``i`` of ``layer1..layer4`` (stride 4, 8, 16, 32; C = 4, 8, 16, 32 x width).

    With ``out_proj=True`` one more map is appended: the last block's tokens projected into the joint
    image-text space (B, D, h, w), where each position can be compared with text embeddings. ViT:
    ``ln_post`` then ``proj`` of every patch token (the pooled image embedding of open_clip is the
    mean of these for ``pool_type='avg'``). ModifiedResNet: the value and output projections of the
    attention pooling applied at every position (MaskCLIP, Zhou et al. ECCV 2022; DenseCLIP, Rao et
    al. CVPR 2022). :meth:`dense_embeddings` returns that map alone.

    Dense zero-shot modes (``dense_mode``, :mod:`.dense_modes`): what the last block computes for the
    dense maps -- ``'plain'`` (as trained), ``'maskclip'``, ``'sclip'``, ``'clearclip'``, ``'naclip'``
    (ViT), ``'plain'`` and ``'maskclip'`` (ModifiedResNet). The last block's map of ``out_indices``
    and the projected map follow the mode; earlier blocks and the pooled :meth:`encode_image` do not.

    Args:
        model_name (str): open_clip model-config name.
        pretrained (str, optional): open_clip pretrained tag or local checkpoint file; None builds the
            architecture with random weights (e.g. to be filled by ``init_cfg=dict(type='Pretrained',
            checkpoint=..., prefix='visual.')``). Defaults to None.
        out_indices (Sequence[int], optional): Blocks (ViT) or stages (ResNet) to return. Defaults
            to None: the last block of a ViT, the four stages of a ResNet.
        out_proj (bool): Append the projected map of the last block. Defaults to False.
        frozen (bool): Freeze every parameter and keep the tower in eval mode (batch-norm statistics
            included). Defaults to True. To fine-tune, set False and train with layer-wise
            learning-rate decay (:class:`CLIPLayerDecayOptimizerConstructor`, :meth:`layer_id`).
        norm_eval (bool): Keep batch-norm layers in eval mode while the rest trains. Defaults to True.
        interpolate_mode (str): Mode of the position-embedding resize. Defaults to 'bicubic'.
        pos_embed_float16 (bool): Round the resized ViT position embedding to float16, as CLIP-ES's
            ``upsample_pos_emb`` returns it (its CAMs depend on it at the level of float rounding).
            Defaults to False.
        pos_embed_scale_offset (float, optional): Resize the position-embedding grid ``g`` by the scale
            factor ``(side + offset) / g`` (``F.interpolate(scale_factor=...)``), as the released code
            of SCLIP, ClearCLIP and NACLIP does (offset 0.1); None resizes to the size itself (open_clip
            and timm; the sampling positions differ slightly). Defaults to None.
        dense_mode (str): A dense zero-shot mode (:data:`~.dense_modes.DENSE_MODES` for a ViT,
            :data:`~.dense_modes.RESNET_DENSE_MODES` for a ModifiedResNet). Defaults to 'plain'.
        dense_cfg (dict, optional): Switches of the mode to change (:func:`~.dense_modes.
            dense_mode_settings`: ``attention``, ``residual``, ``ffn``, ``gaussian_std``; ResNet
            ``pos_embed``). Defaults to None (the authors' settings).
        quick_gelu (bool, optional): See :class:`CLIPPromptTextEncoder`. Defaults to None.
        cache_dir (str, optional): open_clip download cache. Defaults to None.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 model_name: str,
                 pretrained: Optional[str] = None,
                 out_indices: Optional[Sequence[int]] = None,
                 out_proj: bool = False,
                 frozen: bool = True,
                 norm_eval: bool = True,
                 interpolate_mode: str = 'bicubic',
                 pos_embed_float16: bool = False,
                 pos_embed_scale_offset: Optional[float] = None,
                 dense_mode: str = 'plain',
                 dense_cfg: Optional[dict] = None,
                 quick_gelu: Optional[bool] = None,
                 cache_dir: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        clip_model = load_open_clip(model_name, pretrained, cache_dir, quick_gelu,
                                    owner=type(self).__name__, warn_random=init_cfg is None)
        visual = clip_model.visual
        if isinstance(visual, VisionTransformer):
            self.arch = 'vit'
            if visual.attn_pool is not None:
                raise ValueError(f'CLIPVisionBackbone: {model_name} pools with an attentional pooler '
                                 '(CoCa-style); use a CLIP ViT.')
            num_levels = len(visual.transformer.resblocks)
            self.patch_size = visual.patch_size[0]
            self.pool_type = visual.pool_type
            self.final_ln_after_pool = visual.final_ln_after_pool
        elif isinstance(visual, ModifiedResNet):
            self.arch = 'resnet'
            num_levels = 4
        else:
            raise TypeError(f'CLIPVisionBackbone: {model_name} has a {type(visual).__name__} image tower; '
                            'only open_clip VisionTransformer and ModifiedResNet towers are supported.')
        self.num_levels = num_levels
        #: shortest image side (px) the tower takes: a ModifiedResNet halves it five times (a side
        #: under 31 px ends at 0 in a stride-2 average pool), a ViT needs one patch
        self.min_input_side = self.patch_size if self.arch == 'vit' else 32
        self.dense_mode = dense_mode
        self.dense_settings = self._dense_settings(model_name, dense_mode, dense_cfg)
        if out_indices is None:
            out_indices = (num_levels - 1, ) if self.arch == 'vit' else range(num_levels)
        self.out_indices = self._check_indices(out_indices, num_levels)
        # keep the tower's modules under their own names, so that an open_clip state dict loads with
        # init_cfg=dict(type='Pretrained', checkpoint=..., prefix='visual.')
        for name, child in visual.named_children():
            self.add_module(name, child)
        for name, param in visual.named_parameters(recurse=False):
            self.register_parameter(name, param)
        #: exp of CLIP's learned logit scale (100 for OpenAI's weights), for image-text scores
        self.logit_scale = float(clip_model.logit_scale.detach().exp())
        del clip_model
        self.model_name = model_name
        self.out_proj = out_proj
        self.embed_dim = int(visual.output_dim)
        self.frozen = frozen
        self.norm_eval = norm_eval
        self.interpolate_mode = interpolate_mode
        self.pos_embed_float16 = bool(pos_embed_float16)
        self.pos_embed_scale_offset = (None if pos_embed_scale_offset is None else
                                       float(pos_embed_scale_offset))
        if frozen:
            self.requires_grad_(False)

    def _dense_settings(self, model_name: str, dense_mode: str, dense_cfg: Optional[dict]) -> dict:
        """:func:`~.dense_modes.dense_mode_settings` of this tower; its error names the model."""
        try:
            return dense_mode_settings(dense_mode, self.arch, dense_cfg)
        except ValueError as err:
            raise ValueError(f'CLIPVisionBackbone ({model_name}): {err}') from None

    @staticmethod
    def _check_indices(out_indices: Sequence[int], num_levels: int) -> List[int]:
        indices = [int(i) for i in out_indices]
        if not indices or any(not -num_levels <= i < num_levels for i in indices):
            raise ValueError(f'CLIPVisionBackbone: out_indices {list(out_indices)} must be in '
                             f'[-{num_levels}, {num_levels}) for a tower of {num_levels} levels.')
        return sorted(i % num_levels for i in indices)

    def layer_id(self, name: str) -> int:
        """Depth of a parameter, by its name inside the backbone, for layer-wise learning-rate decay.

        Returns:
            int: 0 for the patch embedding / stem (class and position embeddings, ``ln_pre``), ``i + 1``
            for block (ViT) or stage (ResNet, ``layer{i+1}``) ``i``, ``num_levels + 1`` for the output
            (``ln_post``, ``proj``, ``attnpool``).
        """
        parts = name.split('.')
        if parts[0] in ('ln_post', 'proj', 'attnpool'):
            return self.num_levels + 1
        if self.arch == 'vit' and parts[:2] == ['transformer', 'resblocks']:
            return int(parts[2]) + 1
        if self.arch == 'resnet' and parts[0] in ('layer1', 'layer2', 'layer3', 'layer4'):
            return int(parts[0][-1])
        return 0

    def train(self, mode: bool = True):
        """Train/eval mode; a frozen tower stays in eval mode, batch norms too with ``norm_eval``."""
        super().train(mode and not self.frozen)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    # ------------------------------------------------------------------ ViT
    def vit_tokens(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Patch embedding, class token and resized position embedding, ``ln_pre``.

        Returns:
            tuple: tokens (B, 1 + h * w, C) (class token first) and the grid (h, w).
        """
        x = self.conv1(x)  # (B, C, h, w)
        hw = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)  # (B, h * w, C)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)  # (B, 1 + h * w, C)
        pos = resize_pos_embed(self.positional_embedding, hw, 1, self.interpolate_mode,
                               self.pos_embed_scale_offset)
        if self.pos_embed_float16:
            pos = pos.half()
        x = x + pos.to(x.dtype)
        return self.ln_pre(x), hw

    def vit_project(self, tokens: Tensor) -> Tensor:
        """Tokens (B, N, C) -> joint-space embeddings (B, N, D): ``ln_post`` then ``proj``."""
        return self.ln_post(tokens) @ self.proj

    def _last_level(self) -> int:
        """The deepest level the forward needs (all of them for the projected map)."""
        return self.num_levels - 1 if self.out_proj else self.out_indices[-1]

    def _forward_vit(self, x: Tensor) -> List[Tensor]:
        b = x.shape[0]
        x, (h, w) = self.vit_tokens(x)
        outs = []
        for i, block in enumerate(self.transformer.resblocks[:self._last_level() + 1]):
            x = self._run_block(i, block, x, (h, w))
            if i in self.out_indices:
                outs.append(x[:, 1:].transpose(1, 2).reshape(b, -1, h, w))  # (B, C, h, w)
        if self.out_proj:
            proj = self.vit_project(x[:, 1:])  # (B, h * w, D)
            outs.append(proj.transpose(1, 2).reshape(b, -1, h, w))
        return outs

    def _run_block(self, i: int, block, x: Tensor, size: Tuple[int, int]) -> Tensor:
        """Block ``i`` on tokens (B, N, C); the last one as the dense mode computes it."""
        if i == self.num_levels - 1 and self.dense_mode != 'plain':
            return dense_last_block(block, x, self.dense_settings, size)
        return block(x)

    def dense_embeddings(self, x: Tensor) -> Tensor:
        """The projected dense map of the dense mode, alone (what ``out_proj=True`` appends).

        Args:
            x (Tensor): (B, 3, H, W) images normalised as the CLIP was trained.

        Returns:
            Tensor: (B, D, H / s, W / s) joint-space embeddings (not normalised); ``s`` = patch size
            (ViT) or 32 (ModifiedResNet).
        """
        if self.arch == 'resnet':
            x = self.stem(x)
            return self.resnet_project(self.layer4(self.layer3(self.layer2(self.layer1(x)))))
        b = x.shape[0]
        x, (h, w) = self.vit_tokens(x)
        for i, block in enumerate(self.transformer.resblocks):
            x = self._run_block(i, block, x, (h, w))
        return self.vit_project(x[:, 1:]).transpose(1, 2).reshape(b, -1, h, w)

    # ------------------------------------------------------------------ ResNet
    def resnet_project(self, x: Tensor) -> Tensor:
        """Last-stage map (B, C, h, w) -> joint-space embeddings (B, D, h, w) (MaskCLIP): the
        attention pooling's value then output projection at every position, after adding its resized
        position embedding where the dense mode's ``pos_embed`` says so."""
        pool = self.attnpool
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, h * w, C)
        if self.dense_settings['pos_embed']:
            tokens = tokens + self.resize_pool_pos_embed((h, w))[1:].to(x.dtype)
        out = pool.c_proj(pool.v_proj(tokens))  # (B, h * w, D)
        return out.transpose(1, 2).reshape(b, -1, h, w)

    def resize_pool_pos_embed(self, size: Tuple[int, int]) -> Tensor:
        """The attention pooling's position embedding for a (h, w) last-stage map: (1 + h * w, C)."""
        return resize_pos_embed(self.attnpool.positional_embedding, tuple(size), 1, self.interpolate_mode)

    def _forward_resnet(self, x: Tensor) -> List[Tensor]:
        x = self.stem(x)  # (B, width, H / 4, W / 4)
        outs = []
        stages = (self.layer1, self.layer2, self.layer3, self.layer4)
        for i, stage in enumerate(stages[:self._last_level() + 1]):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        if self.out_proj:
            outs.append(self.resnet_project(x))
        return outs

    def stem(self, x: Tensor) -> Tensor:
        """The ModifiedResNet stem (three 3x3 convs and a 2x2 average pool)."""
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.act3(self.bn3(self.conv3(x)))
        return self.avgpool(x)

    def attention_pool(self, x: Tensor) -> Tensor:
        """open_clip's ``AttentionPool2d`` with its position embedding resized to ``x`` (B, C, h, w)."""
        pool = self.attnpool
        tokens = x.flatten(2).permute(2, 0, 1)  # (h * w, B, C)
        tokens = torch.cat([tokens.mean(dim=0, keepdim=True), tokens], dim=0)  # (1 + h * w, B, C)
        pos = self.resize_pool_pos_embed(x.shape[-2:])
        tokens = tokens + pos[:, None, :].to(tokens.dtype)
        out, _ = F.multi_head_attention_forward(
            query=tokens[:1], key=tokens, value=tokens, embed_dim_to_check=tokens.shape[-1],
            num_heads=pool.num_heads, q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight,
            v_proj_weight=pool.v_proj.weight, in_proj_weight=None,
            in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
            out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
            use_separate_proj_weight=True, training=False, need_weights=False)
        return out[0]  # (B, D)

    def encode_image(self, x: Tensor) -> Tensor:
        """The pooled image embedding (B, D), as open_clip's ``encode_image`` computes it, at any size."""
        if self.arch == 'resnet':
            x = self.stem(x)
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.attention_pool(x)
        x, _ = self.vit_tokens(x)
        return self.pool_tokens(self.transformer(x))

    def pool_tokens(self, tokens: Tensor) -> Tensor:
        """The last block's tokens (B, 1 + h * w, C) -> the pooled image embedding (B, D), pooled as
        the tower was trained (class token or patch mean; ``ln_post`` before or after pooling)."""
        if self.final_ln_after_pool:
            pooled = tokens[:, 1:].mean(dim=1) if self.pool_type == 'avg' else tokens[:, 0]
            return self.ln_post(pooled) @ self.proj
        tokens = self.ln_post(tokens)
        pooled = tokens[:, 1:].mean(dim=1) if self.pool_type == 'avg' else tokens[:, 0]
        return pooled @ self.proj

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Dense maps of ``out_indices`` (+ the projected map with ``out_proj``).

        Args:
            x (Tensor): (B, 3, H, W) images normalised as the CLIP was trained.

        Returns:
            tuple[Tensor]: (B, C_i, H / s_i, W / s_i) maps.
        """
        outs = self._forward_vit(x) if self.arch == 'vit' else self._forward_resnet(x)
        return tuple(outs)

    def init_weights(self):
        super().init_weights()
        if self.frozen:  # a Pretrained init_cfg loads after __init__: keep the tower frozen
            self.requires_grad_(False)

    def extra_repr(self) -> str:
        return (f'model_name={self.model_name!r}, arch={self.arch}, out_indices={self.out_indices}, '
                f'out_proj={self.out_proj}, frozen={self.frozen}, dense_mode={self.dense_mode!r}')
