"""The pieces of CLIP-ES (Lin et al., "CLIP is Also an Efficient Segmenter", CVPR 2023), batched.

- :func:`softmax_grad_cam`: Grad-CAM of image-text scores. With a softmax over the competing text
  rows (the present classes and the background words) the gradient of class ``k`` is
  ``p_k (t_k - sum_j p_j t_j)``: where another row's text explains a region better, class ``k``'s
  activation there falls. Without it (``competitors=None``) it is the Grad-CAM of the raw logit.
- :func:`vit_last_block_grad_cam` / :func:`attention_pool_grad_cam`: the same CAMs at the last block
  of a ViT / the last stage of a ModifiedResNet with the backward pass written out for every class
  at once (the mean gradient over the positions needs far less than a backward pass per class).
- :func:`cam_box_mask`: the boxes around the connected regions of each CAM above a fraction of its
  maximum (CLIP-ES's ``scoremap2bbox`` with one box per contour; ``rule='clip_es'`` draws them as
  its released code does, ``'exact'`` keeps every box's last row and column).
- :func:`class_aware_affinity_refine`: class-aware attention affinity (CAA): an attention map
  (mean of the last layers' self-attention), made doubly stochastic, symmetrised and squared, then
  restricted for every class to the columns inside the class's CAM boxes and applied to its CAM.

Loops run over the classes of :func:`softmax_grad_cam` (one backward pass each) and over the
(image, class) pairs of the box search; nothing loops over pixels.
"""
from typing import Callable, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

__all__ = ['BOX_RULES', 'minmax_normalise', 'softmax_grad_cam', 'closed_form_supported',
           'vit_last_block_grad_cam', 'attention_pool_grad_cam', 'cam_box_mask', 'sinkhorn_affinity',
           'class_aware_affinity_refine']


def minmax_normalise(maps: Tensor, eps: float = 1e-7) -> Tensor:
    """Every map (..., h, w) minus its minimum, divided by its maximum (CLIP-ES's ``scale_cam_image``).

    A constant map becomes 0.
    """
    low = maps.amin(dim=(-2, -1), keepdim=True)
    maps = maps - low
    return maps / (maps.amax(dim=(-2, -1), keepdim=True) + eps)


def _check_rows(targets: Tensor, competitors: Optional[Tensor]) -> None:
    if competitors is not None and bool((targets.bool() & ~competitors.bool()).any()):
        raise ValueError('softmax_grad_cam: every target row must be one of its image\'s competitors.')


def _target_rows(targets: Tensor) -> list:
    """The text rows that are a target of at least one image."""
    return torch.nonzero(targets.any(dim=0), as_tuple=False).flatten().tolist()


def _scores(image: Tensor, text: Tensor, competitors: Optional[Tensor], logit_scale: float) -> Tensor:
    """``logit_scale * cos(image, text)`` (B, T), softmax over each image's ``competitors``."""
    logits = logit_scale * F.normalize(image.float(), dim=-1) @ F.normalize(text.float(), dim=-1).t()
    if competitors is None:
        return logits
    return logits.masked_fill(~competitors.bool(), float('-inf')).softmax(dim=-1)


