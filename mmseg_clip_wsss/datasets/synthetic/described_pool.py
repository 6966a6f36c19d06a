"""An unlabelled pool of generated images with people-like descriptions (COCO captions format).

:func:`make_described_pool` writes, under ``out_dir``::

    JPEGImages/pool_<i>.jpg                    the images (drawn from the world, seed of their own)
    annotations/captions_pool.json             descriptions, COCO captions format (ImageTextDataset)
    ImageSets/Segmentation/pool.txt            the image ids
    ImageLabels/pool_truth.txt                 the true image-level labels -- for measuring what the
    SegmentationClass/pool_<i>.png             descriptions tell, and the masks for scoring; never
                                               read by training
    described_pool.json                        world, seed, style, counts

Images use the generators ``(seed, 3, i)`` (split code 3: no train/val/openvocab image of any seed
shares them) and descriptions ``(seed, 3, i, 1)``: the same arguments write byte-identical files, and
a new ``vagueness`` describes the very same images.

:func:`write_split_descriptions` describes the images of a split of a generated dataset the same way
(its scenes drawn again from the dataset's world and seed, checked against its GT masks; descriptions
``(seed, split code, i, 1)``), so that its unlabelled images can carry descriptions too.
"""
import dataclasses
import json
import os
import os.path as osp
from typing import Dict, Union

import numpy as np
from PIL import Image

from ..caption_files import write_coco_captions
from ..data_root import check_data_root
from ..errors import MissingDatasetFileError
from ..image_labels import write_image_labels
from ..palette import write_palette_png
from .descriptions import DescriptionStyle, describe_scene
from .voc_writer import JPEG_QUALITY, SPLIT_CODES
from .world import WorldConfig, draw_scene, load_world, read_demo_info, world_preset

__all__ = ['make_described_pool', 'write_split_descriptions', 'POOL_SPLIT_CODE', 'POOL_CAPTIONS']

#: Split code of the pool's image generators (train 0, val 1, openvocab 2).
POOL_SPLIT_CODE = 3
#: The pool's captions file under ``out_dir``.
POOL_CAPTIONS = 'annotations/captions_pool.json'


def _check_out_dir(out_dir: str, overwrite: bool) -> None:
    marker = osp.join(out_dir, 'described_pool.json')
    if osp.exists(osp.join(out_dir, POOL_CAPTIONS)) and not overwrite:
        raise FileExistsError(f'{out_dir} already holds a described pool ({POOL_CAPTIONS}): pass '
                              'overwrite=True (--overwrite) to write it again, or choose another out dir.')
    if osp.exists(marker) and overwrite:
        os.remove(marker)
    for sub in ('JPEGImages', 'annotations', 'ImageSets/Segmentation', 'ImageLabels', 'SegmentationClass'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)


def _write_image(out_dir: str, image_id: str, world: WorldConfig, seed: int, index: int,
                 style: DescriptionStyle):
    """Draw, write and describe one image; returns (class names present, descriptions)."""
    scene = draw_scene(np.random.default_rng([seed, POOL_SPLIT_CODE, index]), world)
    names = list(world.class_names)
    label = np.zeros(scene.owner.shape, dtype=np.uint8)
    for k, obj in enumerate(scene.objects):
        label[scene.owner == k] = names.index(obj.cls.name)
    Image.fromarray(scene.image, 'RGB').save(osp.join(out_dir, 'JPEGImages', image_id + '.jpg'),
                                             format='JPEG', quality=JPEG_QUALITY, subsampling=0)
    write_palette_png(osp.join(out_dir, 'SegmentationClass', image_id + '.png'), label)
    rng = np.random.default_rng([seed, POOL_SPLIT_CODE, index, 1])
    descriptions = [describe_scene(rng, scene.objects, style) for _ in range(style.per_image)]
    present = [n for n in names[1:] if any(o.cls.name == n for o in scene.objects)]
    return present, descriptions


def make_described_pool(out_dir: str,
                        world: Union[str, WorldConfig] = 'demo',
                        seed: int = 1,
                        num_images: int = 1500,
                        style: DescriptionStyle = None,
                        overwrite: bool = False) -> Dict:
    """Write a described, unlabelled pool (layout in the module docstring).

    Args:
        out_dir (str): Folder to write.
        world (str | WorldConfig): Preset name or world. Defaults to ``'demo'``.
        seed (int): The pool's seed. Defaults to 1.
        num_images (int): Images. Defaults to 1500.
        style (DescriptionStyle, optional): The describer (its ``vagueness`` is the knob of how
            vague the descriptions are). Defaults to ``DescriptionStyle()``.
        overwrite (bool): Write over a pool already in ``out_dir``. Defaults to False.

    Returns:
        dict: ``described_pool.json``'s content.

    Raises:
        FileExistsError: ``out_dir`` holds a pool and ``overwrite`` is False.
        ValueError: ``num_images`` < 1, an unknown world.
    """
    world = world_preset(world) if isinstance(world, str) else world
    style = style or DescriptionStyle()
    if num_images < 1:
        raise ValueError(f'make_described_pool: num_images must be >= 1, got {num_images}.')
    _check_out_dir(out_dir, overwrite)
    ids = [f'pool_{i:05d}' for i in range(num_images)]
    truth, pairs = {}, []
    for i, image_id in enumerate(ids):
        truth[image_id], descriptions = _write_image(out_dir, image_id, world, seed, i, style)
        pairs.append((image_id + '.jpg', descriptions))
    info = dict(world=world.to_dict(), seed=seed, num_images=num_images, classes=list(world.class_names),
                style=dataclasses.asdict(style), captions=POOL_CAPTIONS)
    write_coco_captions(osp.join(out_dir, POOL_CAPTIONS), pairs,
                        info=dict(description='described pool of a generated world', seed=seed,
                                  vagueness=style.vagueness))
    with open(osp.join(out_dir, 'ImageSets', 'Segmentation', 'pool.txt'), 'w', newline='\n') as f:
        f.writelines(i + '\n' for i in ids)
    write_image_labels(osp.join(out_dir, 'ImageLabels', 'pool_truth.txt'), truth,
                       header=['true labels of the described pool: for evaluation only, never for training'])
    with open(osp.join(out_dir, 'described_pool.json'), 'w', newline='\n') as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write('\n')
    return info


