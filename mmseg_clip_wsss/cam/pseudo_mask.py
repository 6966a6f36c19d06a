"""From CAMs to pseudo masks, and the pseudo-mask files (VOC palette PNGs).

Labels are in ``{0..K-1}`` plus ``255`` (ignore) for uncertain pixels; a class absent from an image's
labels can never appear in its mask. Files are written atomically (temporary file in the same
directory, then :func:`os.replace`), so an interrupted run never leaves a half-written PNG, and
:func:`is_valid_png` lets a resumed run skip the masks that are already complete.
"""
import os
import os.path as osp
import tempfile
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = ['IGNORE_INDEX', 'BG_MODES', 'voc_palette', 'fill_background', 'cams_to_pseudo_mask',
           'write_palette_png', 'is_valid_png']

IGNORE_INDEX = 255
BG_MODES = ('threshold', 'prompt')


def voc_palette(num_colours: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (index 0 black, 255 the cream 'void' colour).

    Returns:
        np.ndarray: (num_colours, 3) uint8.
    """
    idx = np.arange(num_colours)
    palette = np.zeros((num_colours, 3), dtype=np.int64)
    c = idx.copy()
    for j in range(8):  # 8 bit planes: bit 0/1/2 of every 3-bit group go to R/G/B, MSB first
        for ch in range(3):
            palette[:, ch] |= ((c >> ch) & 1) << (7 - j)
        c = c >> 3
    return palette.astype(np.uint8)


def _present_mask(image_labels: Tensor, num_classes: int, background_index: Optional[int]) -> Tensor:
    if image_labels.dim() != 2 or image_labels.shape[1] != num_classes:
        raise ValueError(f'image_labels must be (B, K) with K = {num_classes} (the CAM channels), got '
                         f'{tuple(image_labels.shape)}.')
    present = image_labels > 0  # (B, K)
    if background_index is not None:
        present = present.clone()
        present[:, background_index] = True
    return present


def fill_background(cams: Tensor, image_labels: Tensor, bg_mode: str = 'threshold',
                    bg_threshold: float = 0.35, background_index: Optional[int] = 0) -> Tensor:
    """Scores with the background channel set: the constant ``bg_threshold`` or the model's own.

    Args:
        cams (Tensor): (B, K, H, W) CAMs.
        image_labels (Tensor): (B, K) multi-hot labels.
        bg_mode (str): ``'threshold'`` (background score = ``bg_threshold``) or ``'prompt'`` (the
            background channel already holds the background score, e.g. from background prompts).
        bg_threshold (float): Background score in ``'threshold'`` mode.
        background_index (int, optional): Background channel; None when there is none.

    Returns:
        Tensor: (B, K, H, W) float scores, absent classes 0.
    """
    if bg_mode not in BG_MODES:
        raise ValueError(f'bg_mode={bg_mode!r} must be one of {BG_MODES}.')
    present = _present_mask(image_labels.to(cams.device), cams.shape[1], background_index)
    scores = cams.float() * present[:, :, None, None]
    if bg_mode == 'threshold' and background_index is not None:
        scores[:, background_index] = float(bg_threshold)
    return scores


def cams_to_pseudo_mask(cams: Tensor,
                        image_labels: Tensor,
                        bg_mode: str = 'threshold',
                        bg_threshold: float = 0.35,
                        ignore_band: Optional[Tuple[float, float]] = None,
                        ignore_margin: Optional[float] = None,
                        background_index: Optional[int] = 0) -> Tensor:
    """Turn CAMs into pseudo masks.

    Every pixel takes the arg-max over the classes present in its image (background always counts as
    present). The background score is ``bg_threshold`` (``bg_mode='threshold'``) or the background
    channel of ``cams`` (``'prompt'``: the model's background-prompt score, or refined scores that
    already include it). Uncertain pixels get ``255``:

    - ``ignore_band=(low, high)`` (threshold mode): the strongest foreground CAM decides --
      ``>= high`` foreground arg-max, ``< low`` background, in between ignore (``bg_threshold`` is then
      not used).
    - ``ignore_margin=m`` (any mode): ignore where the best present class beats the second by less
      than ``m``.

    Args:
        cams (Tensor): (B, K, H, W) CAMs (or refined scores).
        image_labels (Tensor): (B, K) multi-hot labels.
        bg_mode (str): ``'threshold'`` or ``'prompt'``. Defaults to ``'threshold'``.
        bg_threshold (float): Background score in threshold mode. Defaults to 0.35.
        ignore_band (tuple[float, float], optional): (low, high). Defaults to None.
        ignore_margin (float, optional): Minimum top-1 vs top-2 margin. Defaults to None.
        background_index (int, optional): Background channel; None when the classes have no
            background (pixels below the threshold are then ignored). Defaults to 0.

    Returns:
        Tensor: (B, H, W) uint8 in ``{0..K-1, 255}``.
    """
    if cams.dim() != 4:
        raise ValueError(f'cams_to_pseudo_mask: cams must be (B, K, H, W), got {tuple(cams.shape)}.')
    if bg_mode not in BG_MODES:
        raise ValueError(f'cams_to_pseudo_mask: bg_mode={bg_mode!r} must be one of {BG_MODES}.')
    if cams.shape[1] > IGNORE_INDEX:
        raise ValueError(f'cams_to_pseudo_mask: {cams.shape[1]} classes do not fit a uint8 mask with '
                         f'ignore value {IGNORE_INDEX}.')
    if ignore_band is not None:
        if bg_mode != 'threshold':
            raise ValueError("cams_to_pseudo_mask: ignore_band applies to bg_mode='threshold'; with "
                             "bg_mode='prompt' use ignore_margin.")
        low, high = (float(v) for v in ignore_band)
        if low > high:
            raise ValueError(f'cams_to_pseudo_mask: ignore_band=(low, high) needs low <= high, got '
                             f'{tuple(ignore_band)}.')
    b, k, h, w = cams.shape
    present = _present_mask(image_labels.to(cams.device), k, background_index)  # (B, K)
    scores = cams.float().clone()
    if bg_mode == 'threshold' and background_index is not None:
        scores[:, background_index] = float(bg_threshold)
    scores = scores.masked_fill(~present[:, :, None, None], float('-inf'))  # (B, K, H, W)

    top2 = scores.topk(min(2, k), dim=1)
    best, label = top2.values[:, 0], top2.indices[:, 0]  # (B, H, W)
    label = label.masked_fill(torch.isinf(best) & (best < 0), IGNORE_INDEX)
    if bg_mode == 'threshold' and background_index is None and ignore_band is None:
        label = label.masked_fill(best < float(bg_threshold), IGNORE_INDEX)  # no background class

    if ignore_band is not None:
        fg = scores
        if background_index is not None:
            fg = scores.clone()
            fg[:, background_index] = float('-inf')
        fg_best, fg_label = fg.max(dim=1)  # (B, H, W)
        bg_value = background_index if background_index is not None else IGNORE_INDEX
        label = torch.where(fg_best >= high, fg_label, torch.full_like(fg_label, IGNORE_INDEX))
        label = label.masked_fill(fg_best < low, bg_value)
    if ignore_margin is not None and k > 1:
        second = top2.values[:, 1]
        uncertain = (best - second) < float(ignore_margin)
        uncertain &= ~torch.isinf(second)  # a single present class is never uncertain by margin
        label = label.masked_fill(uncertain, IGNORE_INDEX)
    return label.to(torch.uint8)


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

    Args:
        path (str): Output file.
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
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            img.save(f, format='PNG')
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return path


def is_valid_png(path: str, expected_size: Optional[Sequence[int]] = None,
                 expected_mode: Optional[str] = 'P') -> bool:
    """Whether ``path`` is a complete, readable PNG of the expected size (and mode).

    Args:
        path (str): File to check.
        expected_size (Sequence[int], optional): (H, W) the mask must have (e.g. ``ori_shape``).
        expected_mode (str, optional): PIL mode it must have. Defaults to ``'P'``.

    Returns:
        bool: False for a missing, truncated, corrupt or mismatching file.
    """
    if not osp.isfile(path):
        return False
    try:
        with Image.open(path) as img:
            if img.format != 'PNG':
                return False
            img.load()  # decodes every row: a truncated file raises here
            if expected_mode is not None and img.mode != expected_mode:
                return False
            if expected_size is not None and \
                    (img.height, img.width) != tuple(int(s) for s in expected_size[:2]):
                return False
    except (OSError, SyntaxError, ValueError):
        return False
    return True
