"""Colour (RGB) label masks drawn in the VOC colour map -> palette PNGs of class indices.

Masks saved as RGB images (an image editor, a viewer's "save as", another tool) show the right
colours but hold no class indices. The command line is
``tools/dataset_converters/colour_masks_to_labels.py``; the conversion is lossless (the palette PNGs
look the same) and each file is replaced atomically, so it may run in place.
"""
import os
import os.path as osp
from typing import Dict, Optional

import numpy as np

from ..errors import DatasetError
from ..image_io import read_image
from ..palette import colours_to_labels, write_palette_png

__all__ = ['colour_masks_to_labels']


def colour_masks_to_labels(mask_dir: str, out_dir: Optional[str] = None) -> Dict:
    """Turn every colour PNG of ``mask_dir`` into a palette PNG of class indices.

    Args:
        mask_dir (str): Directory of ``*.png`` masks.
        out_dir (str, optional): Where to write them. Defaults to ``mask_dir`` (in place).

    Returns:
        dict: ``converted`` (colour masks rewritten), ``kept`` (already palette/grey, copied when
        ``out_dir`` differs), ``out_dir``.

    Raises:
        FileNotFoundError: for a missing ``mask_dir``.
        DatasetError: naming a mask with a colour outside the VOC colour map.
        CorruptImageError, ImageTooLargeError: naming a mask that cannot be decoded (see
            :func:`~mmseg_clip_wsss.datasets.image_io.read_image`).
    """
    if not osp.isdir(mask_dir):
        raise FileNotFoundError(f'mask directory {mask_dir} does not exist.')
    out_dir = out_dir or mask_dir
    converted = kept = 0
    for name in sorted(os.listdir(mask_dir)):
        if not name.lower().endswith('.png'):
            continue
        path = osp.join(mask_dir, name)
        mask = read_image(path, 'mask', 'replace it, or move it out of the mask directory')
        colour = mask.ndim == 3 and mask.shape[2] in (3, 4)  # RGB(A): drop the alpha
        mask = mask[..., :3] if colour else mask
        if colour:
            try:
                mask = colours_to_labels(mask)  # (H, W)
            except ValueError as e:
                raise DatasetError(f'{path}: {e}; it is no VOC-palette mask: map its colours to '
                                   'class indices with the tool that drew it.') from e
            converted += 1
        else:
            kept += 1
            if out_dir == mask_dir:
                continue
        write_palette_png(osp.join(out_dir, osp.splitext(name)[0] + '.png'), mask)
    return dict(converted=converted, kept=kept, out_dir=out_dir)
