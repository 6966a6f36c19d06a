"""The synthetic demo dataset in the PASCAL VOC devkit layout: its drawing primitives and writer.

:func:`make_demo_data` writes it; its command line is ``tools/make_demo_data.py``::

    python tools/make_demo_data.py --out data/demo --seed 0            # 300 train + 100 val, 128 px
    python tools/make_demo_data.py --out data/demo_large --large       # 2000 + 500, 192 px

Layout under ``--out`` (the same as ``VOCdevkit/VOC2012``)::

    JPEGImages/<id>.jpg                   RGB images
    SegmentationClass/<id>.png            GT masks, VOC palette (mode 'P'), value = class index
    Annotations/<id>.xml                  VOC XML (object/name/bndbox), made from the masks
    ImageSets/Segmentation/{train,val,trainval}.txt
    ImageLabels/{train,val}.txt           image-level labels, made from the XML by the VOC converter
    demo_info.json                        classes, textures, seed, sizes, per-class counts

Eight object classes (see ``mmseg_clip_wsss.datasets.DEMO_CLASSES``) are shapes with a surface
texture; every texture is shared by two classes and every colour by all classes, so a class is told
apart by shape and texture, not by colour. Images hold 1-4 objects (classes that co-occur, objects
that occlude each other, scales from small to large) over cluttered backgrounds: smooth colour
noise, faint patterns, lines and blobs in background *and* object colours.

The output is byte-identical for the same arguments: one random generator per image seeded from
``(seed, split, index)``, fixed JPEG settings, no timestamps, sorted file order.
"""
import json
import os
import os.path as osp
import shutil
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple

import numpy as np
from mmengine.utils import ProgressBar
from PIL import Image

from mmseg_clip_wsss.datasets import (DEMO_CLASSES, DEMO_COOCCURRING, DEMO_TEXTURES,
                                      voc_xml_to_labels, write_palette_png)

__all__ = ['make_demo_data', 'draw_image', 'draw_background', 'pick_classes', 'shape_mask',
           'texture_tone', 'smooth_noise', 'segment_distance', 'write_voc_xml', 'OBJECT_COLOURS',
           'BACKGROUND_COLOURS']

#: Object colours (RGB), shared by all classes.
OBJECT_COLOURS = np.array([[215, 45, 40], [240, 145, 35], [230, 210, 55], [60, 175, 75],
                           [45, 185, 200], [55, 90, 215], [165, 75, 195], [230, 230, 225]],
                          dtype=np.float32)
#: Muted background colours (RGB).
BACKGROUND_COLOURS = np.array([[110, 100, 85], [80, 110, 70], [95, 95, 112], [135, 122, 100],
                               [70, 86, 96], [120, 104, 120], [60, 72, 60], [142, 136, 126]],
                              dtype=np.float32)
#: The files and folders this tool writes (and removes with ``--overwrite``).
MANAGED = ('JPEGImages', 'SegmentationClass', 'Annotations', 'ImageSets', 'ImageLabels',
           'demo_info.json')
SPLIT_CODES = {'train': 0, 'val': 1}
JPEG_QUALITY = 92


# --------------------------------------------------------------------------------------------
# drawing primitives (vectorised over the pixel grid)
# --------------------------------------------------------------------------------------------
def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled uniform noise: a smooth (size, size) field in [0, 1]."""
    grid = rng.random((cells + 1, cells + 1))  # (c+1, c+1)
    pos = np.linspace(0, cells, size, dtype=np.float64)  # (S,)
    i0 = np.minimum(np.floor(pos).astype(int), cells - 1)
    t = pos - i0  # (S,)
    rows = grid[i0] * (1 - t)[:, None] + grid[i0 + 1] * t[:, None]  # (S, c+1)
    return rows[:, i0] * (1 - t)[None] + rows[:, i0 + 1] * t[None]  # (S, S)


def segment_distance(xx: np.ndarray, yy: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Distance of every pixel to the segment p0-p1 (x, y)."""
    d = p1 - p0
    t = ((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1]) / max(float(d @ d), 1e-6)
    t = np.clip(t, 0, 1)
    return np.hypot(xx - (p0[0] + t * d[0]), yy - (p0[1] + t * d[1]))


