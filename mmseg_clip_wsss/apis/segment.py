"""Segment image files or folders with any class names (the library of ``tools/segment.py``).

Per image ``<stem>`` in ``--out-dir``: ``<stem>.png`` (palette PNG, value ``k`` = class ``k`` of the
list, 0 = background), ``<stem>_overlay.png`` (the image with the classes painted over it and a legend
with each present class's colour and pixel share) and ``<stem>.json`` (``classes``: every class's
pixel share in %, ``size``: [H, W], ``image``: the path), each written atomically, the JSON last: a
stem with its JSON is finished. A file that cannot be read, or an image the model fails on, is named
on stderr with the reason and skipped; the others are still segmented.
"""
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.utils import ProgressBar
from PIL import Image, ImageDraw, ImageFont

from mmseg_clip_wsss.datasets.atomic_files import write_json_atomically
from mmseg_clip_wsss.datasets.palette import save_png_atomically, voc_palette, write_palette_png
from .inferencer import WSSSInferencer, load_rgb

__all__ = ['IMAGE_SUFFIXES', 'SETTINGS_FILE', 'list_images', 'class_shares', 'render_overlay',
           'check_out_dir', 'segment_images']

#: Written into ``--out-dir`` before any image: the settings its outputs are made with (a run with
#: the same settings goes on from the finished images; other settings are refused).
SETTINGS_FILE = '.segment_settings.json'

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.gif', '.ppm', '.pgm')


def list_images(paths: Sequence[str]) -> List[str]:
    """Files named in ``paths`` and the image files (by suffix, sorted) under the folders in it.

    Raises:
        FileNotFoundError: a path that does not exist, or no image at all.
    """
    files = []
    for path in paths:
        if osp.isdir(path):
            for root, _, names in sorted(os.walk(path)):
                files += [osp.join(root, n) for n in sorted(names) if n.lower().endswith(IMAGE_SUFFIXES)]
        elif osp.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f'segment: {path} does not exist.')
    if not files:
        raise FileNotFoundError(f'segment: no image files ({", ".join(IMAGE_SUFFIXES)}) in {list(paths)}.')
    return files


def class_shares(label: np.ndarray, classes: Sequence[str]) -> Dict[str, float]:
    """Pixel share (%) of every class in an (H, W) label map, in class order."""
    counts = np.bincount(label.ravel(), minlength=len(classes))[:len(classes)]
    return {name: round(100.0 * float(c) / label.size, 3) for name, c in zip(classes, counts)}


def render_overlay(rgb: np.ndarray, label: np.ndarray, classes: Sequence[str], palette: np.ndarray,
                   alpha: float = 0.5, min_side: int = 320) -> Image.Image:
    """The image with class colours blended over it (background left bare) and a legend beside it.

    Args:
        rgb (np.ndarray): (H, W, 3) uint8.
        label (np.ndarray): (H, W) class indices into ``classes``.
        palette (np.ndarray): (K, 3) uint8 colours.
        min_side (int): Small images are enlarged (nearest) to this shorter side to be legible.

    Returns:
        PIL.Image.Image: RGB picture, legend to the right of the image.
    """
    colour = palette[label].astype(np.float32)
    blend = np.where((label > 0)[..., None], (1 - alpha) * rgb + alpha * colour, rgb)
    picture = Image.fromarray(np.rint(blend).astype(np.uint8))
    scale = max(1, int(np.ceil(min_side / min(label.shape))))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    shares = class_shares(label, classes)
    present = [k for k, name in enumerate(classes) if shares[name] > 0]
    font = ImageFont.load_default()
    row, width = 18, 200
    canvas = Image.new('RGB', (picture.width + width, max(picture.height, row * (len(present) + 1))), 'white')
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, k in enumerate(present):
        x, y = picture.width + 8, 6 + i * row
        draw.rectangle([x, y, x + 12, y + 12], fill=tuple(int(c) for c in palette[k]), outline='black')
        draw.text((x + 18, y), f'{classes[k]}  {shares[classes[k]]:.1f}%', fill='black', font=font)
    return canvas


def check_out_dir(out_dir: str, settings: Dict, overwrite: bool = False) -> bool:
    """Check ``out_dir`` against ``settings`` before any work (:func:`segment_images` records them).

    Args:
        out_dir (str): The output folder.
        settings (dict): What the outputs depend on (config, checkpoint, classes, options), as JSON.
        overwrite (bool): Replace outputs of other settings. Defaults to False.

    Returns:
        bool: True when ``out_dir`` holds outputs of the same ``settings``: the finished images are
        kept (:func:`segment_images` with ``resume=True``).

    Raises:
        FileExistsError: ``out_dir`` is a file; or it holds outputs of other settings (naming those
            that differ) or files of no recorded settings, and ``overwrite`` is False.
    """
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise FileExistsError(f'--out-dir {out_dir} is a file, not a folder: give a folder (it is made if '
                              'missing)')
    record = osp.join(out_dir, SETTINGS_FILE)
    recorded = None
    if osp.isfile(record):
        with open(record) as f:
            recorded = json.load(f)
    resume = recorded == settings and not overwrite
    if recorded is not None and not resume and not overwrite:
        differ = ', '.join(f'{k}: {recorded.get(k)!r} there, {settings.get(k)!r} now'
                           for k in settings if recorded.get(k) != settings.get(k))
        raise FileExistsError(f'--out-dir {out_dir} holds the outputs of other settings ({differ}); pass '
                              '--overwrite to replace them, or give another --out-dir')
    if recorded is None and not overwrite and osp.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f'--out-dir {out_dir} is a folder with files in it (not of tools/segment.py '
                              'with these settings); pass --overwrite to write into it, or give another '
                              '--out-dir')
    return resume