def softmax_grad_cam(tokens: Tensor,
                     embed: Callable[[Tensor], Tensor],
                     text: Tensor,
                     targets: Tensor,
                     competitors: Optional[Tensor],
                     logit_scale: float,
                     num_prefix: int = 0) -> Tensor:
    """Grad-CAM of the image-text scores with respect to ``tokens``, by autograd.

    The score of text row ``t`` is ``logit_scale * cos(embed(tokens), text[t])``; with
    ``competitors`` it is the softmax probability of ``t`` among the rows ``competitors`` allows for
    the image (CLIP-ES), else the logit itself. For every target, the channel weights are the mean
    gradient over the spatial tokens, and the CAM is the ReLU of the weighted sum of the channels.
    One backward pass through ``embed`` per target row; for the last block of an open_clip ViT,
    :func:`vit_last_block_grad_cam` gives the same CAMs at a fraction of the cost.

    Args:
        tokens (Tensor): (B, N, C) activations, ``num_prefix`` non-spatial tokens (class token) first;
            a graph from them to ``embed``'s output must exist (no ``no_grad``).
        embed (Callable): tokens (B, N, C) -> image embeddings (B, D).
        text (Tensor): (T, D) text embeddings.
        targets (Tensor): (B, T) bool, the rows to explain per image (others come out 0).
        competitors (Tensor, optional): (B, T) bool, the rows of each image's softmax (must include
            its targets); None scores the raw logits.
        logit_scale (float): Multiplier of the cosine similarities (CLIP's learned scale, 100 for
            OpenAI's weights).
        num_prefix (int): Leading non-spatial tokens. Defaults to 0.

    Returns:
        Tensor: (B, T, N - num_prefix) non-negative CAMs (not normalised).
    """
    b, n, _ = tokens.shape
    targets = targets.bool()
    _check_rows(targets, competitors)
    with torch.enable_grad():
        if not tokens.requires_grad:
            tokens = tokens.detach().requires_grad_(True)
        scores = _scores(embed(tokens), text, competitors, logit_scale)  # (B, T)
        spatial = tokens[:, num_prefix:]  # (B, n, C)
        cams = tokens.new_zeros(b, text.shape[0], n - num_prefix, dtype=torch.float32)
        rows = _target_rows(targets)
        for i, t in enumerate(rows):
            # images are independent: the gradient of the sum is every image's own gradient
            score = (scores[:, t] * targets[:, t]).sum()
            grad, = torch.autograd.grad(score, tokens, retain_graph=i + 1 < len(rows))
            weights = grad[:, num_prefix:].mean(dim=1)  # (B, C)
            cams[:, t] = (spatial.detach() * weights[:, None]).sum(dim=-1).float().relu()
    return cams * targets[:, :, None]


#: Activations of the MLP that act on every element alone (their derivative is taken element-wise).
_ELEMENTWISE_ACTIVATIONS = ('GELU', 'QuickGELU', 'SiLU', 'ReLU')


def closed_form_supported(block: nn.Module) -> bool:
    """Whether :func:`vit_last_block_grad_cam` can run ``block``: an open_clip
    ``ResidualAttentionBlock`` (``ln_1``, an ``nn.MultiheadAttention`` with one input projection and
    biases and no ``add_bias_kv`` / ``add_zero_attn``, layer scales or none, ``ln_2``, the ``c_fc`` /
    element-wise activation / ``c_proj`` MLP; LayerNorms with weight and bias)."""
    attn = getattr(block, 'attn', None)
    mlp = getattr(block, 'mlp', None)
    norms = [getattr(block, n, None) for n in ('ln_1', 'ln_2')]
    return (isinstance(attn, nn.MultiheadAttention) and attn.batch_first and attn._qkv_same_embed_dim
            and attn.in_proj_bias is not None and attn.bias_k is None and not attn.add_zero_attn
            and all(isinstance(m, nn.LayerNorm) and m.weight is not None and m.bias is not None for m in norms)
            and not hasattr(block, 'ln_1_kv')
            and isinstance(mlp, nn.Sequential) and list(mlp._modules) == ['c_fc', 'gelu', 'c_proj']
            and type(mlp.gelu).__name__ in _ELEMENTWISE_ACTIVATIONS
            and all(_is_layer_scale(getattr(block, n, None)) for n in ('ls_1', 'ls_2')))


def _is_layer_scale(module) -> bool:
    """An identity or a per-channel scale (open_clip's ``LayerScale``, ``x * gamma``)."""
    return isinstance(module, nn.Identity) or (type(module).__name__ == 'LayerScale'
                                               and isinstance(getattr(module, 'gamma', None), Tensor))


def _scaled(grad: Tensor, module: nn.Module) -> Tensor:
    """The gradient through a layer scale (a new tensor: open_clip's in-place scale would change
    ``grad``)."""
    return grad if isinstance(module, nn.Identity) else grad * module.gamma


def _standardised(x: Tensor, norm: nn.LayerNorm) -> Tuple[Tensor, Tensor]:
    """LayerNorm's normalised input ``(x - mean) / std`` and its ``std`` (..., 1)."""
    std = (x.var(dim=-1, unbiased=False, keepdim=True) + norm.eps).sqrt()
    return (x - x.mean(dim=-1, keepdim=True)) / std, std


