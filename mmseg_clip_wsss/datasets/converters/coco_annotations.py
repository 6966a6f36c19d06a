"""MS COCO instances json -> image-level label file, split file and (optionally) semantic masks.

The command line is ``tools/dataset_converters/coco_to_labels.py``. Category ids of COCO are not
contiguous (1..90 with gaps); each category is mapped **by name** to its index in the dataset's
class list (``'background'`` = 0, then the 80 classes), which is also the value written into the
semantic masks.
"""
import json
import logging
import os
import os.path as osp
import warnings
from collections import OrderedDict, defaultdict
from functools import partial
from typing import Dict, List, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from mmengine.logging import print_log
from mmengine.utils import ProgressBar, track_parallel_progress

from ..image_labels import BACKGROUND, write_image_labels
from ..palette import write_palette_png

__all__ = ['coco_category_to_label', 'render_coco_mask', 'coco_to_labels']


def coco_category_to_label(categories: Sequence[dict], classes: Sequence[str]) -> Dict[int, int]:
    """Map COCO category ids to contiguous label indices by category name.

    Args:
        categories (Sequence[dict]): The json's ``categories`` (``id`` and ``name``).
        classes (Sequence[str]): The dataset's classes, ``'background'`` first.

    Returns:
        dict[int, int]: ``category id -> index in classes`` (1..K-1).

    Raises:
        ValueError: for a category whose name is not in ``classes``.
    """
    index = {name: i for i, name in enumerate(classes)}
    mapping = {}
    for cat in categories:
        if cat['name'] not in index or cat['name'] == BACKGROUND:
            raise ValueError(f"COCO category {cat['name']!r} (id {cat['id']}) is not one of the "
                             f'classes {tuple(classes[1:])}; pass the class list of this json.')
        mapping[int(cat['id'])] = index[cat['name']]
    return mapping


def _drawable_polygons(polygons: Sequence[Sequence[float]]) -> List[Sequence[float]]:
    """The parts of a COCO polygon ``segmentation`` that enclose an area: at least 3 points.

    pycocotools reads a 2-point part (4 numbers) as a box and fails with a ``TypeError``; such parts
    (and odd-length ones) are left out.
    """
    return [p for p in polygons if len(p) >= 6 and len(p) % 2 == 0]


def _undrawable_annotations(annotations: Sequence[dict], file_name: str) -> List[Dict]:
    """The annotations of one image with polygon parts that cannot be drawn (id, image, points)."""
    found = []
    for ann in annotations:
        polygons = ann.get('segmentation')
        if isinstance(polygons, list) and len(_drawable_polygons(polygons)) < len(polygons):
            found.append(dict(annotation_id=ann.get('id'), image=file_name,
                              points=[len(p) / 2 for p in polygons]))
    return found


def _annotation_mask(segmentation, height: int, width: int) -> np.ndarray:
    """(H, W) uint8 0/1 mask of one COCO ``segmentation`` (polygons or RLE)."""
    if isinstance(segmentation, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(_drawable_polygons(segmentation), height,
                                                      width))
    elif isinstance(segmentation.get('counts'), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:  # compressed RLE
        rle = segmentation
    with warnings.catch_warnings():
        # pycocotools' decode passes copy=False to numpy 2's __array__ protocol: a harmless
        # DeprecationWarning per call on the modern stack.
        warnings.filterwarnings(
            'ignore', message='__array__ implementation', category=DeprecationWarning)
        return mask_utils.decode(rle)


def render_coco_mask(annotations: Sequence[dict], height: int, width: int,
                     cat_to_label: Dict[int, int]) -> np.ndarray:
    """Semantic mask of one image from its instance annotations.

    Larger objects are drawn first so that smaller ones (often in front) stay visible; crowd
    regions are drawn as their class. Polygon parts of fewer than 3 points enclose nothing and are
    left out.

    Args:
        annotations (Sequence[dict]): The image's annotations (``segmentation``, ``category_id``,
            ``area``).
        height (int): Image height.
        width (int): Image width.
        cat_to_label (dict[int, int]): From :func:`coco_category_to_label`.

    Returns:
        np.ndarray: (H, W) uint8 label map, 0 = background.
    """
    mask = np.zeros((height, width), dtype=np.uint8)  # (H, W)
    for ann in sorted(annotations, key=lambda a: (-float(a.get('area', 0)), a.get('id', 0))):
        segmentation = ann.get('segmentation')
        if not segmentation or (isinstance(segmentation, list) and
                                not _drawable_polygons(segmentation)):
            continue  # no mask, or only polygons of fewer than 3 points (reported by coco_to_labels)
        instance = _annotation_mask(ann['segmentation'], height, width)  # (H, W)
        mask[instance.astype(bool)] = cat_to_label[int(ann['category_id'])]
    return mask


def _write_mask(task, masks_out: str, cat_to_label: Dict[int, int]) -> None:
    image_id, height, width, annotations = task
    write_palette_png(osp.join(masks_out, image_id + '.png'),
                      render_coco_mask(annotations, height, width, cat_to_label))


def _load_coco(ann_file: str) -> Dict:
    """The parsed instances json; FileNotFoundError with the fix when it is missing."""
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'COCO annotation file {ann_file} does not exist: download '
                                'annotations_trainval2014.zip into data/coco/annotations '
                                '(docs/datasets.md).')
    with open(ann_file, encoding='utf-8') as f:
        return json.load(f)