def _finished(path: str, out_dir: str, stem: str) -> bool:
    """Whether ``stem``'s JSON (written last) in ``out_dir`` is that of image ``path``."""
    done = osp.join(out_dir, f'{stem}.json')
    if not osp.isfile(done):
        return False
    with open(done) as f:
        return json.load(f).get('image') == osp.abspath(path)


def _output_stem(path: str, taken: set) -> str:
    stem, n = osp.splitext(osp.basename(path))[0], 1
    unique = stem
    while unique in taken:
        unique, n = f'{stem}_{n}', n + 1
    taken.add(unique)
    return unique


def segment_images(inferencer: WSSSInferencer, paths: Sequence[str], out_dir: str,
                   show_progress: bool = True, resume: bool = False,
                   settings: Optional[Dict] = None) -> Dict:
    """Segment ``paths`` and write their label PNG, overlay and JSON into ``out_dir``.

    Args:
        resume (bool): Keep the outputs of an image whose JSON is already there (made with the same
            settings: :func:`check_out_dir`). Defaults to False.
        settings (dict, optional): Recorded in ``out_dir/.segment_settings.json`` before any image.

    Returns:
        dict: ``written`` (``{image path: output stem}``, the kept ones too) and ``skipped``
        (``{image path: reason}``).
    """
    os.makedirs(out_dir, exist_ok=True)
    if settings is not None:
        write_json_atomically(osp.join(out_dir, SETTINGS_FILE), settings)
    classes = inferencer.classes
    palette = inferencer.model.dataset_meta.get('palette')  # a checkpoint may carry none
    palette = np.asarray(voc_palette(len(classes)) if palette is None else palette, dtype=np.uint8)
    written, skipped, taken = {}, {}, set()
    inferencer.show_progress = False  # mmengine's "Inference" bar of every image: this bar is the only one
    bar = ProgressBar(len(paths)) if show_progress and len(paths) > 1 else None
    for path in paths:
        if resume and _finished(path, out_dir, _output_stem(path, set(taken))):
            written[path] = _output_stem(path, taken)
        else:
            _segment_one(inferencer, path, out_dir, classes, palette, taken, written, skipped)
        if bar is not None:
            bar.update()
    return dict(written=written, skipped=skipped)


def _segment_one(inferencer: WSSSInferencer, path: str, out_dir: str, classes: Sequence[str],
                 palette: np.ndarray, taken: set, written: Dict, skipped: Dict) -> None:
    """Segment and write one image into ``written``, or name it on stderr into ``skipped``."""
    try:
        rgb = load_rgb(path)
    except (OSError, ValueError) as err:
        skipped[path] = f'{type(err).__name__}: {err}'
        print(f'\nsegment: cannot read {path} ({skipped[path]}); skipped', file=sys.stderr, flush=True)
    else:
        try:
            label = _predict_label(inferencer, rgb)
        except (RuntimeError, ValueError) as err:  # one image the model fails on: the others go on
            skipped[path] = f'{type(err).__name__}: {err}'
            print(f'\nsegment: the model failed on {path} ({skipped[path]}); skipped, the other '
                  'images are still segmented', file=sys.stderr, flush=True)
        else:
            written[path] = _write_outputs(path, rgb, label, classes, palette, out_dir, taken)


def _predict_label(inferencer: WSSSInferencer, rgb: np.ndarray) -> np.ndarray:
    """The (H, W) uint8 class map of an (H, W, 3) RGB image."""
    sample = inferencer(np.ascontiguousarray(rgb[..., ::-1]), return_datasamples=True)
    return sample.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)


def _write_outputs(path: str, rgb: np.ndarray, label: np.ndarray, classes: Sequence[str],
                   palette: np.ndarray, out_dir: str, taken: set) -> str:
    """Write the label PNG, the overlay and the JSON (last: its stem is finished) of ``path``;
    returns the output stem."""
    stem = _output_stem(path, taken)
    write_palette_png(osp.join(out_dir, f'{stem}.png'), label, palette)
    save_png_atomically(osp.join(out_dir, f'{stem}_overlay.png'), render_overlay(rgb, label, classes, palette))
    write_json_atomically(osp.join(out_dir, f'{stem}.json'),
                          dict(image=osp.abspath(path), size=list(label.shape),
                               classes=class_shares(label, classes)))
    return stem
