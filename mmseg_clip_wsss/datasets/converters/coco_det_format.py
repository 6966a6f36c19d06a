"""Shared pieces of the COCO instances json writers (VOC XML -> COCO, pseudo masks -> COCO)."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from ..image_labels import BACKGROUND
from ..label_mask import image_size
from ..split_file import IMAGE_EXTS, read_split_file

__all__ = ['IMAGE_EXTS', 'coco_categories', 'list_image_ids', 'find_image', 'image_entry',
           'dump_coco_json']


def coco_categories(classes: Sequence[str]) -> List[Dict]:
    """COCO ``categories`` of a class list whose entry 0 is ``'background'``.

    Category ``k`` is ``classes[k]`` (k >= 1), so a label-map value is its category id.

    Args:
        classes (Sequence[str]): ``('background', <object classes>...)``, e.g. ``DEMO_CLASSES``.

    Returns:
        list[dict]: ``[{'id': k, 'name': classes[k], 'supercategory': 'object'}, ...]``.
    """
    classes = list(classes)
    if len(classes) < 2 or classes[0] != BACKGROUND:
        raise ValueError(f"classes must start with '{BACKGROUND}' followed by the object classes "
                         f'(label-map order, e.g. DEMO_CLASSES), got {classes[:3]}...')
    if len(set(classes)) != len(classes):
        raise ValueError(f'classes has duplicate names: {classes}.')
    return [dict(id=k, name=name, supercategory='object') for k, name in enumerate(classes) if k]


def list_image_ids(img_dir: str, split_file: Optional[str] = None) -> List[str]:
    """Image ids (file names without extension): those of ``split_file`` or every image, sorted.

    Raises:
        FileNotFoundError: for a missing directory or split file.
    """
    if not osp.isdir(img_dir):
        raise FileNotFoundError(f'image directory {img_dir} does not exist.')
    if split_file is not None:
        return read_split_file(split_file)
    return sorted(
        osp.splitext(name)[0] for name in os.listdir(img_dir) if name.lower().endswith(IMAGE_EXTS))


def find_image(img_dir: str, image_id: str) -> str:
    """File name (relative to ``img_dir``) of an image id, trying :data:`IMAGE_EXTS`."""
    for ext in IMAGE_EXTS:
        if osp.isfile(osp.join(img_dir, image_id + ext)):
            return image_id + ext
    raise FileNotFoundError(f'no image {image_id}{{{",".join(IMAGE_EXTS)}}} in {img_dir}: the split '
                            'lists an image that is not there; fix the split or the image directory.')


def image_entry(img_dir: str, image_id: str, coco_id: int) -> Tuple[Dict, Tuple[int, int]]:
    """COCO ``images`` entry of an image and its (H, W), as displayed (EXIF orientation applied, as
    mmcv/mmdet load it: :func:`~mmseg_clip_wsss.datasets.label_mask.image_size`)."""
    file_name = find_image(img_dir, image_id)
    height, width = image_size(osp.join(img_dir, file_name))
    return dict(id=coco_id, file_name=file_name, width=width, height=height), (height, width)


def dump_coco_json(out_file: str, images: List[Dict], annotations: List[Dict],
                   categories: List[Dict], description: str) -> None:
    """Write a COCO instances json (``info``, ``images``, ``annotations``, ``categories``)."""
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    content = dict(info=dict(description=description), licenses=[], images=images,
                   annotations=annotations, categories=categories)
    with open(out_file, 'w', encoding='utf-8', newline='\n') as f:
        json.dump(content, f)
