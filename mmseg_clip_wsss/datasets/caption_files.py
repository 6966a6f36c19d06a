"""Files of image descriptions: COCO captions JSON and JSONL pairs, read into one form.

Both readers return the same thing: a list of ``(image, captions)`` pairs in the order the images
first appear, ``image`` the file name relative to the image folder and ``captions`` every
description of it (in file order); an empty caption is refused by both. Formats:

* COCO captions (``annotations/captions_train2014.json``)::

      {"images": [{"id": 9, "file_name": "COCO_train2014_000000000009.jpg", ...}, ...],
       "annotations": [{"id": 1, "image_id": 9, "caption": "A plate of food."}, ...]}

* JSONL, one pair a line (an image may come back on several lines; ``caption`` may be a list)::

      {"image": "pool_00000.jpg", "caption": "two discs on a noisy background."}

Bad input is refused with :class:`~mmseg_clip_wsss.datasets.errors.DatasetError` naming the file, the
line (JSONL) or the entry (COCO), what was found and the fix; nothing is dropped silently.
:func:`write_coco_captions` writes the COCO form (atomically).
"""
import json
import os
import os.path as osp
from typing import Dict, Iterable, List, Sequence, Tuple

from .errors import DatasetError, MissingDatasetFileError

__all__ = ['CaptionPairs', 'read_coco_captions', 'read_caption_jsonl', 'read_caption_file',
           'write_coco_captions', 'caption_file_format', 'caption_image_id']

#: ``[(image file name, [caption, ...]), ...]`` in the order the images first appear.
CaptionPairs = List[Tuple[str, List[str]]]


def _check_exists(path: str, kind: str) -> None:
    if not osp.isfile(path):
        raise MissingDatasetFileError(
            f'{kind} {path} does not exist: give the path of the captions file (caption_file, '
            'relative to data_root), or write one (docs/datasets.md, "Learning from image-text pairs").')


