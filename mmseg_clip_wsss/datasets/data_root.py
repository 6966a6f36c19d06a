"""The check of a data root in the PASCAL VOC layout before a tool reads it.

An empty ``--data-root`` (or one of another layout) ended in a bare ``[Errno 2] No such file or
directory`` of the first file a tool opened (``demo_info.json``, a split file), which names neither the
folder the user gave nor what it should hold. :func:`check_data_root` names both, every missing part
at once, and the fix.
"""
import os
import os.path as osp
from typing import List, Sequence

from .errors import MissingDatasetFileError

__all__ = ['check_data_root', 'data_root_parts']


def data_root_parts(splits: Sequence[str] = ('train', ), label_splits: Sequence[str] = (),
                    demo_info: bool = False) -> List[str]:
    """The folders (ending in ``/``) and files a data root in the VOC layout needs.

    Args:
        splits (Sequence[str]): Splits whose images and GT masks are read
            (``ImageSets/Segmentation/<split>.txt``).
        label_splits (Sequence[str]): Splits whose image-level labels are read
            (``ImageLabels/<split>.txt``).
        demo_info (bool): The generated dataset's ``demo_info.json`` (its world and class lists) is read.

    Returns:
        list[str]: Paths relative to the data root.
    """
    return (['JPEGImages/', 'SegmentationClass/'] + [f'ImageSets/Segmentation/{s}.txt' for s in splits] +
            [f'ImageLabels/{s}.txt' for s in label_splits] + (['demo_info.json'] if demo_info else []))


def _missing(data_root: str, parts: Sequence[str]) -> List[str]:
    return [p for p in parts
            if not (osp.isdir if p.endswith('/') else osp.isfile)(osp.join(data_root, p.rstrip('/')))]


#: The folders of the split files (image ids, image-level labels).
_SPLIT_FOLDERS = ('ImageSets/Segmentation/', 'ImageLabels/')


def _refuse_missing_splits(data_root: str, missing: Sequence[str], option: str) -> None:
    """Refuse a dataset that has all but split files, naming the splits it has (writing the demo data
    again would not make a split of another name)."""
    names = sorted(osp.splitext(osp.basename(p))[0] for p in missing if p.startswith(_SPLIT_FOLDERS[0]))
    folder = osp.join(data_root, 'ImageSets', 'Segmentation')
    have = sorted(osp.splitext(f)[0] for f in os.listdir(folder) if f.endswith('.txt')) \
        if osp.isdir(folder) else []
    raise MissingDatasetFileError(
        f'{option} {data_root} has no split {", ".join(names)} (it lacks {", ".join(missing)}); its splits: '
        f'{", ".join(have) or "none"}. Choose one of them, or write the missing file(s), one image id a '
        'line (docs/datasets.md).')


def check_data_root(data_root: str, splits: Sequence[str] = ('train', ), label_splits: Sequence[str] = (),
                    demo_info: bool = False, option: str = '--data-root') -> None:
    """Refuse, before any work, a data root that lacks a part of the VOC layout a tool reads.

    Args:
        data_root (str): The folder.
        splits, label_splits, demo_info: What the tool reads (:func:`data_root_parts`).
        option (str): How the caller names the folder (a command-line option, or a config key), named
            in the message. Defaults to ``'--data-root'``.

    Raises:
        MissingDatasetFileError: ``data_root`` is ``''``, a file, does not exist, is empty, lacks a
            split file (the message names the splits it has) or another part; the message
            names the folder, the missing parts, the layout it expects and the fix (write the
            generated demo data there with ``tools/make_demo_data.py``, or point ``option`` at a
            folder of that layout).
    """
    parts = data_root_parts(splits, label_splits, demo_info)
    if not data_root:
        raise MissingDatasetFileError(
            f"{option} '' names no folder: give the folder of a dataset in the VOC layout, e.g. {option} "
            'data/demo (write the demo data there with `python tools/make_demo_data.py --out data/demo`).')
    missing = _missing(data_root, parts)
    if not missing:
        return
    if osp.isdir(data_root) and all(p.startswith(_SPLIT_FOLDERS) for p in missing) and \
            any(p.startswith(_SPLIT_FOLDERS[0]) for p in missing):
        _refuse_missing_splits(data_root, missing, option)
    if osp.isfile(data_root):
        state = 'is a file, not a folder'
    elif not osp.isdir(data_root):
        state = 'does not exist'
    elif not os.listdir(data_root):
        state = 'is an empty folder'
    else:
        state = 'lacks ' + ', '.join(missing)
    generated = ' of a generated dataset' if demo_info else ''
    write = ('' if osp.isfile(data_root) else  # a file is no place to write the demo data
             f'Write the demo data there with `python tools/make_demo_data.py --out {data_root}`, or p')
    raise MissingDatasetFileError(
        f'{option} {data_root} {state}; it must hold a dataset in the VOC layout{generated}: '
        f'{", ".join(parts)} (JPEGImages/<id>.jpg, SegmentationClass/<id>.png; docs/datasets.md). '
        f'{write or "P"}oint {option} at a folder of that layout (e.g. data/demo).')
