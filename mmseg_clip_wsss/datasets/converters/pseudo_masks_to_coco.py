"""Stage-1 pseudo masks -> COCO instances json (weakly supervised detection / instance segmentation).

A pseudo mask is a label map (VOC palette PNG, value = class index, 0 = background, 255 = ignore),
as ``tools/make_pseudo_masks.py`` writes. Every connected component of every object class becomes one
instance: its box ``[x, y, w, h]`` (pixel-inclusive extent: ``w = x_max - x_min + 1``), its pixel
area and its mask as compressed RLE. Components smaller than ``min_area`` pixels are dropped. The
command line is ``tools/dataset_converters/pseudo_masks_to_coco.py``.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.utils import ProgressBar
from pycocotools import mask as mask_utils
from scipy import ndimage

from ..image_io import read_image
from ..label_mask import PSEUDO_MASK_SIZE_FIX, check_label_mask
from .coco_det_format import coco_categories, dump_coco_json, image_entry, list_image_ids

__all__ = ['mask_to_instances', 'pseudo_masks_to_coco']

_STRUCTURES = {4: ndimage.generate_binary_structure(2, 1), 8: ndimage.generate_binary_structure(2, 2)}


def mask_to_instances(label_map: np.ndarray,
                      num_classes: int,
                      min_area: int = 0,
                      connectivity: int = 8,
                      ignore_index: int = 255,
                      with_masks: bool = True) -> List[Dict]:
    """Connected components of every object class of a label map.

    Args:
        label_map (np.ndarray): (H, W) integer class indices; 0 is background, ``ignore_index``
            is ignored.
        num_classes (int): Number of classes, background included (values must be < it).
        min_area (int): Components with fewer pixels are dropped. Defaults to 0.
        connectivity (int): 4 or 8 (diagonal neighbours join). Defaults to 8.
        ignore_index (int): Ignored value. Defaults to 255.
        with_masks (bool): Add the component mask as compressed RLE (``segmentation``).
            Defaults to True.

    Returns:
        list[dict]: One dict per component, ordered by class then by the component's first pixel in
        raster order: ``category_id`` (the class index), ``bbox`` ``[x, y, w, h]`` (ints),
        ``area`` (pixels) and, with ``with_masks``, ``segmentation`` (``{'size', 'counts'}``).

    Raises:
        ValueError: for a value that is neither a class index nor ``ignore_index``.
    """
    if label_map.ndim != 2:
        raise ValueError(f'expected a (H, W) label map, got shape {label_map.shape}.')
    if connectivity not in _STRUCTURES:
        raise ValueError(f'connectivity must be 4 or 8, got {connectivity}.')
    values = np.unique(label_map)
    bad = [int(v) for v in values if v != ignore_index and not 0 <= v < num_classes]
    if bad:
        raise ValueError(f'label map values {bad} are not class indices in [0, {num_classes}) nor '
                         f'the ignore value {ignore_index}: wrong class list?')
    instances = []
    for k in values:
        k = int(k)
        if k in (0, ignore_index):
            continue
        components, count = ndimage.label(label_map == k, structure=_STRUCTURES[connectivity])
        areas = np.bincount(components.ravel(), minlength=count + 1)  # (count + 1, )
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            area = int(areas[index])
            if box is None or area < min_area:
                continue
            rows, cols = box
            instance = dict(
                category_id=k,
                bbox=[cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start],
                area=area)
            if with_masks:
                rle = mask_utils.encode(np.asfortranarray(components == index, dtype=np.uint8))
                instance['segmentation'] = dict(size=[int(s) for s in rle['size']],
                                                counts=rle['counts'].decode('ascii'))
            instances.append(instance)
    return instances


def _masked_image_ids(mask_dir: str, img_dir: str, split_file: Optional[str]) -> List[str]:
    """The ids to convert; FileNotFoundError when the mask directory or a mask is missing."""
    if not osp.isdir(mask_dir):
        raise FileNotFoundError(
            f'pseudo-mask directory {mask_dir} does not exist: write the stage-1 pseudo masks first '
            '(tools/make_pseudo_masks.py, or `make demo` for work_dirs/demo/stage1/pseudo_masks).')
    image_ids = list_image_ids(img_dir, split_file)
    missing = [i for i in image_ids if not osp.isfile(osp.join(mask_dir, i + '.png'))]
    if missing:
        raise FileNotFoundError(
            f'{len(missing)} of {len(image_ids)} images have no pseudo mask in {mask_dir} (e.g. '
            f'{missing[0]}.png): pass the split the masks were made for (--split) or make the '
            'missing masks.')
    return image_ids


def _image_instances(img_dir: str, mask_dir: str, image_id: str, coco_id: int, num_classes: int,
                     connectivity: int, ignore_index: int, with_masks: bool) -> tuple:
    """``(image entry, instances of its checked mask)`` of one image (no ``min_area`` applied)."""
    entry, (height, width) = image_entry(img_dir, image_id, coco_id)
    mask_path = osp.join(mask_dir, image_id + '.png')
    label_map = read_image(mask_path, 'pseudo mask', 'write it again (tools/make_pseudo_masks.py)')
    check_label_mask(label_map, mask_path, osp.join(img_dir, entry['file_name']),
                     (height, width), num_classes, ignore_index, what='pseudo mask',
                     size_fix=PSEUDO_MASK_SIZE_FIX)
    return entry, mask_to_instances(label_map, num_classes, 0, connectivity, ignore_index, with_masks)


def _collect_instances(image_ids: Sequence[str], mask_dir: str, img_dir: str, classes: Sequence[str],
                       categories: List[Dict], min_area: int, connectivity: int, ignore_index: int,
                       with_masks: bool, show_progress: bool) -> tuple:
    """``(images, annotations, instance counts, components dropped by min_area)`` of ``image_ids``."""
    images, annotations = [], []
    counts = {c['name']: 0 for c in categories}
    num_small = 0
    progress = ProgressBar(len(image_ids)) if show_progress and image_ids else None
    for coco_id, image_id in enumerate(image_ids, start=1):
        entry, found = _image_instances(img_dir, mask_dir, image_id, coco_id, len(classes),
                                        connectivity, ignore_index, with_masks)
        for inst in found:
            if inst['area'] < min_area:
                num_small += 1
                continue
            annotations.append(dict(id=len(annotations) + 1, image_id=coco_id, iscrowd=0, **inst))
            counts[classes[inst['category_id']]] += 1
        images.append(entry)
        if progress is not None:
            progress.update()
    if progress is not None:
        print()
    return images, annotations, counts, num_small


def pseudo_masks_to_coco(mask_dir: str,
                         img_dir: str,
                         out_file: str,
                         classes: Sequence[str],
                         split_file: Optional[str] = None,
                         min_area: int = 16,
                         connectivity: int = 8,
                         ignore_index: int = 255,
                         with_masks: bool = True,
                         show_progress: bool = True) -> Dict:
    """Write a COCO instances json from a directory of pseudo masks.

    Args:
        mask_dir (str): Pseudo masks, ``<image id>.png`` (palette or grey, class index per pixel).
        img_dir (str): Images, ``<image id>.<jpg|jpeg|png|bmp>``; the json's ``images`` (file name
            relative to ``img_dir``, width, height) are read from here.
        out_file (str): Json to write.
        classes (Sequence[str]): ``('background', <object classes>...)`` in label-map order (e.g.
            ``DEMO_CLASSES``); category ``k`` is ``classes[k]``.
        split_file (str, optional): Image ids to convert, one per line. None: every image of
            ``img_dir``. Every converted image needs a mask.
        min_area (int): Components with fewer pixels are dropped. Defaults to 16.
        connectivity (int): 4 or 8. Defaults to 8.
        ignore_index (int): Ignored mask value. Defaults to 255.
        with_masks (bool): Write RLE masks (``segmentation``). Defaults to True.
        show_progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: Summary: ``out_file``, ``num_images``, ``num_instances``, ``num_empty`` (images with
        no instance left), ``num_small`` (components dropped by ``min_area``), ``instance_counts``
        (class -> instances).

    Raises:
        FileNotFoundError: naming the missing directory / mask and the fix.
        DatasetError: for a mask that cannot belong to its image (colour channels, another size than
            the image as displayed, values that are no class), naming both files.
        CorruptImageError, ImageTooLargeError: for an image or mask that cannot be decoded, naming it
            and the fix (:mod:`~mmseg_clip_wsss.datasets.image_io`).
    """
    categories = coco_categories(classes)
    image_ids = _masked_image_ids(mask_dir, img_dir, split_file)
    images, annotations, counts, num_small = _collect_instances(
        image_ids, mask_dir, img_dir, classes, categories, min_area, connectivity, ignore_index,
        with_masks, show_progress)
    dump_coco_json(out_file, images, annotations, categories,
                   f'instances from the pseudo masks in {mask_dir} (min_area={min_area})')
    with_instances = {a['image_id'] for a in annotations}
    return dict(
        out_file=out_file,
        num_images=len(images),
        num_instances=len(annotations),
        num_empty=sum(1 for e in images if e['id'] not in with_instances),
        num_small=num_small,
        instance_counts=counts)
