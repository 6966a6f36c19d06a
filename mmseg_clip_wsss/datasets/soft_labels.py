"""The soft label file: image-level targets with a per-class confidence (e.g. confidence-weighted CLIP
tags, :func:`mmseg_clip_wsss.apis.tagging.soft_tags`).

A soft label file is JSON::

    {"classes": ["disc", "ring", ...],            # foreground classes, the columns below
     "images": {"<image id>": {"targets": [0.0, 1.0, ...], "confidence": [0.93, 0.41, ...]}, ...},
     "note": "...",                               # optional: how the file was made
     "image_bytes": {"<image id>": 5309, ...},     # optional: the size of every image it tagged
     "image_stamps": {"<image id>": "sha256:...", ...}}  # optional: a few images' content

``targets`` and ``confidence`` hold one value in [0, 1] per class of ``classes``. A dataset reads the
columns by class name (:func:`load_soft_labels`), so the file's class order need not be the
dataset's; a dataset class the file does not list is absent (target 0) with confidence 1, and the
background column (class 0 ``'background'``) is target 1, confidence 1, as in the multi-hot labels.
The image-level losses weigh each class's term by its confidence (the form the targets of described
images take from :class:`~mmseg_clip_wsss.models.text.DescriptionTargets`).

Image ids repeat across datasets (every generated world numbers its images alike), so the writer keeps
the size in bytes of every tagged image and the content identity
(:func:`~mmseg_clip_wsss.datasets.file_stamps.file_identity`) of up to :data:`STAMPED_IMAGES` of
them, and a dataset whose image of such an id differs refuses the file: tags of one data root are
not trained on another's images (two compressed images of the same id and the same size, none of
them hashed, would pass).
"""
import json
import os
import os.path as osp
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import DatasetError, MissingDatasetFileError
from .file_stamps import file_identity
from .image_labels import BACKGROUND

__all__ = ['load_soft_labels', 'write_soft_labels', 'STAMPED_IMAGES']

#: How many of the tagged images a soft label file identifies by content (evenly spaced by id).
STAMPED_IMAGES = 8


def _refuse(path: str, what: str) -> None:
    raise DatasetError(f'soft label file {path}: {what}. Write it with '
                       'mmseg_clip_wsss.datasets.write_soft_labels (e.g. tools/label_scarcity.py makes '
                       'the soft CLIP tags), or give it as label_file if it is a plain label file.')


def _read_json(path: str) -> dict:
    if not osp.isfile(path):
        raise MissingDatasetFileError(f'soft label file {path} (soft_label_file) does not exist: write '
                                      'it first, or fix soft_label_file / data_root in the config.')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        _refuse(path, f'not JSON ({e.msg} at line {e.lineno})')
    if not isinstance(data, dict) or not isinstance(data.get('classes'), list) \
            or not isinstance(data.get('images'), dict):
        _refuse(path, 'needs the keys "classes" (a list of class names) and "images" (an object)')
    return data


def _row(path: str, image_id: str, entry, key: str, width: int) -> np.ndarray:
    values = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(values, list) or len(values) != width:
        _refuse(path, f'image {image_id!r} needs "{key}": a list of {width} values (one per class)')
    row = np.asarray(values, dtype=np.float32)
    if not np.all((row >= 0) & (row <= 1)):
        _refuse(path, f'image {image_id!r}: "{key}" values must be in [0, 1], got {values}')
    return row


def _check_images(path: str, data: dict, image_files: Mapping[str, str]) -> None:
    """Refuse the file when an image it identifies (``image_bytes``: every image's size,
    ``image_stamps``: a few images' content) is another file in ``image_files``."""
    checks = (('image_bytes', osp.getsize, int, 'size in bytes'),
              ('image_stamps', file_identity, str, 'file identity'))
    for key, _, kind, what in checks:
        recorded = data.get(key, {})
        if not isinstance(recorded, dict) or not all(type(v) is kind for v in recorded.values()):
            _refuse(path, f'"{key}" must be an object (image id -> {what})')
    for key, identity, _, _ in checks:
        for image_id, value in data.get(key, {}).items():
            image = image_files.get(image_id)
            if image is not None and osp.isfile(image) and identity(image) != value:
                raise DatasetError(
                    f'soft label file {path} was made from other images: its image {image_id!r} is not '
                    f'{image} (another data root whose images have the same ids?). Tag this data root '
                    'again (tools/tag_images.py --soft), or point soft_label_file to the file made for it.')


def load_soft_labels(path: str, classes: Sequence[str],
                     image_files: Optional[Mapping[str, str]] = None) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Read a soft label file into the columns of a dataset's class list.

    Args:
        path (str): The JSON file.
        classes (Sequence[str]): The dataset's classes, ``'background'`` first when it has one.
        image_files (Mapping[str, str], optional): image id -> image file of the dataset; the images
            the file identifies (``image_bytes``, ``image_stamps``) must be these files. None: not
            checked.

    Returns:
        dict: image id -> (targets (K,), confidence (K,)), float32 over ``classes``.

    Raises:
        MissingDatasetFileError: the file does not exist.
        DatasetError: not JSON, keys missing, a row of the wrong length or values outside [0, 1],
            a class of the file that the dataset does not have, or an image of ``image_files`` that
            is not the image the file tagged (naming the file and the fix).
    """
    data = _read_json(path)
    if image_files is not None:
        _check_images(path, data, image_files)
    names = [str(n) for n in data['classes']]
    unknown = [n for n in names if n not in classes]
    if unknown:
        _refuse(path, f'classes {unknown} are not classes of the dataset {tuple(classes)}')
    columns = [list(classes).index(n) for n in names]
    out = {}
    for image_id, entry in data['images'].items():
        targets = np.zeros(len(classes), dtype=np.float32)
        confidence = np.ones(len(classes), dtype=np.float32)
        targets[columns] = _row(path, image_id, entry, 'targets', len(names))
        confidence[columns] = _row(path, image_id, entry, 'confidence', len(names))
        if classes and classes[0] == BACKGROUND:
            targets[0], confidence[0] = 1.0, 1.0
        out[str(image_id)] = (targets, confidence)
    return out


def write_soft_labels(path: str, classes: Sequence[str], rows: Mapping[str, Tuple[Sequence[float], Sequence[float]]],
                      note: Optional[str] = None, image_files: Optional[Mapping[str, str]] = None) -> None:
    """Write a soft label file.

    Args:
        path (str): The JSON file (its folder is made).
        classes (Sequence[str]): The foreground classes, the columns of the rows.
        rows (Mapping): image id -> (targets (K,), confidence (K,)), values in [0, 1].
        note (str, optional): How the file was made.
        image_files (Mapping[str, str], optional): image id -> the image file the row was made from;
            their sizes and the content of :data:`STAMPED_IMAGES` of them are kept in the file (see
            the module docstring).
    """
    images = {str(i): dict(targets=[round(float(v), 4) for v in t], confidence=[round(float(v), 4) for v in c])
              for i, (t, c) in rows.items()}
    record = dict(classes=list(classes), images=images, note=note or '')
    if image_files:
        known = sorted(i for i in images if i in image_files and osp.isfile(image_files[i]))
        picked = [known[int(j)] for j in np.unique(np.linspace(0, len(known) - 1, STAMPED_IMAGES).round())] \
            if known else []
        record['image_bytes'] = {i: osp.getsize(image_files[i]) for i in known}
        record['image_stamps'] = {i: file_identity(image_files[i]) for i in picked}
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(record, f)