def shape_mask(name: str, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Boolean mask of a class's shape in object coordinates ``(u, v)`` (pixels, rotated)."""
    r = np.hypot(u, v)
    if name == 'disc':
        return r <= radius
    if name == 'ring':
        return (r <= radius) & (r >= 0.55 * radius)
    if name == 'square':
        return np.maximum(np.abs(u), np.abs(v)) <= 0.78 * radius
    if name in ('triangle', 'hexagon'):
        sides, apothem = (3, 0.5) if name == 'triangle' else (6, 0.87)
        angles = -np.pi / 2 + 2 * np.pi * np.arange(sides) / sides
        inside = np.ones(u.shape, dtype=bool)
        for a in angles:  # one half-plane per side
            inside &= u * np.cos(a) + v * np.sin(a) <= apothem * radius
        return inside
    if name == 'star':
        phi = np.arctan2(v, u)
        return r <= radius * (0.4 + 0.6 * np.abs(np.cos(2.5 * phi))**3)
    if name == 'cross':
        w = 0.3 * radius
        return ((np.abs(u) <= w) & (np.abs(v) <= radius)) | ((np.abs(v) <= w) & (np.abs(u) <= radius))
    if name == 'crescent':
        return (r <= radius) & (np.hypot(u - 0.45 * radius, v) > 0.8 * radius)
    raise ValueError(f'no shape for class {name!r}')


def texture_tone(texture: str, u: np.ndarray, v: np.ndarray, period: float,
                 radius: float) -> np.ndarray:
    """Mix weight of the main colour (1) vs the second tone (0) of a texture, (H, W) float."""
    if texture == 'stripes':
        return (np.mod(u / period, 1.0) < 0.5).astype(np.float32)
    if texture == 'checks':
        return ((np.floor(u / period) + np.floor(v / period)) % 2 == 0).astype(np.float32)
    if texture == 'dots':
        du = np.mod(u / period, 1.0) - 0.5
        dv = np.mod(v / period, 1.0) - 0.5
        return (du * du + dv * dv > 0.32**2).astype(np.float32)
    if texture == 'solid':  # shaded: brighter in the middle
        return np.clip(0.78 + 0.22 * (1 - np.hypot(u, v) / radius), 0, 1).astype(np.float32)
    raise ValueError(f'no texture {texture!r}')


def draw_background(rng: np.random.Generator, size: int, xx: np.ndarray,
                    yy: np.ndarray) -> np.ndarray:
    """A cluttered textured background, (S, S, 3) float32 RGB."""
    c1, c2 = BACKGROUND_COLOURS[rng.choice(len(BACKGROUND_COLOURS), 2, replace=False)]
    c1 = c1 + rng.uniform(-15, 15, 3)
    c2 = c2 + rng.uniform(-15, 15, 3)
    field = smooth_noise(rng, size, int(rng.integers(2, 6)))[..., None]  # (S, S, 1)
    img = c1 * (1 - field) + c2 * field  # (S, S, 3)
    detail = smooth_noise(rng, size, int(rng.integers(10, 20)))[..., None] - 0.5
    img = img + 30 * detail
    if rng.random() < 0.35:  # faint pattern in background colours
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(9, 18) * size / 128
        coord = xx * np.cos(angle) + yy * np.sin(angle)
        img = img + rng.uniform(8, 16) * (np.mod(coord / period, 1.0) < 0.5)[..., None]
    for _ in range(int(rng.integers(1, 4))):  # irregular blobs
        colour = (BACKGROUND_COLOURS[rng.integers(len(BACKGROUND_COLOURS))] if rng.random() < 0.6
                  else OBJECT_COLOURS[rng.integers(len(OBJECT_COLOURS))] * rng.uniform(0.6, 0.9))
        cx, cy = rng.uniform(0, size, 2)
        a, b = rng.uniform(0.05, 0.16, 2) * size
        wobble = smooth_noise(rng, size, 6) - 0.5
        blob = ((xx - cx) / a)**2 + ((yy - cy) / b)**2 < 1 + 1.5 * wobble
        img[blob] = colour + rng.normal(0, 6, 3)
    for _ in range(int(rng.integers(2, 7))):  # lines
        colour = (BACKGROUND_COLOURS[rng.integers(len(BACKGROUND_COLOURS))] * 0.7 if rng.random()
                  < 0.6 else OBJECT_COLOURS[rng.integers(len(OBJECT_COLOURS))])
        p0, p1 = rng.uniform(-0.1, 1.1, (2, 2)) * size
        line = segment_distance(xx, yy, p0, p1) <= rng.uniform(0.6, 1.8) * size / 128
        img[line] = colour
    return img


def pick_classes(rng: np.random.Generator) -> List[str]:
    """1-4 object classes; often built around a co-occurring pair."""
    objects = DEMO_CLASSES[1:]
    num = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.35, 0.2, 0.15]))
    names = []
    if num >= 2 and rng.random() < 0.5:
        names += list(DEMO_COOCCURRING[rng.integers(len(DEMO_COOCCURRING))])
    while len(names) < num:
        names.append(objects[rng.integers(len(objects))])
    return [names[i] for i in rng.permutation(len(names))]


