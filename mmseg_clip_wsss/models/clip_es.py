"""The pieces of CLIP-ES (Lin et al., "CLIP is Also an Efficient Segmenter", CVPR 2023), batched.

- :func:`softmax_grad_cam`: Grad-CAM of image-text scores. With a softmax over the competing text
  rows (the present classes and the background words) the gradient of class ``k`` is
  ``p_k (t_k - sum_j p_j t_j)``: where another row's text explains a region better, class ``k``'s
  activation there falls. Without it (``competitors=None``) it is the Grad-CAM of the raw logit.
- :func:`cam_box_mask`: the boxes around the connected regions of each CAM above a fraction of its
  maximum (CLIP-ES's ``scoremap2bbox`` with one box per contour; ``rule='clip_es'`` draws them as
  its released code does, ``'exact'`` keeps every box's last row and column).
- :func:`class_aware_affinity_refine`: class-aware attention affinity (CAA): an attention map
  (mean of the last layers' self-attention), made doubly stochastic, symmetrised and squared, then
  restricted for every class to the columns inside the class's CAM boxes and applied to its CAM.

Loops run over classes (one backward each) and over the (image, class) pairs of the box search;
nothing loops over pixels.
"""
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

__all__ = ['BOX_RULES', 'minmax_normalise', 'softmax_grad_cam', 'cam_box_mask', 'sinkhorn_affinity',
           'class_aware_affinity_refine']


def minmax_normalise(maps: Tensor, eps: float = 1e-7) -> Tensor:
    """Every map (..., h, w) minus its minimum, divided by its maximum (CLIP-ES's ``scale_cam_image``).

    A constant map becomes 0.
    """
    low = maps.amin(dim=(-2, -1), keepdim=True)
    maps = maps - low
    return maps / (maps.amax(dim=(-2, -1), keepdim=True) + eps)


def softmax_grad_cam(tokens: Tensor,
                     embed: Callable[[Tensor], Tensor],
                     text: Tensor,
                     targets: Tensor,
                     competitors: Optional[Tensor],
                     logit_scale: float,
                     num_prefix: int = 0) -> Tensor:
    """Grad-CAM of the image-text scores with respect to ``tokens``.

    The score of text row ``t`` is ``logit_scale * cos(embed(tokens), text[t])``; with
    ``competitors`` it is the softmax probability of ``t`` among the rows ``competitors`` allows for
    the image (CLIP-ES), else the logit itself. For every target, the channel weights are the mean
    gradient over the spatial tokens, and the CAM is the ReLU of the weighted sum of the channels.

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
    if competitors is not None and bool((targets & ~competitors.bool()).any()):
        raise ValueError('softmax_grad_cam: every target row must be one of its image\'s competitors.')
    with torch.enable_grad():
        if not tokens.requires_grad:
            tokens = tokens.detach().requires_grad_(True)
        image = F.normalize(embed(tokens).float(), dim=-1)  # (B, D)
        logits = logit_scale * image @ F.normalize(text.float(), dim=-1).t()  # (B, T)
        if competitors is not None:
            logits = logits.masked_fill(~competitors.bool(), float('-inf')).softmax(dim=-1)
        spatial = tokens[:, num_prefix:]  # (B, n, C)
        cams = tokens.new_zeros(b, text.shape[0], n - num_prefix, dtype=torch.float32)
        rows = torch.nonzero(targets.any(dim=0), as_tuple=False).flatten().tolist()
        for i, t in enumerate(rows):
            # images are independent: the gradient of the sum is every image's own gradient
            score = (logits[:, t] * targets[:, t]).sum()
            grad, = torch.autograd.grad(score, tokens, retain_graph=i + 1 < len(rows))
            weights = grad[:, num_prefix:].mean(dim=1)  # (B, C)
            cams[:, t] = (spatial.detach() * weights[:, None]).sum(dim=-1).float().relu()
    return cams * targets[:, :, None]


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
