"""The generated demo dataset in the PASCAL VOC devkit layout, drawn from a world (:mod:`.world`).

:func:`make_demo_data` writes it; its command line is ``tools/make_demo_data.py``::

    python tools/make_demo_data.py --out data/demo --seed 0                # the 'demo' world
    python tools/make_demo_data.py --out data/shape-only --world shape-only-96

Layout under ``--out`` (the same as ``VOCdevkit/VOC2012``)::

    JPEGImages/<id>.jpg                   RGB images
    SegmentationClass/<id>.png            GT masks, VOC palette (mode 'P'), value = class index
    Annotations/<id>.xml                  VOC XML (object/name/bndbox), made from the masks
    ImageSets/Segmentation/{train,val,trainval}.txt
    ImageLabels/{train,val}.txt           image-level labels, made from the XML by the VOC converter
    ImageSets/Segmentation/openvocab.txt  images that also hold the world's unseen classes (their
    ImageLabels/openvocab.txt             mask values follow the labelled ones), for
                                          open-vocabulary evaluation; only for worlds with unseen
                                          classes
    demo_info.json                        the world, seed, sizes, per-class counts

The output is byte-identical for the same arguments: one random generator per image seeded from
``(seed, split, index)``, fixed JPEG settings, no timestamps, sorted file order.
"""
import json
import os
import os.path as osp
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.utils import ProgressBar
from PIL import Image

from ..converters import voc_xml_to_labels
from ..palette import write_palette_png
from .world import ObjectClass, WorldConfig, draw_scene, world_preset

__all__ = ['make_demo_data', 'draw_labelled_scene', 'write_voc_xml']

#: The files and folders this tool writes (and removes with ``--overwrite``).
MANAGED = ('JPEGImages', 'SegmentationClass', 'Annotations', 'ImageSets', 'ImageLabels',
           'demo_info.json')
SPLIT_CODES = {'train': 0, 'val': 1, 'openvocab': 2}
JPEG_QUALITY = 92


def draw_labelled_scene(rng: np.random.Generator, world: WorldConfig,
                        pool: Optional[Sequence[ObjectClass]] = None):
    """One image of ``world`` with its label map and VOC objects.

    Args:
        rng (np.random.Generator): The image's generator.
        world (WorldConfig): The world.
        pool (Sequence[ObjectClass], optional): Classes to draw from (default: the labelled ones).

    Returns:
        tuple: ``img`` (S, S, 3) uint8 RGB, ``label`` (S, S) uint8 -- the index of each pixel's class
        in ``world.class_names`` followed by the unseen names (0 = background) -- and ``objects``
        (drawing order): ``dict(name, bbox=(xmin, ymin, xmax, ymax) 1-based inclusive, truncated)``
        of the visible part of each object.
    """
    scene = draw_scene(rng, world, pool)
    names = list(world.class_names) + [c.name for c in world.unseen]
    size = world.image_size
    label = np.zeros(scene.owner.shape, dtype=np.uint8)
    objects = []
    for k, obj in enumerate(scene.objects):
        mine = scene.owner == k
        label[mine] = names.index(obj.cls.name)
        ys, xs = np.nonzero(mine)
        objects.append(
            dict(name=obj.cls.name,
                 bbox=(int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1, int(ys.max()) + 1),
                 truncated=int(xs.min() == 0 or ys.min() == 0 or xs.max() == size - 1
                               or ys.max() == size - 1)))
    return scene.image, label, objects


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def write_voc_xml(path: str, image_id: str, size: int, objects: List[dict]) -> None:
    """Write one annotation in the PASCAL VOC XML schema."""
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'demo'
    ET.SubElement(root, 'filename').text = image_id + '.jpg'
    source = ET.SubElement(root, 'source')
    ET.SubElement(source, 'database').text = 'mmseg_clip_wsss synthetic demo'
    size_el = ET.SubElement(root, 'size')
    for key, value in (('width', size), ('height', size), ('depth', 3)):
        ET.SubElement(size_el, key).text = str(value)
    ET.SubElement(root, 'segmented').text = '1'
    for obj in objects:
        el = ET.SubElement(root, 'object')
        ET.SubElement(el, 'name').text = obj['name']
        ET.SubElement(el, 'pose').text = 'Unspecified'
        ET.SubElement(el, 'truncated').text = str(obj['truncated'])
        ET.SubElement(el, 'difficult').text = '0'
        box = ET.SubElement(el, 'bndbox')
        for key, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), obj['bbox']):
            ET.SubElement(box, key).text = str(value)
    tree = ET.ElementTree(root)
    ET.indent(tree, space='\t')
    with open(path, 'wb') as f:
        tree.write(f, encoding='utf-8', xml_declaration=False)
        f.write(b'\n')