def _layer_norm_grad(standardised: Tensor, std: Tensor, norm: nn.LayerNorm, grad: Tensor) -> Tensor:
    """The gradient at a LayerNorm's input from the gradient ``grad`` at its output."""
    g = grad * norm.weight
    return (g - g.mean(dim=-1, keepdim=True)
            - standardised * (g * standardised).mean(dim=-1, keepdim=True)) / std


@torch.no_grad()
def vit_last_block_grad_cam(block: nn.Module,
                            x: Tensor,
                            ln_post: nn.LayerNorm,
                            proj: Tensor,
                            token_weights: Tensor,
                            text: Tensor,
                            targets: Tensor,
                            competitors: Optional[Tensor],
                            logit_scale: float) -> Tuple[Tensor, Tensor]:
    """:func:`softmax_grad_cam` at the ``ln_1`` output of the last block of an open_clip ViT (what
    CLIP-ES explains), its backward pass written out, for every target row at once.

    The image embedding is ``sum_j token_weights[j] * ln_post(out_j) @ proj`` over the block's output
    tokens (the patch mean of CLIP-ES, or the class token). A Grad-CAM needs only the *mean* gradient
    over the patch tokens, so the backward pass through the attention never forms the (N, N) gradient
    of the attention matrix for the key and value paths: with ``A`` the attention, ``do`` the
    gradient at a head's output ``o`` and ``v``, ``q``, ``k`` its inputs, the patch sums are

    - values: ``sum_{i>0} dv_i = sum_j (1 - A_j0) do_j``;
    - keys: a softmax row's gradient sums to 0, so ``sum_{i>0} dk_i = -sum_j dS_j0 q_j / sqrt(d)``
      with ``dS_j0 = A_j0 do_j . (v_0 - o_j)``;
    - queries: ``sum_{j>0} dq_j = sum_i s_i k_i / sqrt(d)``, ``s_i = v_i . (A^T do)_i - (A^T r)_i``
      over the patch rows ``j > 0``, ``r_j = do_j . o_j``.

    The gradient at ``ln_post``'s output is one vector per row, weighted per token, so
    ``ln_post``'s backward pass is that vector plus a per-token multiple of the token itself, and the
    MLP's output projection is applied to the tokens once per image. Per target row what is left is
    the MLP's input projection and the attention's output projection backward and one (N, N)
    product per head: about 0.4x the block's forward pass, where autograd's backward pass through
    the block costs 1.1-1.5x (docs/benchmarks.md). The CAMs equal :func:`softmax_grad_cam`'s to float
    rounding (about 1e-5 relative in float32; checked in the tests). The block, ``x`` and
    ``token_weights`` may be in a lower precision (``TrainingFreeCLIPES.grad_cam_dtype``): the scores
    and their gradient at the image embedding are computed in float32 either way.

    Args:
        block (nn.Module): The last block (:func:`closed_form_supported`).
        x (Tensor): (B, N, C) tokens entering it, the class token first.
        ln_post (nn.LayerNorm): The tower's final LayerNorm, applied to every output token.
        proj (Tensor): (C, D) the tower's output projection.
        token_weights (Tensor): (N,) weight of every output token in the image embedding.
        text, targets, competitors, logit_scale: As for :func:`softmax_grad_cam`.

    Returns:
        tuple: CAMs (B, T, N - 1), non-negative, not normalised; the block's attention (B, N, N),
        heads averaged (what ``need_weights=True`` returns).
    """
    targets = targets.bool()
    _check_rows(targets, competitors)
    b, n, _ = x.shape
    fwd = _last_block_forward(block, x, ln_post)
    token_weights = token_weights.to(x)
    image = torch.einsum('n,bnd->bd', token_weights, fwd['out_ln'] @ proj)  # (B, D)
    cams = x.new_zeros(b, text.shape[0], n - 1, dtype=torch.float32)
    rows = _target_rows(targets)
    if rows:
        grad_image = _score_grads(image.float(), text, targets, competitors, logit_scale, rows)  # (B, R, D)
        weights = _patch_mean_grad(block, fwd, ln_post, grad_image.to(x) @ proj.t(), token_weights)  # (B, R, C)
        cams[:, rows] = torch.einsum('bnc,brc->brn', fwd['z'][:, 1:], weights).float().relu()
    return cams * targets[:, :, None], fwd['a'].mean(dim=1)


