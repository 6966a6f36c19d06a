"""The demo's training-free rows: pseudo masks of the demo train split from the demo CLIP alone.

Two rows: ``training_free_*``, the dense zero-shot map of MaskCLIP (:data:`TRAINING_FREE_CONFIG`, the
best training-free path on the demo CLIP), and ``training_free_clip_es_*``, CLIP-ES's Grad-CAM with
class-aware affinity (:data:`CLIP_ES_CONFIG`).

``python -m mmseg_clip_wsss.cli.training_free [--data-root data/demo] [--clip data/demo/clip/clip.pt]
[--out-dir work_dirs/demo/training_free] [--row row.json] [--config CONFIG] [--split train]
[--key training_free]`` prints
the row as JSON (and writes it); :func:`training_free_row` returns it. ``--config`` takes any
training-free config of the demo CLIP, e.g. a dense zero-shot mode
(``configs/dense_clip/dense-clip-maskclip_demo-clip_demo.py``).
"""
import os.path as osp
from typing import Dict, Optional

import torch

from mmseg_clip_wsss.apis.preflight import check_config_classes, read_config
from mmseg_clip_wsss.cam.protocol import CAMProtocol
from mmseg_clip_wsss.cam.run import make_pseudo_masks
from mmseg_clip_wsss.datasets.data_root import check_data_root
from .runner import CLIP_ES_CONFIG, REPO, TRAINING_FREE_CONFIG

__all__ = ['TRAINING_FREE_CONFIG', 'CLIP_ES_CONFIG', 'training_free_row', 'config_clip', 'row_key']


def config_clip(config: str, data_root: str) -> str:
    """The CLIP checkpoint a demo config loads, under ``data_root``: its ``model.backbone.pretrained``
    (``data/demo/clip/clip.pt``, or ``data/demo/clip_vit/clip.pt`` for the ViT demo CLIP) with the
    ``data/demo`` prefix replaced by ``data_root``; another path as it is."""
    pretrained = read_config(osp.join(REPO, config)).model.backbone.get('pretrained') or 'data/demo/clip/clip.pt'
    if pretrained.startswith('data/demo/'):
        return osp.join(data_root, osp.relpath(pretrained, 'data/demo'))
    return pretrained


def row_key(key: str, split: str) -> str:
    """The prefix of a row's keys: ``key`` for the train split, ``<key>_<split>`` for another one
    (``training_free_val``), so that a row of val masks is never read as the train figures."""
    return key if split == 'train' else f'{key}_{split}'


def training_free_row(data_root: str = 'data/demo',
                      clip_checkpoint: Optional[str] = None,
                      out_dir: str = 'work_dirs/demo/training_free',
                      threads: Optional[int] = None,
                      config: str = TRAINING_FREE_CONFIG,
                      split: str = 'train',
                      key: str = 'training_free') -> Dict:
    """Write training-free pseudo masks for the demo train split (no training, no checkpoint of ours) and
    score them against the ground truth, as ``tools/make_pseudo_masks.py CONFIG --eval`` does.

    Masks are always rewritten, so that the time is the time of making them.

    Args:
        data_root (str): The demo data. Defaults to ``'data/demo'``.
        clip_checkpoint (str, optional): The CLIP (open_clip state dict); None: the config's own
            (:func:`config_clip`, ``data/demo/clip/clip.pt`` under ``data_root`` for the demo CLIP).
        out_dir (str): Masks, ``metrics.json`` and ``protocol.json``. Defaults to
            ``'work_dirs/demo/training_free'``.
        threads (int, optional): torch CPU threads (None: torch's default).
        config (str): The training-free config (relative to the repository or absolute). Defaults to
            :data:`TRAINING_FREE_CONFIG` (MaskCLIP's dense map); :data:`CLIP_ES_CONFIG`: CLIP-ES.
        split (str): The split whose masks are made and scored (``ImageSets/Segmentation/<split>.txt``
            and ``ImageLabels/<split>.txt``). Defaults to ``'train'``; ``'val'`` to choose settings
            without looking at the scored split.
        key (str): Prefix of the row's keys, followed by ``_<split>`` for a split other than train
            (:func:`row_key`). Defaults to ``'training_free'``.

    Returns:
        dict: ``<key>_miou`` (%), ``<key>_seconds_per_image`` (wall time of the masks, writing
        included, over the number of images) and ``<key>_images``.

    Raises:
        MissingDatasetFileError: ``data_root`` lacks a file or folder of the VOC layout the split needs
            (:func:`~mmseg_clip_wsss.datasets.data_root.check_data_root`), before any work.
        FileNotFoundError: the CLIP checkpoint does not exist.
    """
    check_data_root(data_root, splits=(split, ), label_splits=(split, ))
    clip_checkpoint = clip_checkpoint or config_clip(config, data_root)
    if not osp.isfile(clip_checkpoint):
        raise FileNotFoundError(f'training_free_row: the CLIP {clip_checkpoint} does not exist; make it as '
                                f'the header of {config} says (the demo CLIP: `python tools/pretrain_clip.py '
                                f'--data-root {data_root}`), or give it with --clip.')
    cfg = read_config(osp.join(REPO, config))
    cfg.merge_from_dict({'cam_dataloader.dataset.data_root': data_root,
                         'cam_dataloader.dataset.ann_file': f'ImageSets/Segmentation/{split}.txt',
                         'cam_dataloader.dataset.label_file': f'ImageLabels/{split}.txt',
                         'model.backbone.pretrained': clip_checkpoint,
                         'model.text_encoder.pretrained': clip_checkpoint})
    if threads:
        torch.set_num_threads(threads)
    check_config_classes(cfg, ('cam_dataloader', ))
    result = make_pseudo_masks(cfg, None, out_dir, CAMProtocol.from_cfg(cfg.get('cam_cfg')), evaluate=True,
                               overwrite=True, show_progress=False, split_name=split)
    images = result['written']
    key = row_key(key, split)
    return {f'{key}_miou': round(float(result['metrics']['mIoU']), 2),
            f'{key}_seconds_per_image': round(result['seconds'] / max(images, 1), 4),
            f'{key}_images': images}