def _annotations_by_image(annotations: Sequence[dict]) -> Dict[int, List[dict]]:
    """The annotations grouped by ``image_id``, in file order."""
    by_image: Dict[int, List[dict]] = defaultdict(list)
    for ann in annotations:
        by_image[int(ann['image_id'])].append(ann)
    return by_image


def _collect_labels(images: Sequence[dict], by_image: Dict[int, List[dict]],
                    cat_to_label: Dict[int, int], classes: Sequence[str]) -> tuple:
    """``(labels, image_counts, object_counts, tasks, undrawable)`` of ``images``, in their order."""
    object_counts = {name: 0 for name in classes if name != BACKGROUND}
    image_counts = dict(object_counts)
    labels: 'OrderedDict[str, List[str]]' = OrderedDict()
    tasks = []
    undrawable: List[Dict] = []
    for image in images:
        image_id = osp.splitext(image['file_name'])[0]
        anns = by_image.get(int(image['id']), [])
        undrawable += _undrawable_annotations(anns, image['file_name'])
        present = sorted({cat_to_label[int(a['category_id'])] for a in anns})
        for ann in anns:
            object_counts[classes[cat_to_label[int(ann['category_id'])]]] += 1
        for label in present:
            image_counts[classes[label]] += 1
        labels[image_id] = [classes[label] for label in present]
        tasks.append((image_id, int(image['height']), int(image['width']), anns))
    return labels, image_counts, object_counts, tasks, undrawable


def _warn_undrawable(ann_file: str, undrawable: Sequence[Dict]) -> None:
    """Log a warning naming (up to 5 of) the annotations with undrawable polygon parts."""
    shown = ', '.join(f"annotation {a['annotation_id']} of image {a['image']} (parts of "
                      f"{', '.join(f'{n:g}' for n in a['points'])} points)"
                      for a in undrawable[:5]) + (', ...' if len(undrawable) > 5 else '')
    print_log(f'{ann_file}: {len(undrawable)} annotation(s) have polygon parts of fewer than 3 '
              f'points, which enclose no area: the masks leave those parts out, the image-level '
              f'labels keep the objects. {shown}', logger='current', level=logging.WARNING)


def _write_split(split_out: str, labels: Dict[str, List[str]]) -> None:
    """The split file: the ids of the images with at least one label."""
    os.makedirs(osp.dirname(osp.abspath(split_out)), exist_ok=True)
    with open(split_out, 'w', encoding='utf-8', newline='\n') as f:
        f.writelines(image_id + '\n' for image_id, names in labels.items() if names)


def _write_masks(tasks: Sequence[tuple], masks_out: str, cat_to_label: Dict[int, int], nproc: int,
                 show_progress: bool) -> None:
    """Render the semantic mask of every task into ``masks_out`` (in parallel with ``nproc > 1``)."""
    os.makedirs(masks_out, exist_ok=True)
    worker = partial(_write_mask, masks_out=masks_out, cat_to_label=cat_to_label)
    if nproc > 1:
        track_parallel_progress(worker, tasks, nproc=nproc)
    else:
        progress = ProgressBar(len(tasks)) if show_progress and tasks else None
        for task in tasks:
            worker(task)
            if progress is not None:
                progress.update()
        if progress is not None:
            print()


def coco_to_labels(ann_file: str,
                   out_file: str,
                   classes: Sequence[str],
                   split_out: Optional[str] = None,
                   masks_out: Optional[str] = None,
                   nproc: int = 1,
                   show_progress: bool = True) -> Dict:
    """Convert a COCO instances json into the files a :class:`COCOWSSSDataset` reads.

    Args:
        ann_file (str): ``annotations/instances_train2014.json`` (or val).
        out_file (str): Image-level label file to write; one line per image of the json, in file
            name order (images without annotation get an id-only line).
        classes (Sequence[str]): ``'background'`` + the json's category names.
        split_out (str, optional): Also write a split file with the ids of the images that have
            at least one annotation (the usual COCO WSSS image sets).
        masks_out (str, optional): Also render one VOC-palette PNG per image into this directory
            (value = class index, 0 = background).
        nproc (int): Processes for mask rendering. Defaults to 1.
        show_progress (bool): Show a progress bar for mask rendering. Defaults to True.

    Returns:
        dict: Summary with ``out_file``, ``num_images``, ``num_empty``, ``image_counts`` and
        ``object_counts`` (per class), ``split_out``, ``masks_out`` and ``undrawable`` (the
        annotations with polygon parts of fewer than 3 points, left out of the masks and reported:
        ``annotation_id``, ``image``, ``points`` per part).
    """
    coco = _load_coco(ann_file)
    cat_to_label = coco_category_to_label(coco['categories'], classes)
    by_image = _annotations_by_image(coco['annotations'])
    images = sorted(coco['images'], key=lambda im: im['file_name'])
    labels, image_counts, object_counts, tasks, undrawable = _collect_labels(
        images, by_image, cat_to_label, classes)
    if undrawable:
        _warn_undrawable(ann_file, undrawable)
    write_image_labels(out_file, labels, header=[f'made from {osp.basename(ann_file)}'])
    if split_out is not None:
        _write_split(split_out, labels)
    if masks_out is not None:
        _write_masks(tasks, masks_out, cat_to_label, nproc, show_progress)
    return dict(
        out_file=out_file,
        num_images=len(labels),
        num_empty=sum(1 for names in labels.values() if not names),
        image_counts=image_counts,
        object_counts=object_counts,
        split_out=split_out,
        masks_out=masks_out,
        undrawable=undrawable)
