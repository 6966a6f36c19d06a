"""The PASCAL VOC colour map and the palette PNG writer, used for every label mask the plugin writes
(GT masks of the demo data and of the COCO converter, pseudo masks)."""
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image
from torch import Tensor

from .atomic_files import atomic_file

__all__ = ['voc_palette', 'write_palette_png', 'colours_to_labels', 'save_png_atomically']


def voc_palette(num: int = 256) -> np.ndarray:
    """PASCAL VOC's colour map (the bit-interleaving one of the VOC devkit).

    Index 0 is black, index 255 (the ignore value) the cream ``(224, 224, 192)``. A dataset's
    ``METAINFO['palette']`` is ``voc_palette(K).tolist()``.

    Args:
        num (int): Number of entries. Defaults to 256.

    Returns:
        np.ndarray: ``(num, 3)`` uint8 RGB colours; entry ``k`` is the colour of label ``k``.
    """
    labels = np.arange(num)  # (num,)
    cmap = np.zeros((num, 3), dtype=np.int64)
    for shift in range(7, -1, -1):  # 8 bit planes, vectorised over labels
        for channel in range(3):
            cmap[:, channel] |= ((labels >> (3 * (7 - shift) + channel)) & 1) << shift
    return cmap.astype(np.uint8)


def colours_to_labels(rgb: np.ndarray) -> np.ndarray:
    """A mask drawn in the VOC colour map -> its class indices (the inverse of the palette).

    Args:
        rgb (np.ndarray): (H, W, 3) uint8 RGB colours.

    Returns:
        np.ndarray: (H, W) uint8 labels (the void colour ``(224, 224, 192)`` -> 255).

    Raises:
        ValueError: listing (up to 5) colours that are no entry of the colour map.
    """
    codes = voc_palette(256).astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])  # (256,)
    pixels = rgb[..., :3].astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])  # (H, W)
    order = np.argsort(codes)
    found = np.searchsorted(codes[order], pixels).clip(0, 255)
    unknown = codes[order][found] != pixels
    if unknown.any():
        colours = [tuple(int(v) for v in c) for c in np.unique(rgb[..., :3][unknown], axis=0)[:5]]
        raise ValueError(f'colours {colours} are not in the VOC colour map')
    return order[found].astype(np.uint8)


def _as_uint8_mask(mask: Union[np.ndarray, Tensor]) -> np.ndarray:
    if isinstance(mask, Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f'write_palette_png: mask must be (H, W), got shape {mask.shape}.')
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError('write_palette_png: mask values must be in [0, 255].')
    return mask.astype(np.uint8)


def write_palette_png(path: str, mask: Union[np.ndarray, Tensor],
                      palette: Optional[Sequence[Sequence[int]]] = None) -> str:
    """Write a label mask as a palette PNG (mode ``'P'``), atomically.

    The PNG goes to a temporary file in the same directory first and is then renamed
    (:func:`os.replace`), so an interrupted run never leaves a half-written file.

    Args:
        path (str): Output file (parent directories are created).
        mask (np.ndarray | Tensor): (H, W) labels in [0, 255] (255 = ignore, kept as is).
        palette (Sequence[Sequence[int]], optional): RGB colours of the first classes; the remaining
            entries come from the VOC colour map (so 255 keeps VOC's 'void' colour). Defaults to the
            VOC colour map.

    Returns:
        str: ``path``.
    """
    mask = _as_uint8_mask(mask)
    colours = voc_palette(256)
    if palette is not None:
        given = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:255]
        colours[:len(given)] = given
    img = Image.fromarray(mask)  # mode 'L'; putpalette turns it into 'P' with the same indices
    img.putpalette(colours.flatten().tolist())
    return save_png_atomically(path, img)


def save_png_atomically(path: str, img: Image.Image) -> str:
    """Save ``img`` as a PNG at ``path`` through a temporary file in the same directory and
    :func:`os.replace` (:func:`~.atomic_files.atomic_file`), so an interrupted run never leaves a
    half-written file (parent directories are created). Returns ``path``."""
    with atomic_file(path, 'wb') as f:
        img.save(f, format='PNG')
    return path