def _captions_of(value, where: str) -> List[str]:
    """A caption field (a string or a non-empty list of strings) as a list of stripped strings; an
    empty (or blank) caption is refused, in either format, naming ``where``."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(c, str) for c in items):
        raise DatasetError(f'{where}: "caption" must be a string or a list of strings, got '
                           f'{type(value).__name__} {str(value)[:60]!r}; fix that entry.')
    captions = [c.strip() for c in items]
    if not captions or not all(captions):
        raise DatasetError(f'{where}: an empty caption ({value!r}); write the description or remove '
                           'the entry.')
    return captions


def _group(pairs: Iterable[Tuple[str, List[str]]]) -> CaptionPairs:
    order: Dict[str, List[str]] = {}
    for image, captions in pairs:
        order.setdefault(image, []).extend(captions)
    return list(order.items())


def read_caption_jsonl(path: str) -> CaptionPairs:
    """Read a JSONL file of ``{"image": ..., "caption": ...}`` lines.

    Blank lines are skipped; an image on several lines collects all their captions.

    Args:
        path (str): The JSONL file.

    Returns:
        CaptionPairs: ``[(image, [captions])]``.

    Raises:
        MissingDatasetFileError: the file does not exist.
        DatasetError: a line that is not JSON, not an object, without ``image`` or ``caption``, or
            with an empty image or caption (as :func:`read_coco_captions`), naming the file and the
            line number.
    """
    _check_exists(path, 'JSONL captions file')
    pairs = []
    with open(path, encoding='utf-8-sig') as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f'{path}, line {number}'
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(f'{where} is not valid JSON ({err.msg} at column {err.colno}): '
                                   'write one {"image": ..., "caption": ...} object per line.') from err
            if not isinstance(entry, dict) or 'image' not in entry or 'caption' not in entry:
                keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
                raise DatasetError(f'{where}: needs the keys "image" and "caption", found {keys}; '
                                   'write one {"image": ..., "caption": ...} object per line.')
            if not isinstance(entry['image'], str) or not entry['image'].strip():
                raise DatasetError(f'{where}: an empty "image" ({line.strip()[:80]}); give the image '
                                   'file.')
            pairs.append((entry['image'].strip(), _captions_of(entry['caption'], where)))
    return _group(pairs)


def _load_json(path: str) -> dict:
    try:
        with open(path, encoding='utf-8-sig') as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise DatasetError(f'COCO captions file {path} is not valid JSON ({err.msg} at line {err.lineno}, '
                           f'column {err.colno}): re-download or rewrite it.') from err
    if not isinstance(data, dict) or not isinstance(data.get('images'), list) or \
            not isinstance(data.get('annotations'), list):
        raise DatasetError(f'COCO captions file {path} needs the lists "images" and "annotations" '
                           '(the captions_train2014.json format); for {"image", "caption"} lines use a '
                           '.jsonl file.')
    return data


def read_coco_captions(path: str) -> CaptionPairs:
    """Read a COCO captions JSON (``captions_{train,val}2014.json``).

    Images without a caption are left out (a captions file lists every image of its split; the
    COCO files give each one five). A caption of an image id that ``images`` does not list is refused.

    Args:
        path (str): The JSON file.

    Returns:
        CaptionPairs: ``[(file_name, [captions])]`` in ``images`` order.

    Raises:
        MissingDatasetFileError: the file does not exist.
        DatasetError: invalid JSON, missing lists or keys, or an empty caption (as
            :func:`read_caption_jsonl`), naming the file and the entry (its index and annotation id).
    """
    _check_exists(path, 'COCO captions file')
    data = _load_json(path)
    names: Dict[int, str] = {}
    for i, image in enumerate(data['images']):
        if not isinstance(image, dict) or 'id' not in image or 'file_name' not in image:
            raise DatasetError(f'COCO captions file {path}, images[{i}]: needs "id" and "file_name", '
                               f'found {str(image)[:80]}.')
        names[image['id']] = image['file_name']
    captions: Dict[int, List[str]] = {}
    for i, ann in enumerate(data['annotations']):
        where = f'COCO captions file {path}, annotations[{i}]'
        if isinstance(ann, dict) and 'id' in ann:
            where += f' (id {ann["id"]})'
        if not isinstance(ann, dict) or 'image_id' not in ann or 'caption' not in ann:
            raise DatasetError(f'{where}: needs "image_id" and "caption", found {str(ann)[:80]}.')
        if ann['image_id'] not in names:
            raise DatasetError(f'{where}: image_id {ann["image_id"]} is not among "images"; add the '
                               'image entry or remove the caption.')
        captions.setdefault(ann['image_id'], []).extend(_captions_of(ann['caption'], where))
    return [(names[i], captions[i]) for i in names if captions.get(i)]


def caption_image_id(image: str, image_root: str = '') -> str:
    """The id of an image of a captions file, the same for a relative and an absolute path: the path
    relative to the image folder without extension (``sub/im0.jpg`` -> ``sub/im0``).

    Args:
        image (str): The image as the captions file gives it (relative to the image folder, or
            absolute).
        image_root (str): The image folder (``data_root`` + ``data_prefix['img_path']``); an absolute
            ``image`` under it is taken relative to it. Defaults to ``''`` (none known).

    Returns:
        str: The id; an absolute path outside ``image_root`` (or with none) gives its file name
        without extension, never the absolute path.
    """
    if osp.isabs(image):
        root = osp.abspath(image_root) if image_root else ''
        inside = bool(root) and osp.commonpath([root, osp.abspath(image)]) == root
        image = osp.relpath(image, root) if inside else osp.basename(image)
    return osp.splitext(image)[0].replace(osp.sep, '/')


def caption_file_format(path: str) -> str:
    """``'jsonl'`` for ``.jsonl``/``.ndjson`` files, else ``'coco'``."""
    return 'jsonl' if path.lower().endswith(('.jsonl', '.ndjson')) else 'coco'


def read_caption_file(path: str, file_format: str = 'auto') -> CaptionPairs:
    """Read a captions file of either format (``'auto'``: by :func:`caption_file_format`).

    Raises:
        ValueError: an unknown ``file_format``.
        DatasetError: the file holds no caption (an empty JSONL, a COCO JSON without annotations),
            naming it.
    """
    file_format = caption_file_format(path) if file_format == 'auto' else file_format
    if file_format == 'coco':
        pairs = read_coco_captions(path)
    elif file_format == 'jsonl':
        pairs = read_caption_jsonl(path)
    else:
        raise ValueError(f"caption file format {file_format!r}: use 'coco', 'jsonl' or 'auto'.")
    if not pairs:
        raise DatasetError(f'{path} holds no caption (no image with a caption in this {file_format} file); '
                           'check that it is the captions file of your images and was written to the end.')
    return pairs


def write_coco_captions(path: str, pairs: Sequence[Tuple[str, Sequence[str]]],
                        info: dict = None) -> str:
    """Write ``pairs`` as a COCO captions JSON (image ids 1.., caption ids 1..), atomically.

    Args:
        path (str): Output file; parent folders are created.
        pairs (Sequence[tuple[str, Sequence[str]]]): ``(file_name, captions)`` per image.
        info (dict, optional): The ``info`` entry.

    Returns:
        str: ``path``.
    """
    images, annotations = [], []
    for image_id, (file_name, captions) in enumerate(pairs, start=1):
        images.append(dict(id=image_id, file_name=file_name))
        for caption in captions:
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, caption=caption))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8', newline='\n') as f:
        json.dump(dict(info=info or {}, images=images, annotations=annotations), f, indent=1)
        f.write('\n')
    os.replace(tmp, path)
    return path
