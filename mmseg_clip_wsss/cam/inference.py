"""Multi-scale + flip CAM inference.

The standard protocol for pseudo masks: the CAMs of an image are computed at several scales and on the
horizontally flipped image, brought back to the input frame, and merged. Any model that exposes
``compute_cams(inputs (B, 3, H, W), image_labels (B, K)) -> (B, K, H, W)`` works (the text-guided
segmentor and the plain CAM baseline do).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg_clip_wsss.models.utils import resize_rows
from .protocol import DEFAULT_PROTOCOL

__all__ = ['multi_scale_flip_cams', 'scaled_size']


def scaled_size(size: Sequence[int], scale: float,
                size_divisor: Optional[int] = None) -> Tuple[int, int]:
    """(H, W) of an image of ``size`` resized by ``scale``.

    Args:
        size (Sequence[int]): (H, W).
        scale (float): Resize factor (> 0).
        size_divisor (int, optional): Round each side to a multiple of it (at least one multiple), for
            backbones that need it. Defaults to None (round to the nearest pixel).

    Returns:
        tuple[int, int]: The scaled (H, W).
    """
    if scale <= 0:
        raise ValueError(f'multi_scale_flip_cams: scales must be > 0, got {scale}.')
    out = []
    for side in size:
        s = side * scale
        if size_divisor:
            out.append(max(size_divisor, int(round(s / size_divisor)) * size_divisor))
        else:
            out.append(max(1, int(round(s))))
    return out[0], out[1]


def _check_inputs(model, inputs: Tensor, image_labels: Tensor, scales: Sequence[float]) -> None:
    """Raise for a model without ``compute_cams``, badly shaped inputs or labels, or no scale."""
    if not hasattr(model, 'compute_cams'):
        raise TypeError(f'multi_scale_flip_cams: {type(model).__name__} has no `compute_cams` method; '
                        'use a WSSSEncoderDecoder (or the CAM baseline) checkpoint.')
    if inputs.dim() != 4:
        raise ValueError(f'multi_scale_flip_cams: inputs must be (B, 3, H, W), got '
                         f'{tuple(inputs.shape)}.')
    if image_labels.dim() != 2 or image_labels.shape[0] != inputs.shape[0]:
        raise ValueError(f'multi_scale_flip_cams: image_labels must be (B, K) with B = '
                         f'{inputs.shape[0]}, got {tuple(image_labels.shape)}.')
    if len(scales) == 0:
        raise ValueError('multi_scale_flip_cams: give at least one scale.')


def _scale_cams(model, inputs: Tensor, labels: Tensor, size: Tuple[int, int], flip: bool,
                rows: Tensor) -> Tensor:
    """(B, K', H, W) CAMs of the ``rows`` classes of ``inputs`` resized to ``size``, back at (H, W);
    flips summed in."""
    b, _, h, w = inputs.shape
    x = inputs if size == (h, w) else F.interpolate(
        inputs, size=size, mode='bilinear', align_corners=False)  # (B, 3, h_s, w_s)
    batch_labels = labels
    if flip:
        x = torch.cat([x, x.flip(-1)], dim=0)  # (2B, 3, h_s, w_s)
        batch_labels = torch.cat([labels, labels], dim=0)  # (2B, K)
    cams = model.compute_cams(x, batch_labels)[:, rows].float()  # (B or 2B, K', h', w')
    if tuple(cams.shape[-2:]) != (h, w):
        cams = resize_rows(cams, (h, w))
    if flip:
        cams = cams[:b] + cams[b:].flip(-1)  # (B, K', H, W)
    return cams


@torch.no_grad()
def multi_scale_flip_cams(model,
                          inputs: Tensor,
                          image_labels: Tensor,
                          scales: Sequence[float] = DEFAULT_PROTOCOL.scales,
                          flip: bool = DEFAULT_PROTOCOL.flip,
                          normalise: bool = True,
                          size_divisor: Optional[int] = DEFAULT_PROTOCOL.size_divisor) -> Tensor:
    """CAMs merged over scales and horizontal flips, restricted to the image labels.

    For every scale the batch is resized (bilinear), concatenated with its horizontal flip when
    ``flip`` is set, and passed once through ``model.compute_cams``; the flipped half is flipped back,
    every map is resized back to (H, W) and accumulated. Flip-equivariant by construction:
    ``flip(msf(x)) == msf(flip(x))``.

    Args:
        model: Object with ``compute_cams(inputs, image_labels) -> (B, K, h, w)``.
        inputs (Tensor): (B, 3, H, W) normalised images.
        image_labels (Tensor): (B, K) multi-hot image-level labels.
        scales (Sequence[float]): Resize factors. Defaults to (1.0, 0.5, 1.5).
        flip (bool): Also use the horizontally flipped images. Defaults to True.
        normalise (bool): Sum the maps, then scale every class map of every image to max 1 (the
            ``compute_cams`` convention); False averages them. Defaults to True.
        size_divisor (int, optional): Round the scaled sizes to multiples of it. Defaults to None.

    Returns:
        Tensor: (B, K, H, W) non-negative CAMs, zero for classes absent from ``image_labels``.
    """
    _check_inputs(model, inputs, image_labels, scales)
    b, _, h, w = inputs.shape
    labels = image_labels.to(inputs.device)
    # only the classes some image of the batch holds are resized and merged: the rest end up zero
    rows = torch.nonzero((labels > 0).any(dim=0)).flatten()  # (K', )
    total = None
    count = 0
    for scale in scales:
        size = scaled_size((h, w), float(scale), size_divisor)
        cams = _scale_cams(model, inputs, labels, size, flip, rows)
        count += 2 if flip else 1
        total = cams if total is None else total + cams
    total = total.clamp(min=0)
    if normalise:
        total = total / total.amax(dim=(2, 3), keepdim=True).clamp(min=1e-5)
    else:
        total = total / count
    keep = (labels[:, rows] > 0).to(total.dtype)[:, :, None, None]  # (B, K', 1, 1)
    out = total.new_zeros(b, labels.shape[1], h, w)
    out[:, rows] = total * keep
    return out
