"""The PASCAL VOC colour map, used for every palette PNG the plugin reads or writes."""
from typing import List

import numpy as np

__all__ = ['voc_colormap', 'voc_palette']


def voc_colormap(num: int = 256) -> np.ndarray:
    """PASCAL VOC's colour map (the bit-interleaving one of the VOC devkit).

    Args:
        num (int): Number of entries. Defaults to 256 (index 255, the ignore value, is
            ``(224, 224, 192)``).

    Returns:
        np.ndarray: ``(num, 3)`` uint8 RGB colours; entry ``k`` is the colour of label ``k``.
    """
    labels = np.arange(num)  # (num,)
    cmap = np.zeros((num, 3), dtype=np.int64)
    for shift in range(7, -1, -1):  # 8 bit planes, vectorised over labels
        for channel in range(3):
            cmap[:, channel] |= ((labels >> (3 * (7 - shift) + channel)) & 1) << shift
    return cmap.astype(np.uint8)


def voc_palette(num: int) -> List[List[int]]:
    """The first ``num`` VOC colours as a list of ``[r, g, b]`` (mmseg's ``metainfo['palette']``)."""
    return voc_colormap(256)[:num].tolist()