def draw_image(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, np.ndarray, List[dict]]:
    """One demo image.

    Returns:
        tuple: ``img`` (S, S, 3) uint8 RGB, ``label`` (S, S) uint8 class indices, and ``objects``
        (drawing order): ``dict(name, bbox=(xmin, ymin, xmax, ymax) 1-based inclusive,
        truncated)`` of the visible part of each object.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)  # (S, S)
    img = draw_background(rng, size, xx, yy)
    names = pick_classes(rng)
    min_visible = 40 * (size / 128)**2
    for attempt in range(200):
        if attempt and attempt % 50 == 0 and len(names) > 1:
            names = names[:-1]  # too crowded to keep every object visible: drop one
        layers = []
        label = np.zeros((size, size), dtype=np.uint8)
        owner = np.full((size, size), -1, dtype=np.int64)
        for k, name in enumerate(names):
            radius = rng.uniform(0.10, 0.26) * size
            cx, cy = rng.uniform(0.12, 0.88, 2) * size
            theta = rng.uniform(0, 2 * np.pi)
            u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
            v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
            mask = shape_mask(name, u, v, radius)
            layers.append((name, u, v, radius, mask))
            owner[mask] = k
        visible = np.bincount(owner[owner >= 0], minlength=len(names))
        areas = np.array([layer[-1].sum() for layer in layers])
        if np.all((visible >= 0.45 * areas) & (visible >= min_visible)):
            break
    else:
        raise RuntimeError(f'could not place {names} visibly on a {size} px image; use a larger --size')
    objects = []
    for k, (name, u, v, radius, mask) in enumerate(layers):
        main = OBJECT_COLOURS[rng.integers(len(OBJECT_COLOURS))] + rng.uniform(-12, 12, 3)
        second = main * rng.uniform(0.25, 0.45)
        period = rng.uniform(3.5, 6.0) * size / 128
        tone = texture_tone(DEMO_TEXTURES[name], u, v, period, radius)[..., None]  # (S, S, 1)
        paint = second + (main - second) * tone  # (S, S, 3)
        img[mask] = paint[mask]
        label[mask] = DEMO_CLASSES.index(name)
        mine = owner == k
        ys, xs = np.nonzero(mine)
        objects.append(
            dict(
                name=name,
                bbox=(int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1, int(ys.max()) + 1),
                truncated=int(xs.min() == 0 or ys.min() == 0 or xs.max() == size - 1
                              or ys.max() == size - 1)))
    img = img + rng.normal(0, 4, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), label, objects


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


def _write_split(out_dir: str, split: str, count: int, seed: int, size: int,
                 progress: Optional[ProgressBar]) -> List[str]:
    """Images, masks and XML of one split, and its image set file; returns the image ids."""
    ids = [f'{split}_{i:05d}' for i in range(count)]
    for i, image_id in enumerate(ids):
        rng = np.random.default_rng([seed, SPLIT_CODES[split], i])
        img, label, objects = draw_image(rng, size)
        Image.fromarray(img, 'RGB').save(
            osp.join(out_dir, 'JPEGImages', image_id + '.jpg'),
            format='JPEG', quality=JPEG_QUALITY, subsampling=0, optimize=False)
        write_palette_png(osp.join(out_dir, 'SegmentationClass', image_id + '.png'), label)
        write_voc_xml(osp.join(out_dir, 'Annotations', image_id + '.xml'), image_id, size, objects)
        if progress is not None:
            progress.update()
    with open(osp.join(out_dir, 'ImageSets', 'Segmentation', split + '.txt'), 'w', newline='\n') as f:
        f.writelines(image_id + '\n' for image_id in ids)
    return ids


def _write_label_files(out_dir: str, splits: List[str]) -> Dict:
    """``ImageLabels/<split>.txt`` from the XML by the VOC converter; returns its summaries."""
    summaries = {}
    for split in splits:
        summary = voc_xml_to_labels(
            out_dir,
            f'ImageLabels/{split}.txt',
            classes=DEMO_CLASSES,
            split_file=f'ImageSets/Segmentation/{split}.txt',
            show_progress=False)
        summaries[split] = {k: v for k, v in summary.items() if k != 'out_file'}
        summaries[split]['label_file'] = f'ImageLabels/{split}.txt'
    return summaries


def make_demo_data(out_dir: str,
                   seed: int = 0,
                   num_train: int = 300,
                   num_val: int = 100,
                   size: int = 128,
                   overwrite: bool = False,
                   show_progress: bool = True) -> Dict:
    """Write the demo dataset (see the module docstring for the layout).

    Args:
        out_dir (str): Dataset root to write.
        seed (int): Random seed; the same arguments give byte-identical files.
        num_train (int): Train images. Defaults to 300.
        num_val (int): Val images. Defaults to 100.
        size (int): Image side in pixels. Defaults to 128.
        overwrite (bool): Replace the demo files of a non-empty ``out_dir``. Defaults to False.
        show_progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: ``demo_info.json``'s content (classes, counts, per-split label summaries).

    Raises:
        ValueError: for a ``size`` below 32 px.
        FileExistsError: for a non-empty ``out_dir`` without ``overwrite``.
    """
    if size < 32:
        raise ValueError(f'--size {size} is too small for the shapes and textures; use >= 32')
    prepare_out_dir(out_dir, overwrite)
    splits = dict(train=num_train, val=num_val)
    progress = ProgressBar(num_train + num_val) if show_progress else None
    ids = [i for split, count in splits.items()
           for i in _write_split(out_dir, split, count, seed, size, progress)]
    if progress is not None:
        print()
    with open(osp.join(out_dir, 'ImageSets', 'Segmentation', 'trainval.txt'), 'w',
              newline='\n') as f:
        f.writelines(image_id + '\n' for image_id in ids)
    info = dict(
        classes=list(DEMO_CLASSES),
        textures=DEMO_TEXTURES,
        cooccurring=[list(pair) for pair in DEMO_COOCCURRING],
        seed=seed,
        size=size,
        num_train=num_train,
        num_val=num_val,
        jpeg_quality=JPEG_QUALITY,
        splits=_write_label_files(out_dir, list(splits)))
    with open(osp.join(out_dir, 'demo_info.json'), 'w', newline='\n') as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write('\n')
    return info
