"""PASCAL VOC XML boxes -> COCO instances json (detection ground truth for mmdet's ``CocoDataset`` /
``CocoMetric``). The command line is ``tools/dataset_converters/voc_xml_to_coco.py``."""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from .coco_det_format import coco_categories, dump_coco_json, image_entry, list_image_ids
from .voc_annotations import check_class_names, parse_voc_xml

__all__ = ['voc_xml_to_coco']


def _coco_box(xml_path: str, obj: Dict, width: int, height: int) -> List[float]:
    """COCO ``[x, y, w, h]`` of a VOC object's box, clipped to the image; ValueError if none/empty."""
    if obj['bbox'] is None:
        raise ValueError(f'{xml_path}: object {obj["name"]!r} has no <bndbox>.')
    xmin, ymin, xmax, ymax = obj['bbox']
    x, y = max(xmin - 1, 0.0), max(ymin - 1, 0.0)
    w, h = min(xmax, width) - x, min(ymax, height) - y
    if w <= 0 or h <= 0:
        raise ValueError(f'{xml_path}: object {obj["name"]!r} has an empty box {obj["bbox"]}.')
    return [x, y, w, h]


def _voc_boxes(xml_dir: str, image_id: str, classes: Sequence[str], skip_difficult: bool,
               width: int, height: int) -> List[Tuple[str, List[float]]]:
    """``(class name, COCO box)`` of every kept object of one image's XML, in file order."""
    xml_path = osp.join(xml_dir, image_id + '.xml')
    if not osp.isfile(xml_path):
        raise FileNotFoundError(f'{xml_path} does not exist but image {image_id!r} is listed: '
                                'restore the Annotations directory or fix the split.')
    objects = parse_voc_xml(xml_path)
    check_class_names(xml_path, objects, classes)
    return [(obj['name'], _coco_box(xml_path, obj, width, height)) for obj in objects
            if not (skip_difficult and obj['difficult'])]


def voc_xml_to_coco(data_root: str,
                    out_file: str,
                    classes: Sequence[str],
                    split_file: Optional[str] = None,
                    ann_dir: str = 'Annotations',
                    img_dir: str = 'JPEGImages',
                    skip_difficult: bool = False) -> Dict:
    """Write the boxes of a VOC-layout dataset as a COCO instances json.

    A VOC box ``(xmin, ymin, xmax, ymax)`` (1-based, inclusive) becomes
    ``[xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]``, the same pixel extent
    :func:`~mmseg_clip_wsss.datasets.pseudo_masks_to_coco.mask_to_instances` gives for a mask.

    Args:
        data_root (str): Dataset root (VOC devkit layout).
        out_file (str): Json to write (relative paths are taken under ``data_root``).
        classes (Sequence[str]): ``('background', <object classes>...)``; category ``k`` is
            ``classes[k]``.
        split_file (str, optional): Image ids to convert (relative paths under ``data_root``).
            None: every image of ``img_dir``.
        ann_dir (str): XML directory under ``data_root``. Defaults to 'Annotations'.
        img_dir (str): Image directory under ``data_root``. Defaults to 'JPEGImages'.
        skip_difficult (bool): Leave out objects marked difficult. Defaults to False.

    Returns:
        dict: ``out_file``, ``num_images``, ``num_instances``, ``instance_counts``.
    """
    def under_root(path):
        return path if osp.isabs(path) else osp.join(data_root, path)

    categories = coco_categories(classes)
    index = {c['name']: c['id'] for c in categories}
    img_dir, xml_dir, out_file = under_root(img_dir), under_root(ann_dir), under_root(out_file)
    image_ids = list_image_ids(img_dir, under_root(split_file) if split_file else None)
    images, annotations = [], []
    counts = {c['name']: 0 for c in categories}
    for coco_id, image_id in enumerate(image_ids, start=1):
        entry, (height, width) = image_entry(img_dir, image_id, coco_id)
        for name, (x, y, w, h) in _voc_boxes(xml_dir, image_id, classes, skip_difficult, width,
                                             height):
            annotations.append(
                dict(id=len(annotations) + 1, image_id=coco_id, category_id=index[name],
                     bbox=[x, y, w, h], area=w * h, iscrowd=0))
            counts[name] += 1
        images.append(entry)
    dump_coco_json(out_file, images, annotations, categories, f'boxes of {ann_dir}/*.xml')
    return dict(out_file=out_file, num_images=len(images), num_instances=len(annotations),
                instance_counts=counts)
