"""The image-level label file: how weak labels are stored on disk.

A label file is plain text, one image per line::

    # comment lines start with '#'
    <image id> <class name>,<class name>,...

* ``<image id>`` is the file stem used by the split file (``2007_000032``,
  ``COCO_train2014_000000000009``); it contains no whitespace.
* Everything after the first run of whitespace is a comma-separated list of class names exactly as
  the dataset spells them (``diningtable`` for VOC, ``dining table`` for COCO), so names with spaces
  are fine. ``background`` is implicit and may be left out.
* An image with no foreground class is written as its id alone.

Label files are made from the datasets' own annotations by the converters in
``tools/dataset_converters/`` (VOC XML, COCO instances json); see ``docs/datasets.md``.
"""
import os.path as osp
from collections import OrderedDict
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from .atomic_files import atomic_file
from .class_names import check_distinct_class_names
from .errors import DatasetError, MissingDatasetFileError

__all__ = [
    'BACKGROUND', 'check_class_list', 'background_index_of', 'background_mismatch',
    'load_image_labels', 'write_image_labels', 'labels_to_multi_hot',
    'format_label_line', 'format_label_summary'
]

BACKGROUND = 'background'

_FIX_HINT = ('make the label file again with the converter for this dataset '
             '(tools/dataset_converters/voc_xml_to_labels.py or coco_to_labels.py, see '
             'docs/datasets.md), or set the dataset\'s metainfo=dict(classes=...) to the class list '
             'the file was made for')


def check_class_list(classes: Sequence[str], source: str) -> Tuple[str, ...]:
    """A class list as a tuple of names; refused when it cannot be one.

    Args:
        classes (Sequence[str]): Class names in label order.
        source (str): Where the list comes from, for the message (e.g. ``'VOCWSSSDataset metainfo'``).

    Returns:
        tuple[str]: The names.

    Raises:
        DatasetError: for a string (``'dog'`` would be read as the classes ``('d', 'o', 'g')``), an
            empty list, a name that is no non-empty string, two names of one class (``'dog'`` and
            ``'Dog '``: :class:`~mmseg_clip_wsss.datasets.class_names.DuplicateClassNameError`, see
            :mod:`~mmseg_clip_wsss.datasets.class_names`), or ``'background'`` anywhere but first.
    """
    if isinstance(classes, str):
        raise DatasetError(
            f'{source}: classes={classes!r} is a string, which would be read as the classes '
            f'{tuple(classes)[:5]}: give a tuple of class names, e.g. classes=({BACKGROUND!r}, '
            f'{classes!r}).')
    names = tuple(classes)
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if not names or bad:
        found = 'no class' if not names else f'names {bad}'
        raise DatasetError(f'{source}: classes={names!r} has {found}: give each class once, as a '
                           'non-empty string, in label order.')
    check_distinct_class_names(names, f'{source} classes')
    if BACKGROUND in names[1:]:
        raise DatasetError(f'{source}: {BACKGROUND!r} is class {names.index(BACKGROUND)} of '
                           f'{names!r}; it must be class 0 (or absent, when there is no background).')
    return names


def background_index_of(classes: Sequence[str]) -> Optional[int]:
    """The background class of a class list: 0 when ``classes[0] == 'background'``, else None.

    The one rule the datasets (:func:`labels_to_multi_hot`), the config checks and the pseudo-mask
    writer share; a list without ``'background'`` has none (every class is an object class).
    """
    return 0 if len(classes) and classes[0] == BACKGROUND else None


def background_mismatch(classes: Sequence[str], background_index: Optional[int]) -> Optional[str]:
    """Why a model's ``background_index`` does not fit a class list (None when it does).

    Args:
        classes (Sequence[str]): The dataset's classes.
        background_index (int, optional): The model's (``model.background_index``, default 0).

    Returns:
        str | None: The disagreement and its fix, or None.
    """
    expected = background_index_of(classes)
    if background_index == expected:
        return None
    if expected is None:
        return (f'the classes {tuple(classes)} have no {BACKGROUND!r} but model.background_index='
                f'{background_index} makes class {background_index} ({classes[background_index]!r}) '
                f'the background: set model.background_index=None, or put {BACKGROUND!r} first in '
                'the classes.')
    return (f'the classes {tuple(classes)[:4]}... have {BACKGROUND!r} as class {expected} but '
            f'model.background_index={background_index}: set model.background_index={expected}.')


def format_label_line(image_id: str, class_names: Iterable[str]) -> str:
    """One line of a label file (without the newline).

    Args:
        image_id (str): Image id (file stem), no whitespace.
        class_names (Iterable[str]): Foreground class names present in the image.

    Returns:
        str: ``'<image id> <name>,<name>,...'`` (just the id when there is no class).
    """
    if not image_id or any(ch.isspace() for ch in image_id):
        raise ValueError(f'image id {image_id!r} is empty or contains whitespace; label files '
                         'need ids without spaces')
    names = [n for n in class_names if n != BACKGROUND]
    for name in names:
        if ',' in name or name != name.strip() or not name:
            raise ValueError(f'class name {name!r} of image {image_id!r} cannot be written to a '
                             'label file (empty, a comma, or surrounding spaces)')
    return image_id + (' ' + ','.join(names) if names else '')