def _split_scene(data_root: str, world: WorldConfig, seed: int, split: str, index: int, image_id: str):
    """The scene of image ``index`` of ``split``, drawn again, checked against its GT mask."""
    scene = draw_scene(np.random.default_rng([seed, SPLIT_CODES[split], index]), world,
                       world.classes + world.unseen if split == 'openvocab' else None)
    names = list(world.class_names) + [c.name for c in world.unseen]
    label = np.zeros(scene.owner.shape, dtype=np.uint8)
    for k, obj in enumerate(scene.objects):
        label[scene.owner == k] = names.index(obj.cls.name)
    mask_path = osp.join(data_root, 'SegmentationClass', image_id + '.png')
    if not osp.isfile(mask_path):
        raise MissingDatasetFileError(
            f'write_split_descriptions: {mask_path} is missing ({split} image {index}, {image_id}, of '
            f'{data_root}): its scene is checked against it. Write the data again with `python '
            f'tools/make_demo_data.py --out {data_root} --overwrite`.')
    if not np.array_equal(np.asarray(Image.open(mask_path)), label):
        raise ValueError(f'write_split_descriptions: {mask_path} is not the mask of the scene drawn again from '
                         f'{data_root}/demo_info.json (seed {seed}, {split} image {index}): the data was written '
                         'by another generator version or edited; write it again with tools/make_demo_data.py '
                         '--overwrite.')
    return scene


def write_split_descriptions(data_root: str, split: str, out_file: str, style: DescriptionStyle = None,
                             skip: int = 0) -> Dict:
    """Describe the images of ``split`` of a generated dataset (from the ``skip``-th on) in the COCO
    captions format, as :func:`make_described_pool` describes its pool.

    Args:
        data_root (str): A generated dataset (``demo_info.json``: world and seed).
        split (str): ``'train'``, ``'val'`` or ``'openvocab'``.
        out_file (str): The captions JSON to write (its ``file_name`` entries are the images' names
            under ``data_root/JPEGImages``).
        style (DescriptionStyle, optional): The describer. Defaults to ``DescriptionStyle()``.
        skip (int): Images at the start of the split left out (the labelled ones). Defaults to 0.

    Returns:
        dict: ``split``, ``skip``, ``num_images`` described, ``vagueness``. An ``out_file`` written
        before with the same data root, seed, style and ``skip`` is kept as it is.

    Raises:
        ValueError: an unknown split, ``skip`` below 0 or leaving no image, or a scene drawn again
            that differs from its GT mask (the data came from another generator version).
        MissingDatasetFileError: ``data_root`` lacks a part it reads (``demo_info.json``, the split
            file, a GT mask), naming it and the fix.
    """
    style = style or DescriptionStyle()
    if split not in SPLIT_CODES:
        raise ValueError(f'write_split_descriptions: split {split!r} must be one of {sorted(SPLIT_CODES)}.')
    if isinstance(skip, bool) or not isinstance(skip, (int, np.integer)) or skip < 0:
        raise ValueError(f'write_split_descriptions: skip={skip!r} must be a whole number, 0 or more (the '
                         'labelled images at the start of the split, left out).')
    check_data_root(data_root, splits=(split, ), demo_info=True, option='write_split_descriptions: data_root')
    seed = int(read_demo_info(data_root)['seed'])
    world = load_world(data_root)
    with open(osp.join(data_root, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
        ids = [line.strip() for line in f if line.strip()]
    if skip >= len(ids):
        raise ValueError(f'write_split_descriptions: skip={skip} leaves no image of the {split} split of '
                         f'{data_root} ({len(ids)} images) to describe; give skip below {len(ids)}.')
    summary = dict(split=split, skip=skip, num_images=len(ids) - skip, vagueness=style.vagueness)
    info = json.loads(json.dumps(dict(description=f'described {split} images of {osp.abspath(data_root)}',
                                      seed=seed, style=dataclasses.asdict(style), **summary)))
    if _written_with(out_file, info):
        return summary  # the same arguments write the same file
    pairs = []
    for i, image_id in enumerate(ids[skip:], start=skip):
        scene = _split_scene(data_root, world, seed, split, i, image_id)
        rng = np.random.default_rng([seed, SPLIT_CODES[split], i, 1])
        pairs.append((image_id + '.jpg', [describe_scene(rng, scene.objects, style) for _ in range(style.per_image)]))
    write_coco_captions(out_file, pairs, info=info)
    return summary


def _written_with(path: str, info: Dict) -> bool:
    """Whether ``path`` is a captions file whose ``info`` is ``info``."""
    try:
        with open(path) as f:
            return json.load(f).get('info') == info
    except (OSError, ValueError, AttributeError):
        return False
