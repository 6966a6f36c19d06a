"""Per-pixel confidence maps of pseudo masks: where they live and how they are encoded.

The pseudo-mask writer (:func:`mmseg_clip_wsss.cam.generate_pseudo_masks`) writes, beside each mask
``<dir>/<img_id>.png``, a confidence map ``<dir>/confidence/<img_id>.png``: an 8-bit grayscale PNG
(mode ``'L'``) of the mask's size whose value ``v`` means the confidence ``v / 255`` of the mask's label
at that pixel, i.e. the share of the winning class in the scores of the classes present in the image
(:func:`mmseg_clip_wsss.cam.pseudo_mask_confidence`); ``0`` where the mask is ``255`` (ignored).
Stage 2 loads it with :class:`~mmseg_clip_wsss.datasets.transforms.LoadConfidenceMap`.
"""
import os.path as osp
from typing import Union

import numpy as np
from PIL import Image
from torch import Tensor

from .errors import MissingDatasetFileError
from .image_io import open_image, read_image
from .palette import save_png_atomically

__all__ = ['CONFIDENCE_DIR', 'confidence_path', 'write_confidence_png', 'read_confidence_png']

#: Sub-directory of a pseudo-mask directory that holds the confidence maps.
CONFIDENCE_DIR = 'confidence'


def confidence_path(mask_path: str) -> str:
    """The confidence map of the pseudo mask ``mask_path``: ``<dir>/confidence/<name>``."""
    return osp.join(osp.dirname(mask_path), CONFIDENCE_DIR, osp.basename(mask_path))


def write_confidence_png(path: str, confidence: Union[np.ndarray, Tensor]) -> str:
    """Write a confidence map as an 8-bit grayscale PNG, atomically.

    Args:
        path (str): Output file (parent directories are created).
        confidence (np.ndarray | Tensor): (H, W) floats in [0, 1]; stored as ``round(255 * c)``.

    Returns:
        str: ``path``.

    Raises:
        ValueError: for another shape or values outside [0, 1] (NaN included).
    """
    if isinstance(confidence, Tensor):
        confidence = confidence.detach().cpu().numpy()
    confidence = np.asarray(confidence, dtype=np.float64)
    if confidence.ndim != 2:
        raise ValueError(f'write_confidence_png({path}): confidence must be (H, W), got shape '
                         f'{confidence.shape}.')
    if confidence.size and not ((confidence >= 0) & (confidence <= 1)).all():
        raise ValueError(f'write_confidence_png({path}): confidence values must lie in [0, 1].')
    return save_png_atomically(path, Image.fromarray(np.rint(confidence * 255).astype(np.uint8)))


def read_confidence_png(path: str) -> np.ndarray:
    """Read a confidence map written by :func:`write_confidence_png`.

    Args:
        path (str): The PNG.

    Returns:
        np.ndarray: (H, W) uint8 codes ``v``; the confidence is ``v / 255``.

    Raises:
        MissingDatasetFileError: naming the file and how to write it (a ``FileNotFoundError``).
        ValueError: for a PNG that is not 8-bit grayscale.
        CorruptImageError, ImageTooLargeError: see
            :func:`~mmseg_clip_wsss.datasets.image_io.open_image`.
    """
    if not osp.isfile(path):
        raise MissingDatasetFileError(
            f'confidence map {path} does not exist: tools/make_pseudo_masks.py writes one beside '
            'every pseudo mask; masks made before it had no confidence maps, so re-run it with '
            '--overwrite into that directory (or drop LoadConfidenceMap from the pipeline).')
    fix = 'write it again (tools/make_pseudo_masks.py --overwrite)'
    with open_image(path, 'confidence map', fix) as img:
        mode = img.mode
    if mode != 'L':
        raise ValueError(f'confidence map {path} has PIL mode {mode!r}, expected an 8-bit '
                         "grayscale PNG (mode 'L') as tools/make_pseudo_masks.py writes.")
    return read_image(path, 'confidence map', fix).astype(np.uint8, copy=False)