def prepare_out_dir(out_dir: str, overwrite: bool) -> None:
    """Create ``out_dir``; refuse to mix with existing content unless ``overwrite``."""
    if osp.isdir(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise FileExistsError(f'{out_dir} exists and is not empty: pass --overwrite to replace '
                                  'the demo data in it, or choose another --out.')
        for name in MANAGED:
            path = osp.join(out_dir, name)
            if osp.isdir(path):
                shutil.rmtree(path)
            elif osp.exists(path):
                os.remove(path)
    for sub in ('JPEGImages', 'SegmentationClass', 'Annotations', 'ImageSets/Segmentation'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)


def _write_split(out_dir: str, split: str, count: int, seed: int, world: WorldConfig,
                 progress: Optional[ProgressBar]) -> List[str]:
    """Images, masks and XML of one split, and its image set file; returns the image ids."""
    ids = [f'{split}_{i:05d}' for i in range(count)]
    pool = world.classes + world.unseen if split == 'openvocab' else None
    for i, image_id in enumerate(ids):
        rng = np.random.default_rng([seed, SPLIT_CODES[split], i])
        img, label, objects = draw_labelled_scene(rng, world, pool)
        Image.fromarray(img, 'RGB').save(
            osp.join(out_dir, 'JPEGImages', image_id + '.jpg'),
            format='JPEG', quality=JPEG_QUALITY, subsampling=0, optimize=False)
        write_palette_png(osp.join(out_dir, 'SegmentationClass', image_id + '.png'), label)
        write_voc_xml(osp.join(out_dir, 'Annotations', image_id + '.xml'), image_id,
                      world.image_size, objects)
        if progress is not None:
            progress.update()
    _write_lines(osp.join(out_dir, 'ImageSets', 'Segmentation', split + '.txt'), ids)
    return ids


def _write_lines(path: str, lines: List[str]) -> None:
    with open(path, 'w', newline='\n') as f:
        f.writelines(line + '\n' for line in lines)


def _write_label_files(out_dir: str, splits: Dict[str, Sequence[str]]) -> Dict:
    """``ImageLabels/<split>.txt`` from the XML by the VOC converter, with each split's class list;
    returns their summaries."""
    summaries = {}
    for split, classes in splits.items():
        summary = voc_xml_to_labels(
            out_dir,
            f'ImageLabels/{split}.txt',
            classes=tuple(classes),
            split_file=f'ImageSets/Segmentation/{split}.txt',
            show_progress=False)
        summaries[split] = {k: v for k, v in summary.items() if k != 'out_file'}
        summaries[split]['label_file'] = f'ImageLabels/{split}.txt'
    return summaries


def make_demo_data(out_dir: str,
                   world: Union[str, WorldConfig] = 'demo',
                   seed: int = 0,
                   num_train: int = 300,
                   num_val: int = 100,
                   num_openvocab: int = 0,
                   size: Optional[int] = None,
                   overwrite: bool = False,
                   show_progress: bool = True) -> Dict:
    """Write a generated dataset (see the module docstring for the layout).

    Args:
        out_dir (str): Dataset root to write.
        world (str | WorldConfig): A preset name of :data:`~.world.WORLD_PRESETS` or a world.
            Defaults to ``'demo'``.
        seed (int): Random seed; the same arguments give byte-identical files.
        num_train (int): Train images. Defaults to 300.
        num_val (int): Val images. Defaults to 100.
        num_openvocab (int): Images of the ``openvocab`` split (ignored for a world without unseen
            classes). Defaults to 0 (``tools/make_demo_data.py`` and ``make demo`` write 100).
        size (int, optional): Image side in pixels; None keeps the world's ``image_size``.
        overwrite (bool): Replace the demo files of a non-empty ``out_dir``. Defaults to False.
        show_progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: ``demo_info.json``'s content (world, counts, per-split label summaries).

    Raises:
        ValueError: for an unknown world or a ``size`` below 32 px.
        FileExistsError: for a non-empty ``out_dir`` without ``overwrite``.
    """
    world = world_preset(world) if isinstance(world, str) else world
    if size is not None:
        world = replace(world, image_size=size)  # validated by WorldConfig
    prepare_out_dir(out_dir, overwrite)
    counts = dict(train=num_train, val=num_val, openvocab=num_openvocab if world.unseen else 0)
    counts = {split: n for split, n in counts.items() if n}
    progress = ProgressBar(sum(counts.values())) if show_progress else None
    ids = {split: _write_split(out_dir, split, n, seed, world, progress) for split, n in counts.items()}
    if progress is not None:
        print()
    _write_lines(osp.join(out_dir, 'ImageSets', 'Segmentation', 'trainval.txt'),
                 ids.get('train', []) + ids.get('val', []))
    open_vocab = world.class_names + tuple(c.name for c in world.unseen)
    info = dict(
        classes=list(world.class_names),
        open_vocab_classes=list(open_vocab),
        world=world.to_dict(),
        seed=seed,
        size=world.image_size,
        num_train=num_train,
        num_val=num_val,
        num_openvocab=counts.get('openvocab', 0),
        jpeg_quality=JPEG_QUALITY,
        splits=_write_label_files(out_dir, {split: open_vocab if split == 'openvocab' else world.class_names
                                            for split in counts}))
    with open(osp.join(out_dir, 'demo_info.json'), 'w', newline='\n') as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write('\n')
    return info