def _score_grads(image: Tensor, text: Tensor, targets: Tensor, competitors: Optional[Tensor],
                 logit_scale: float, rows: list) -> Tensor:
    """The gradient of every target row's score at the image embeddings (B, D) -> (B, R, D), zero
    for the images whose target the row is not."""
    with torch.enable_grad():
        leaf = image.detach().requires_grad_(True)
        scores = _scores(leaf, text, competitors, logit_scale)  # (B, T)
        return torch.stack([torch.autograd.grad((scores[:, t] * targets[:, t]).sum(), leaf,
                                                retain_graph=True)[0] for t in rows], dim=1)


@torch.no_grad()
def attention_pool_grad_cam(x: Tensor,
                            pool: nn.Module,
                            pos_embed: Tensor,
                            text: Tensor,
                            targets: Tensor,
                            competitors: Optional[Tensor],
                            logit_scale: float,
                            position_attention: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
    """:func:`softmax_grad_cam` at the last stage of a ModifiedResNet (the input of its attention
    pooling), the backward pass written out for every target row at once.

    open_clip's ``AttentionPool2d`` attends from one query, the mean position ``u_0`` (plus its
    position embedding), to ``u_0`` and every position ``u_i = x_i + pos_i``. The Grad-CAM needs
    only the mean gradient over the positions ``x_i``, and with ``do`` the gradient at a head's
    output ``o = sum_i a_i v_i``, summed over every token: the values give ``sum_i a_i do = do``
    (the attention sums to 1), the keys nothing (a softmax's gradient sums to 0), the query
    ``dq = sum_i ds_i k_i / sqrt(d)`` with ``ds_i = a_i (do . v_i - do . o)``; ``u_0`` passes a
    ``1 / n`` share to every position. So the weights are ``(W_v^T do + W_q^T dq) / n``: no
    backward pass, a few (n, C) products per target row. The CAMs equal :func:`softmax_grad_cam`'s
    with the pooling as ``embed`` to float rounding (checked in the tests): in float32 within about
    1e-5 of the largest map, and up to about 1% of a weak map's own peak, where the channel sum
    cancels (autograd is as far from float64 there). No graph is kept (no ``requires_grad``).

    Args:
        x (Tensor): (B, C, h, w) the last stage's map.
        pool (nn.Module): The ``AttentionPool2d`` (``q_proj``, ``k_proj``, ``v_proj``, ``c_proj``,
            ``num_heads``).
        pos_embed (Tensor): (1 + h * w, C) its position embedding at this size.
        text, targets, competitors, logit_scale: As for :func:`softmax_grad_cam`.
        position_attention (bool): Also return the pooling's attention among the positions (its
            query and key projections at every position, heads averaged; the affinity of a
            ModifiedResNet), with the keys of the Grad-CAM. Defaults to False.

    Returns:
        tuple: CAMs (B, T, h * w), non-negative, not normalised; the attention among the positions
        (B, h * w, h * w), or None.
    """
    targets = targets.bool()
    _check_rows(targets, competitors)
    b, c, h, w = x.shape
    n, heads = h * w, pool.num_heads
    d = c // heads
    spatial = x.flatten(2).transpose(1, 2)  # (B, n, C)
    tokens = torch.cat([spatial.mean(dim=1, keepdim=True), spatial], dim=1) + pos_embed.to(x.dtype)
    queries = pool.q_proj(tokens if position_attention else tokens[:, :1])  # (B, 1 [+ n], C)
    queries = queries.reshape(b, -1, heads, d).transpose(1, 2)  # (B, H, 1 [+ n], d)
    k, v = (proj(tokens).reshape(b, n + 1, heads, d).transpose(1, 2)  # (B, H, 1 + n, d)
            for proj in (pool.k_proj, pool.v_proj))
    attention = None
    if position_attention:
        attention = (queries[:, :, 1:] @ k[:, :, 1:].transpose(-2, -1) * d ** -0.5).softmax(dim=-1).mean(dim=1)
    q = queries[:, :, 0]  # (B, H, d)
    a = (torch.einsum('bhd,bhnd->bhn', q, k) * d ** -0.5).softmax(dim=-1)  # (B, H, 1 + n)
    o = torch.einsum('bhn,bhnd->bhd', a, v)  # (B, H, d)
    cams = x.new_zeros(b, text.shape[0], n, dtype=torch.float32)
    rows = _target_rows(targets)
    if rows:
        image = pool.c_proj(o.reshape(b, c))  # (B, D)
        grad_image = _score_grads(image, text, targets, competitors, logit_scale, rows)  # (B, R, D)
        grad_o = (grad_image.to(x) @ pool.c_proj.weight).reshape(b, len(rows), heads, d)
        ds = a[:, None] * torch.einsum('brhd,bhnd->brhn', grad_o, v - o[:, :, None])  # (B, R, H, 1 + n)
        grad_q = torch.einsum('brhn,bhnd->brhd', ds, k) * d ** -0.5
        weights = (grad_o.flatten(2) @ pool.v_proj.weight + grad_q.flatten(2) @ pool.q_proj.weight) / n
        cams[:, rows] = torch.einsum('bnc,brc->brn', spatial, weights).float().relu()
    return cams * targets[:, :, None], attention


def _last_block_forward(block: nn.Module, x: Tensor, ln_post: nn.LayerNorm) -> dict:
    """The last block and ``ln_post`` on tokens (B, N, C), keeping what the backward pass reads:
    ``z`` (``ln_1`` output), per-head ``q``, ``k``, ``v``, attention ``a`` and output ``o``
    ((B, H, N, d) / (B, H, N, N)), the standardised inputs and stds of ``ln_2`` and ``ln_post``, the
    activation's derivative (B, N, 4C) and ``out_ln``, the output tokens after ``ln_post``."""
    attn = block.attn
    b, n, c = x.shape
    heads = attn.num_heads
    z = block.ln_1(x)  # (B, N, C)
    q, k, v = (t.reshape(b, n, heads, c // heads).transpose(1, 2)  # (B, H, N, d)
               for t in F.linear(z, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1))
    a = (q @ k.transpose(-2, -1) * (c // heads) ** -0.5).softmax(dim=-1)  # (B, H, N, N)
    o = a @ v  # (B, H, N, d)
    y = x + block.ls_1(attn.out_proj(o.transpose(1, 2).reshape(b, n, c)))
    y_std, y_sd = _standardised(y, block.ln_2)
    hidden = block.mlp.c_fc(y_std * block.ln_2.weight + block.ln_2.bias)  # (B, N, 4C)
    with torch.enable_grad():
        leaf = hidden.detach().requires_grad_(True)
        act = block.mlp.gelu(leaf)
        act_grad, = torch.autograd.grad(act.sum(), leaf)  # the activation's derivative
    out = y + block.ls_2(block.mlp.c_proj(act.detach()))
    out_std, out_sd = _standardised(out, ln_post)
    return dict(z=z, q=q, k=k, v=v, a=a, o=o, y_std=y_std, y_sd=y_sd, act_grad=act_grad,
                out_std=out_std, out_sd=out_sd, out_ln=out_std * ln_post.weight + ln_post.bias)


def _patch_mean_grad(block: nn.Module, fwd: dict, ln_post: nn.LayerNorm, grad: Tensor,
                     token_weights: Tensor) -> Tensor:
    """The mean gradient over the patch tokens of ``z`` (B, R, C), from the gradient
    ``token_weights[t] * grad[:, r]`` at the output of ``ln_post`` at every token ``t`` (``grad``:
    (B, R, C), R target rows at once)."""
    attn = block.attn
    b, r, c = grad.shape
    n = token_weights.shape[0]
    heads = attn.num_heads
    d = c // heads
    q, k, v, a, o = (fwd[key] for key in 'qkvao')
    # back through ln_post: with x_t its standardised input and s_t its std, the gradient at token t
    # is (w_t / s_t) (h - x_t (h . x_t) / C), h the centred grad * weight: the same h for every token
    x_std = fwd['out_std']  # (B, N, C)
    h = grad * ln_post.weight
    h = h - h.mean(dim=-1, keepdim=True)  # (B, R, C)
    along = torch.einsum('brc,bnc->brn', h, x_std)[..., None] / c  # (B, R, N, 1)
    scale = (token_weights[:, None] / fwd['out_sd'])[:, None]  # (B, 1, N, 1)
    grad_out = scale * (h[:, :, None] - along * x_std[:, None])  # (B, R, N, C)
    # the MLP's output projection, backward, term by term: x_t's product is made once per image
    w_out = block.mlp.c_proj.weight  # (C, 4C)
    x_out = _scaled(x_std, block.ls_2) @ w_out  # (B, N, 4C)
    h_out = _scaled(h, block.ls_2) @ w_out  # (B, R, 4C)
    grad_hidden = scale * (h_out[:, :, None] - along * x_out[:, None]) * fwd['act_grad'][:, None]
    grad_y = grad_out + _layer_norm_grad(fwd['y_std'][:, None], fwd['y_sd'][:, None], block.ln_2,
                                         grad_hidden @ block.mlp.c_fc.weight)
    grad_o = (_scaled(grad_y, block.ls_1) @ attn.out_proj.weight).reshape(b, r, n, heads, d)
    grad_o = grad_o.transpose(2, 3)  # (B, R, H, N, d)
    # through the attention, summed over the patch tokens: (B, R, H, d) each
    sum_dv = torch.einsum('bhn,brhnd->brhd', 1 - a[..., 0], grad_o)
    ds0 = a[:, None, ..., 0] * torch.einsum('brhnd,bhnd->brhn', grad_o, v[:, :, :1] - o)
    sum_dk = -torch.einsum('brhn,bhnd->brhd', ds0, q) * d ** -0.5
    r_o = torch.einsum('brhnd,bhnd->brhn', grad_o, o)
    patch_rows = a[:, :, 1:]  # (B, H, N - 1, N)
    a_t_do = torch.einsum('bhji,brhjd->brhid', patch_rows, grad_o[..., 1:, :])
    s = (torch.einsum('brhid,bhid->brhi', a_t_do, v)
         - torch.einsum('bhji,brhj->brhi', patch_rows, r_o[..., 1:]))
    sum_dq = torch.einsum('brhi,bhid->brhd', s, k) * d ** -0.5
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3, dim=0)
    total = sum(g.reshape(b, r, c) @ w for g, w in ((sum_dq, w_q), (sum_dk, w_k), (sum_dv, w_v)))
    return total / (n - 1)


#: How :func:`cam_box_mask` draws the boxes: CLIP-ES's released rule or the exact regions' boxes.
BOX_RULES = ('clip_es', 'exact')


def _region_boxes(above: np.ndarray, clip_last: bool) -> np.ndarray:
    """Union of the bounding boxes of the 8-connected regions of one (h, w) bool map; with
    ``clip_last`` every box ends at ``min(end, side - 1)`` (exclusive), as CLIP-ES's boxes do."""
    h, w = above.shape
    boxes = np.zeros_like(above)
    regions, _ = ndimage.label(above, structure=np.ones((3, 3), dtype=bool))
    for rows, cols in ndimage.find_objects(regions):
        if clip_last:
            rows, cols = slice(rows.start, min(rows.stop, h - 1)), slice(cols.start, min(cols.stop, w - 1))
        boxes[rows, cols] = True
    return boxes


def cam_box_mask(cams: Tensor, threshold: float = 0.4, rule: str = 'exact') -> Tensor:
    """The union of the bounding boxes of every 8-connected region where a CAM exceeds a fraction of
    its maximum (an all-zero map has no box).

    Rules (``rule``):

    - ``'exact'``: a position is inside where ``cam > threshold * max``; each box covers its region.
    - ``'clip_es'``: CLIP-ES's ``scoremap2bbox`` as released (Lin et al., CVPR 2023): the map is
      quantised to ``q = floor(255 * cam)`` (the CAMs are min-max normalised), a position is inside
      where ``q > int(threshold * max(q))``, and a box ``(x, y, w, h)`` ends at ``min(x + w, W - 1)``
      and ``min(y + h, H - 1)`` (exclusive): a box that touches the right or bottom edge loses its
      last column or row (a one-column box there is empty).

    Args:
        cams (Tensor): (B, K, h, w) maps in [0, 1].
        threshold (float): Fraction of each map's maximum. Defaults to 0.4 (CLIP-ES, VOC; 0.7 COCO).
        rule (str): One of :data:`BOX_RULES`. Defaults to ``'exact'``.

    Returns:
        Tensor: (B, K, h, w) bool, True inside the boxes.

    Raises:
        ValueError: for an unknown ``rule``.
    """
    if rule not in BOX_RULES:
        raise ValueError(f'cam_box_mask: rule={rule!r} must be one of {BOX_RULES}.')
    maps = cams.detach().float().cpu()
    if rule == 'clip_es':
        quantised = (maps * 255).to(torch.uint8).numpy()  # truncation, as numpy's astype(uint8)
        peak = quantised.max(axis=(2, 3), keepdims=True)
        limit = np.floor(float(threshold) * peak.astype(np.float64))  # int() of a positive number
        above = quantised > limit
    else:
        peak = maps.amax(dim=(-2, -1), keepdim=True)
        above = ((maps > threshold * peak) & (peak > 0)).numpy()  # (B, K, h, w)
    boxes = np.zeros_like(above)
    for i, k in zip(*np.nonzero(above.any(axis=(2, 3)))):
        boxes[i, k] = _region_boxes(above[i, k], clip_last=rule == 'clip_es')
    return torch.from_numpy(boxes).to(cams.device)


def sinkhorn_affinity(attention: Tensor, num_iters: int = 3, power: int = 2) -> Tensor:
    """Attention (B, n, n) -> a symmetric transition matrix, as CLIP-ES builds it.

    Alternate column and row normalisation ``num_iters`` times (towards a doubly stochastic matrix),
    symmetrise ``(A + A^T) / 2``, and raise to ``power`` (a random walk of ``power`` steps).

    Returns:
        Tensor: (B, n, n).
    """
    aff = attention.float()
    for _ in range(num_iters):
        aff = aff / aff.sum(dim=1, keepdim=True).clamp(min=1e-12)
        aff = aff / aff.sum(dim=2, keepdim=True).clamp(min=1e-12)
    aff = (aff + aff.transpose(1, 2)) / 2
    return torch.linalg.matrix_power(aff, power)


def class_aware_affinity_refine(cams: Tensor, affinity: Tensor, box_threshold: float = 0.4,
                                box_rule: str = 'exact') -> Tensor:
    """Class-aware affinity refinement (CAA of CLIP-ES).

    For class ``k``: ``refined_k = (A * box_k[None, :]) @ cam_k``: every position gathers the CAM of
    the positions inside the class's boxes, weighted by the affinity ``A``; then min-max normalised.

    Args:
        cams (Tensor): (B, K, h, w) CAMs (min-max normalised).
        affinity (Tensor): (B, h * w, h * w) transition matrix (:func:`sinkhorn_affinity`).
        box_threshold (float): See :func:`cam_box_mask`. Defaults to 0.4.
        box_rule (str): See :func:`cam_box_mask`. Defaults to ``'exact'``.

    Returns:
        Tensor: (B, K, h, w) refined CAMs in [0, 1]; all-zero maps stay zero.
    """
    b, k, h, w = cams.shape
    inside = cam_box_mask(cams, box_threshold, box_rule).to(cams.dtype).flatten(2)  # (B, K, n)
    affinity = affinity.to(cams.dtype)
    # in CLIP-ES's order (the affinity's columns masked, then one matrix-vector product per class):
    # the same float rounding, which the final min-max can magnify where a refined map is nearly flat
    refined = torch.stack([torch.stack([
        (affinity[i] * inside[i, c][None, :]) @ cams[i, c].reshape(-1, 1) for c in range(k)
    ]) for i in range(b)])  # (B, K, n, 1)
    return minmax_normalise(refined.reshape(b, k, h, w))
