"""Dense zero-shot modes of a CLIP image tower: what its last block computes for dense features.

A CLIP image tower is trained to match one pooled embedding with a caption; its patch tokens, read
through ``ln_post`` and ``proj``, are poor per-position classifiers because the last block's
query-key attention mixes global context into every token. Training-free open-vocabulary
segmentation changes that one block. :data:`DENSE_MODES` names the variants, each a preset of three
switches (:func:`dense_mode_settings`): the attention of the last block (``attention``), whether
its residual connection is kept (``residual``) and whether its feed-forward runs (``ffn``).

ViT towers (``ln_post`` and ``proj`` follow the modified block in every mode, as in all four papers'
code):

- ``'plain'``: the block as trained (query-key attention, residual, feed-forward).
- ``'maskclip'``: MaskCLIP (Zhou et al., "Extract Free Dense Labels from CLIP", ECCV 2022): the
  value embeddings replace the attention output (each token attends to itself only); residual and
  feed-forward kept. Headline (annotation-free, the authors' released figures, no key smoothing or
  prompt denoising): VOC20 49.5 mIoU, PASCAL Context 21.7, COCO-Stuff 12.5 (ViT-B/16); VOC20 41.5
  (RN50).
- ``'sclip'``: SCLIP (Wang et al., "SCLIP: Rethinking Self-Attention for Dense Vision-Language
  Inference", ECCV 2024): correlative self-attention ``softmax(q q^T s) + softmax(k k^T s)``;
  residual and feed-forward kept (its released code). Headline: VOC21 59.6 mIoU (ViT-B/16).
- ``'clearclip'``: ClearCLIP (Lan et al., "ClearCLIP: Decomposing CLIP Representations for Dense
  Vision-Language Inference", ECCV 2024): query-query attention ``softmax(q q^T s)``, no residual,
  no feed-forward. Headline: VOC20 80.9 mIoU (ViT-B/16).
- ``'naclip'``: NACLIP (Hajimiri et al., "Pay Attention to Your Neighbours: Training-Free
  Open-Vocabulary Semantic Segmentation", WACV 2025): key-key attention plus a Gaussian
  neighbourhood bias ``softmax(k k^T s + G)``, ``G[p, p'] = exp(-|p - p'|^2 / (2 std^2))`` over patch
  positions (0 for the class token), std 5 patches; no residual, no feed-forward (its ``reduced``
  architecture). Headline: VOC21 64.1 mIoU, COCO-Object 36.2 (ViT-B/16).

``s`` is the attention's own scale ``head_dim ** -0.5`` in every mode. The block's layer scale
(``ls_1``, ``ls_2``; identity in CLIP's weights) multiplies the attention and feed-forward outputs
as in the plain block.

ModifiedResNet towers (no patch self-attention; the attention pooling's projections are read at
every position): ``'plain'`` and ``'maskclip'`` (MaskCLIP's RN variant: the value projection then
the output projection ``c_proj(v_proj(x))`` at every position of the last stage). MaskCLIP's code
adds no position embedding there; ``pos_embed=True`` adds the pooling's resized position embedding
first, which is what ``'plain'`` computes.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['DENSE_MODES', 'RESNET_DENSE_MODES', 'ATTENTIONS', 'dense_mode_settings', 'neighbourhood_bias',
           'dense_attention', 'dense_last_block']

#: Dense modes of a ViT tower.
DENSE_MODES = ('plain', 'maskclip', 'sclip', 'clearclip', 'naclip')
#: Dense modes of a ModifiedResNet tower.
RESNET_DENSE_MODES = ('plain', 'maskclip')
#: Attentions of the last block: query-key, value only, q-q + k-k, q-q, k-k + neighbourhood.
ATTENTIONS = ('qk', 'value', 'qq+kk', 'qq', 'kk+neighbourhood')

_PRESETS = {
    'plain': dict(attention='qk', residual=True, ffn=True),
    'maskclip': dict(attention='value', residual=True, ffn=True),
    'sclip': dict(attention='qq+kk', residual=True, ffn=True),
    'clearclip': dict(attention='qq', residual=False, ffn=False),
    'naclip': dict(attention='kk+neighbourhood', residual=False, ffn=False, gaussian_std=5.0),
}
_RESNET_PRESETS = {'plain': dict(pos_embed=True), 'maskclip': dict(pos_embed=False)}


def dense_mode_settings(mode: str, arch: str, overrides: Optional[dict] = None) -> Dict:
    """The switches of a dense mode, with ``overrides`` applied.

    Args:
        mode (str): One of :data:`DENSE_MODES` (ViT) or :data:`RESNET_DENSE_MODES` (ModifiedResNet).
        arch (str): ``'vit'`` or ``'resnet'``.
        overrides (dict, optional): Switches to change: ViT ``attention`` (one of
            :data:`ATTENTIONS`), ``residual``, ``ffn``, ``gaussian_std`` (patches; the
            neighbourhood attention); ModifiedResNet ``pos_embed``.

    Returns:
        dict: The switches (ViT: ``attention``, ``residual``, ``ffn``, ``gaussian_std``; ResNet:
        ``pos_embed``).

    Raises:
        ValueError: an unknown mode (the valid names are listed), a mode the tower has no
            counterpart for, or an unknown switch / attention.
    """
    presets = _PRESETS if arch == 'vit' else _RESNET_PRESETS
    if mode not in presets:
        valid = DENSE_MODES if arch == 'vit' else RESNET_DENSE_MODES
        extra = (f' ({sorted(set(DENSE_MODES) - set(RESNET_DENSE_MODES))} need a ViT tower)'
                 if arch != 'vit' and mode in DENSE_MODES else '')
        raise ValueError(f'dense_mode={mode!r} is not a dense mode of a {arch} tower; valid: {valid}{extra}.')
    settings = dict(presets[mode])
    if arch == 'vit':
        settings.setdefault('gaussian_std', 5.0)
    unknown = set(overrides or {}) - set(settings)
    if unknown:
        raise ValueError(f'dense_cfg keys {sorted(unknown)} are unknown for a {arch} tower; valid: '
                         f'{sorted(settings)}.')
    settings.update(overrides or {})
    if arch == 'vit' and settings['attention'] not in ATTENTIONS:
        raise ValueError(f"dense_cfg attention={settings['attention']!r} must be one of {ATTENTIONS}.")
    if arch == 'vit' and not float(settings['gaussian_std']) > 0:
        raise ValueError(f"dense_cfg gaussian_std={settings['gaussian_std']!r} must be > 0 (patches).")
    return settings


def neighbourhood_bias(size: Tuple[int, int], std: float, num_prefix: int = 1) -> Tensor:
    """NACLIP's Gaussian neighbourhood bias over a (h, w) patch grid.

    ``G[p, p'] = exp(-|p - p'|^2 / (2 std^2))`` for patch positions ``p, p'`` (distance in patches);
    rows and columns of the ``num_prefix`` leading tokens (class token) are 0.

    Returns:
        Tensor: (num_prefix + h * w, num_prefix + h * w) float32.
    """
    h, w = size
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing='ij')
    pos = torch.stack([rows.flatten(), cols.flatten()], dim=1)  # (h * w, 2)
    dist2 = (pos[:, None, :] - pos[None, :, :]).pow(2).sum(dim=-1)
    bias = torch.zeros(num_prefix + h * w, num_prefix + h * w)
    bias[num_prefix:, num_prefix:] = torch.exp(-dist2 / (2 * float(std)**2))
    return bias


def dense_attention(attn, x: Tensor, attention: str, size: Optional[Tuple[int, int]] = None,
                    gaussian_std: float = 5.0) -> Tensor:
    """A modified self-attention of an ``nn.MultiheadAttention`` (``in_proj`` packed q, k, v).

    Args:
        attn (nn.MultiheadAttention): The block's attention (its projections and heads are used).
        x (Tensor): (B, N, C) normalised tokens (``ln_1`` output), class token first.
        attention (str): One of :data:`ATTENTIONS`.
        size (tuple, optional): The (h, w) patch grid (``'kk+neighbourhood'`` only).
        gaussian_std (float): Std of the neighbourhood bias, in patches. Defaults to 5.

    Returns:
        Tensor: (B, N, C), after the output projection.
    """
    b, n, c = x.shape
    heads = attn.num_heads
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(b, n, heads, c // heads).transpose(1, 2) for t in (q, k, v))  # (B, heads, N, c')
    scale = (c // heads)**-0.5
    if attention == 'value':
        out = v
    else:
        if attention == 'qk':
            weights = (q @ k.transpose(-2, -1) * scale).softmax(dim=-1)
        elif attention == 'qq':
            weights = (q @ q.transpose(-2, -1) * scale).softmax(dim=-1)
        elif attention == 'qq+kk':
            weights = ((q @ q.transpose(-2, -1) * scale).softmax(dim=-1) +
                       (k @ k.transpose(-2, -1) * scale).softmax(dim=-1))
        elif attention == 'kk+neighbourhood':
            bias = neighbourhood_bias(size, gaussian_std, n - size[0] * size[1]).to(x)
            weights = (k @ k.transpose(-2, -1) * scale + bias).softmax(dim=-1)
        else:
            raise ValueError(f'dense_attention: attention={attention!r} must be one of {ATTENTIONS}.')
        out = weights @ v  # (B, heads, N, c')
    return attn.out_proj(out.transpose(1, 2).reshape(b, n, c))


def dense_last_block(block, x: Tensor, settings: dict, size: Tuple[int, int]) -> Tensor:
    """An open_clip ``ResidualAttentionBlock`` computed as a dense mode's ``settings`` say.

    Args:
        block: The block (``ln_1``, ``attn``, ``ls_1``, ``ln_2``, ``mlp``, ``ls_2``).
        x (Tensor): (B, N, C) tokens entering it, class token first.
        settings (dict): :func:`dense_mode_settings` of a ViT.
        size (tuple): The (h, w) patch grid.

    Returns:
        Tensor: (B, N, C) tokens.
    """
    out = block.ls_1(dense_attention(block.attn, block.ln_1(x), settings['attention'], size,
                                     settings['gaussian_std']))
    if settings['residual']:
        out = x + out
    if settings['ffn']:
        out = out + block.ls_2(block.mlp(block.ln_2(out)))
    return out