def write_image_labels(path: str,
                       labels: Mapping[str, Sequence[str]],
                       header: Optional[Sequence[str]] = None) -> str:
    """Write a label file (deterministic: lines in the mapping's order, no timestamps).

    Args:
        path (str): Output file; parent directories are created.
        labels (Mapping[str, Sequence[str]]): ``image id -> class names`` in the order to write.
        header (Sequence[str], optional): Extra comment lines written after the format line.

    Returns:
        str: ``path``.
    """
    lines = ['# image-level labels: <image id> <class name>,<class name>,... '
             '(background implicit; an id alone = no foreground class)']
    lines += ['# ' + h for h in (header or [])]
    lines += [format_label_line(image_id, names) for image_id, names in labels.items()]
    with atomic_file(path, 'w', encoding='utf-8', newline='\n') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def load_image_labels(
        path: str,
        classes: Sequence[str],
        known_classes: Optional[Sequence[str]] = None) -> 'OrderedDict[str, Tuple[str, ...]]':
    """Read and validate a label file.

    Args:
        path (str): The label file.
        classes (Sequence[str]): The dataset's classes (``'background'`` first for VOC/COCO/demo).
        known_classes (Sequence[str], optional): A superset of ``classes`` (the dataset's full
            class list when ``classes`` is a subset picked through ``metainfo``). Names in
            ``known_classes`` but not in ``classes`` are dropped silently; names in neither raise.

    Returns:
        OrderedDict[str, tuple[str]]: ``image id -> foreground class names`` (file order, each
        name once, in class-index order).

    Raises:
        MissingDatasetFileError: if ``path`` does not exist (a ``FileNotFoundError``).
        ValueError: naming ``path:line`` for an unknown class, an empty class name or a
            duplicated image id.
    """
    if not osp.isfile(path):
        raise MissingDatasetFileError(f'image-level label file {path} does not exist: {_FIX_HINT}.')
    index = {name: i for i, name in enumerate(classes)}
    known = set(known_classes) if known_classes is not None else set(classes)
    labels: 'OrderedDict[str, Tuple[str, ...]]' = OrderedDict()
    first_line: Dict[str, int] = {}
    with open(path, encoding='utf-8') as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith('#'):
                continue
            parts = line.split(None, 1)
            image_id = parts[0]
            names = []
            if len(parts) == 2:
                for name in parts[1].split(','):
                    name = name.strip()
                    if not name:
                        raise ValueError(f'{path}:{lineno}: empty class name in {line!r}; write '
                                         '"<image id> <class>,<class>" with no empty entries, or '
                                         + _FIX_HINT + '.')
                    if name not in index:
                        if name in known:
                            continue  # a class left out through metainfo
                        raise ValueError(
                            f'{path}:{lineno}: class {name!r} (image {image_id!r}) is not in the '
                            f'dataset classes {tuple(classes)}. Fix that line, or {_FIX_HINT}.')
                    if name != BACKGROUND:
                        names.append(name)
            if image_id in labels:
                raise ValueError(f'{path}:{lineno}: image {image_id!r} is listed again (first on '
                                 f'line {first_line[image_id]}); keep one line per image or '
                                 + _FIX_HINT + '.')
            first_line[image_id] = lineno
            labels[image_id] = tuple(sorted(set(names), key=index.__getitem__))
    return labels


def labels_to_multi_hot(class_names: Iterable[str], classes: Sequence[str]) -> np.ndarray:
    """Multi-hot vector of an image's labels.

    Args:
        class_names (Iterable[str]): Class names present in the image.
        classes (Sequence[str]): The dataset's classes.

    Returns:
        np.ndarray: ``(K,)`` float32, 1 for each present class; index 0 is 1 when
        ``classes[0] == 'background'`` (background is in every image).
    """
    multi_hot = np.zeros(len(classes), dtype=np.float32)  # (K,)
    index = {name: i for i, name in enumerate(classes)}
    for name in class_names:
        multi_hot[index[name]] = 1.
    background = background_index_of(classes)
    if background is not None:
        multi_hot[background] = 1.
    return multi_hot


def format_label_summary(summary: Dict) -> str:
    """A readable table of a converter summary (images, per-class image and object counts)."""
    lines = [f"wrote {summary['out_file']}: {summary['num_images']} images "
             f"({summary['num_empty']} without any foreground class)",
             f"{'class':<20s}{'images':>10s}{'objects':>10s}"]
    for name, count in summary['image_counts'].items():
        lines.append(f"{name:<20s}{count:>10d}{summary['object_counts'].get(name, 0):>10d}")
    return '\n'.join(lines)
