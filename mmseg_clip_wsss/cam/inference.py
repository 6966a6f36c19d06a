"""Multi-scale + flip CAM inference.

The standard protocol for pseudo masks: the CAMs of an image are computed at several scales and on the
horizontally flipped image, brought back to the input frame, and merged. Any model that exposes
``compute_cams(inputs (B, 3, H, W), image_labels (B, K)) -> (B, K, H, W)`` works (the text-guided
segmentor and the plain CAM baseline do).
"""
import contextlib
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg_clip_wsss.models.utils import resize_rows
from .protocol import DEFAULT_PROTOCOL

__all__ = ['multi_scale_flip_cams', 'scaled_size', 'scale_inputs', 'merge_scale_cams', 'label_rows',
           'autocast']


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


def autocast(device: torch.device, amp: Optional[str]):
    """bfloat16 autocast on ``device`` for ``amp='bf16'``; a context that does nothing for None."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def label_rows(image_labels: Tensor) -> Tensor:
    """Indices (K', ) of the classes some image of the batch holds: only their CAMs are resized and
    merged (the others end up zero)."""
    return torch.nonzero((image_labels > 0).any(dim=0)).flatten()


def scale_inputs(inputs: Tensor, scales: Sequence[float], flip: bool,
                 size_divisor: Optional[int] = None) -> List[Tensor]:
    """The network input of every scale: ``inputs`` (B, 3, H, W) resized (bilinear) and, when
    ``flip``, followed by its horizontal flip in the same batch -> (B or 2B, 3, h_s, w_s) each."""
    h, w = inputs.shape[-2:]
    out = []
    for scale in scales:
        size = scaled_size((h, w), float(scale), size_divisor)
        x = inputs if size == (h, w) else F.interpolate(
            inputs, size=size, mode='bilinear', align_corners=False)  # (B, 3, h_s, w_s)
        out.append(torch.cat([x, x.flip(-1)], dim=0) if flip else x)
    return out


def merge_scale_cams(scale_cams: Sequence[Tensor], image_labels: Tensor, rows: Tensor,
                     size: Tuple[int, int], flip: bool, normalise: bool = True) -> Tensor:
    """Merge the CAMs of every scale into (B, K, H, W).

    Args:
        scale_cams (Sequence[Tensor]): Per scale, the (B or 2B, K', h_s, w_s) CAMs of the ``rows``
            classes of :func:`scale_inputs`' batch (flipped images in the second half).
        image_labels (Tensor): (B, K) multi-hot labels.
        rows (Tensor): (K', ) the classes of the rows (:func:`label_rows`).
        size (tuple[int, int]): (H, W) of the input.
        flip (bool): The batches hold the flipped images too (flipped back and added here).
        normalise (bool): Scale every class map to max 1; False averages. Defaults to True.

    Returns:
        Tensor: (B, K, H, W) non-negative, zero for classes absent from ``image_labels``.
    """
    total = None
    for cams in scale_cams:
        cams = cams.float()
        if tuple(cams.shape[-2:]) != tuple(size):
            cams = resize_rows(cams, size)
        if flip:
            half = cams.shape[0] // 2
            cams = cams[:half] + cams[half:].flip(-1)  # (B, K', H, W)
        total = cams if total is None else total + cams
    total = total.clamp(min=0)
    if normalise:
        total = total / total.amax(dim=(2, 3), keepdim=True).clamp(min=1e-5)
    else:
        total = total / (len(scale_cams) * (2 if flip else 1))
    keep = (image_labels[:, rows] > 0).to(total.dtype)[:, :, None, None]  # (B, K', 1, 1)
    out = total.new_zeros(total.shape[0], image_labels.shape[1], *total.shape[-2:])
    out[:, rows] = total * keep
    return out


@torch.no_grad()
def multi_scale_flip_cams(model,
                          inputs: Tensor,
                          image_labels: Tensor,
                          scales: Sequence[float] = DEFAULT_PROTOCOL.scales,
                          flip: bool = DEFAULT_PROTOCOL.flip,
                          normalise: bool = True,
                          size_divisor: Optional[int] = DEFAULT_PROTOCOL.size_divisor,
                          amp: Optional[str] = DEFAULT_PROTOCOL.amp) -> Tensor:
    """CAMs merged over scales and horizontal flips, restricted to the image labels.

    For every scale the batch is resized (bilinear), concatenated with its horizontal flip when
    ``flip`` is set, and passed once through ``model.compute_cams``; the flipped half is flipped back,
    every map is resized back to (H, W) and accumulated (:func:`merge_scale_cams`; only the classes
    some image holds). Flip-equivariant by construction: ``flip(msf(x)) == msf(flip(x))``.

    Args:
        model: Object with ``compute_cams(inputs, image_labels) -> (B, K, h, w)``.
        inputs (Tensor): (B, 3, H, W) normalised images.
        image_labels (Tensor): (B, K) multi-hot image-level labels.
        scales (Sequence[float]): Resize factors. Defaults to (1.0, 0.5, 1.5).
        flip (bool): Also use the horizontally flipped images. Defaults to True.
        normalise (bool): Sum the maps, then scale every class map of every image to max 1 (the
            ``compute_cams`` convention); False averages them. Defaults to True.
        size_divisor (int, optional): Round the scaled sizes to multiples of it. Defaults to None.
        amp (str, optional): ``'bf16'`` runs ``compute_cams`` under bfloat16 autocast (the CAMs are
            merged in fp32). Defaults to None.

    Returns:
        Tensor: (B, K, H, W) non-negative CAMs, zero for classes absent from ``image_labels``.
    """
    _check_inputs(model, inputs, image_labels, scales)
    labels = image_labels.to(inputs.device)
    rows = label_rows(labels)
    batch_labels = torch.cat([labels, labels], dim=0) if flip else labels  # (B or 2B, K)
    with autocast(inputs.device, amp):
        scale_cams = [model.compute_cams(x, batch_labels)[:, rows].float()
                      for x in scale_inputs(inputs, scales, flip, size_divisor)]
    return merge_scale_cams(scale_cams, labels, rows, tuple(inputs.shape[-2:]), flip, normalise)
