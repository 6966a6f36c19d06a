"""The class lists of the known datasets, read from their ``METAINFO`` (the one source)."""
from typing import Tuple

from .class_names import check_distinct_class_names
from .coco import COCOWSSSDataset
from .demo import DemoWSSSDataset
from .image_labels import BACKGROUND
from .voc import VOCWSSSDataset

__all__ = ['DATASET_TYPES', 'dataset_classes', 'parse_class_list']

#: Short names of the datasets whose class lists configs and tools may name.
DATASET_TYPES = {'voc': VOCWSSSDataset, 'coco': COCOWSSSDataset, 'demo': DemoWSSSDataset}


def dataset_classes(name: str) -> Tuple[str, ...]:
    """Class list of a known dataset (``METAINFO['classes']``), index 0 = ``'background'``.

    Args:
        name (str): ``'voc'``, ``'coco'`` or ``'demo'`` (case-insensitive).

    Raises:
        ValueError: for another name, listing the known ones.
    """
    key = name.lower()
    if key not in DATASET_TYPES:
        raise ValueError(f'{name!r} is not a known vocabulary (a dataset class list); use one of '
                         f'{sorted(DATASET_TYPES)} or give the class names.')
    return tuple(DATASET_TYPES[key].METAINFO['classes'])


def parse_class_list(value: str) -> Tuple[str, ...]:
    """The ``--classes`` argument of the converters: a known dataset name or comma-separated
    foreground class names (``'background'`` is put first).

    Returns:
        tuple[str]: The class list, ``'background'`` first.

    Raises:
        ValueError: no name; two names of one class (``'dog,Dog'``:
            :class:`~mmseg_clip_wsss.datasets.class_names.DuplicateClassNameError`, naming both).
    """
    if value.lower() in DATASET_TYPES:
        return dataset_classes(value)
    names = tuple(name.strip() for name in value.split(',') if name.strip())
    if not names:
        raise ValueError(f'--classes {value!r} names no class: give {sorted(DATASET_TYPES)} or '
                         'comma-separated class names.')
    check_distinct_class_names((BACKGROUND, ) + names, f'--classes {value!r}')
    return (BACKGROUND, ) + names
