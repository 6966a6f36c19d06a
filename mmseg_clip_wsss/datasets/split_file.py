"""The split file: the image ids of a dataset split (mmseg's ``ann_file``), one per line.

Read leniently where the meaning is clear, refused (naming ``file:line``) where it is not:

* a UTF-8 byte-order mark, CRLF line ends, surrounding spaces and blank lines are ignored;
* ``2007_000032`` is an id; ``2007_000032.jpg`` (any of :data:`IMAGE_EXTS`) is the same id;
* mmseg/DeepLab-style pairs ``/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png``
  give the id of the image (the file stem; image and mask must name the same stem);
* an id listed twice is kept once and reported (a warning with the lines).
"""
import logging
import os.path as osp
from typing import Dict, List

from mmengine.logging import print_log

from .errors import DatasetError, MissingDatasetFileError

__all__ = ['IMAGE_EXTS', 'read_split_file']

#: Image file extensions (lower case) understood in split files and looked for in image directories.
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')
_MASK_EXTS = ('.png', '.bmp')


def _strip_ext(name: str, exts) -> str:
    stem, ext = osp.splitext(name)
    return stem if ext.lower() in exts else name


def _line_id(fields: List[str], where: str) -> str:
    """The image id of one split line (its whitespace-separated fields)."""
    if len(fields) == 1:
        return _strip_ext(fields[0], IMAGE_EXTS)
    if len(fields) == 2:
        image, mask = (osp.basename(_strip_ext(f, ext)) for f, ext in zip(fields, (IMAGE_EXTS,
                                                                                   _MASK_EXTS)))
        if image == mask:
            return image
    raise DatasetError(
        f'{where}: cannot read {" ".join(fields)!r} as a split entry: write one image id per line '
        '(e.g. 2007_000032), or an "image mask" pair of the same file stem (e.g. '
        '/JPEGImages/2007_000032.jpg /SegmentationClass/2007_000032.png).')


def read_split_file(path: str) -> List[str]:
    """Image ids of a split file, in file order, each once (see the module docstring).

    Args:
        path (str): The split file.

    Returns:
        list[str]: Image ids (file stems, or relative paths without extension).

    Raises:
        MissingDatasetFileError: if ``path`` does not exist (a ``FileNotFoundError``).
        DatasetError: naming ``path:line`` for a line that is neither an id nor an image/mask pair.
    """
    if not osp.isfile(path):
        raise MissingDatasetFileError(f'split file {path} does not exist: check the split path (relative '
                                      'paths are taken under the dataset root).')
    first_line: Dict[str, int] = {}
    repeats: List[str] = []
    with open(path, encoding='utf-8-sig') as f:  # utf-8-sig drops a byte-order mark
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            image_id = _line_id(fields, f'{path}:{lineno}')
            if image_id in first_line:
                repeats.append(f'{image_id} (lines {first_line[image_id]} and {lineno})')
            else:
                first_line[image_id] = lineno
    if repeats:
        shown = ', '.join(repeats[:5]) + (', ...' if len(repeats) > 5 else '')
        print_log(f'split file {path} lists {len(repeats)} image(s) more than once; each is used '
                  f'once: {shown}', logger='current', level=logging.WARNING)
    return list(first_line)
