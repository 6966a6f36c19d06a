"""Open vocabulary with no training at all: the dense zero-shot map of the demo CLIP, asked for every
name of the ``openvocab`` split (labelled and unseen classes alike).

:func:`dense_open_vocab_figures` builds a training-free config (:class:`TrainingFreeDenseCLIP`, any
dense mode) with the split's class names, segments every image from the softmax over all names + the
background words (``softmax_over='all'``: the classes are not known), and scores the unseen and the
seen classes as :func:`~.open_vocab.open_vocab_figures` does for a trained model; the same with the
image's true labels (``*_true_labels``: the softmax over them) separates drawing from finding.

``python -m mmseg_clip_wsss.cli.dense_open_vocab CONFIG [--data-root data/demo] [--clip CLIP]
[--dense-mode MODE] [--out figures.json]`` prints them as JSON.
"""
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.registry import DefaultScope

from mmseg_clip_wsss.apis.inferencer import load_rgb
from mmseg_clip_wsss.apis.preflight import read_config
from mmseg_clip_wsss.cam.evaluate import compute_miou, mean_class_iou, read_label_png
from mmseg_clip_wsss.cam.protocol import CAMProtocol
from mmseg_clip_wsss.cam.pseudo_mask import cams_to_pseudo_mask
from mmseg_clip_wsss.datasets.data_root import check_data_root
from mmseg_clip_wsss.datasets.synthetic.world import load_world, read_demo_info
from mmseg_clip_wsss.models.data_preprocessor import normalise_images
from mmseg_clip_wsss.registry import MODELS

__all__ = ['dense_open_vocab_figures', 'open_vocab_class_words', 'build_dense_model', 'dense_name_scores',
           'classes_in']


def open_vocab_class_words(data_root: str) -> List[List[str]]:
    """``['background']`` + the words (name and synonyms) of every class of the ``openvocab`` split,
    in the order of ``demo_info.json['open_vocab_classes']``.

    Raises:
        KeyError: ``demo_info.json`` has no ``open_vocab_classes`` (data without the split).
    """
    info = read_demo_info(data_root)
    if 'open_vocab_classes' not in info:
        raise KeyError(f'{data_root}/demo_info.json has no open_vocab_classes: write the data with '
                       'num_openvocab > 0 (tools/make_demo_data.py --num-openvocab 100).')
    world = load_world(data_root)
    words = {c.name: list(c.words) for c in world.classes + world.unseen}
    return [['background']] + [words[name] for name in info['open_vocab_classes'][1:]]


def build_dense_model(config: str, clip_checkpoint: str, class_words: Sequence, dense_mode: Optional[str]):
    """A :class:`TrainingFreeDenseCLIP` of ``config`` over ``class_words`` (rows in that order) and its
    CAM protocol.

    Raises:
        ValueError: the config builds another model, or its (or the given) dense mode is ``'plain'``.
    """
    cfg = read_config(config)
    cfg.model.backbone.pretrained = cfg.model.text_encoder.pretrained = clip_checkpoint
    cfg.model.class_names = [w if len(w) > 1 else w[0] for w in class_words]
    if dense_mode is not None:
        if cfg.model.type != 'TrainingFreeDenseCLIP':
            raise ValueError(f'dense_open_vocab_figures: {config} builds a {cfg.model.type}, which has '
                             'no dense mode; give a TrainingFreeDenseCLIP config '
                             '(configs/dense_clip/*_demo.py).')
        cfg.model.dense_mode = dense_mode
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model).eval()
    if getattr(model, 'dense_mode', 'plain') == 'plain':
        raise ValueError(f'dense_open_vocab_figures: {config} makes Grad-CAMs (dense_mode plain); give a '
                         "dense mode's config (configs/dense_clip/*_demo.py) or --dense-mode.")
    return model, CAMProtocol.from_cfg(cfg.get('cam_cfg'))


def dense_name_scores(model, rgb: np.ndarray) -> torch.Tensor:
    """(K, H, W) dense zero-shot scores of every class of ``model`` on one (H, W, 3) RGB image: each
    name's probability in the softmax over all names + the background words (0 where a background word
    wins), the map :func:`dense_open_vocab_figures` segments from."""
    model.softmax_over = 'all'
    x = normalise_images(torch.from_numpy(np.array(rgb))[None], model.data_preprocessor)
    return model.compute_cams(x, torch.ones(1, model.num_classes))[0].cpu()


def _segment(model, protocol: CAMProtocol, rgb: np.ndarray, labels: torch.Tensor,
             softmax_over: str) -> np.ndarray:
    """(H, W) labels of one RGB image: the class maps over ``labels`` (softmax over ``softmax_over``),
    background by the protocol's threshold (one scale, no refinement)."""
    model.softmax_over = softmax_over
    x = normalise_images(torch.from_numpy(np.array(rgb))[None], model.data_preprocessor)
    cams = model.compute_cams(x, labels[None])
    mask = cams_to_pseudo_mask(cams, labels[None], bg_mode=protocol.bg_mode,
                               bg_threshold=protocol.bg_threshold, bg_power=protocol.bg_power)
    return mask[0].cpu().numpy()


@torch.no_grad()
def dense_open_vocab_figures(config: str, data_root: str, clip_checkpoint: str, split: str = 'openvocab',
                             dense_mode: Optional[str] = None) -> Dict:
    """Open-vocabulary mIoU of a dense zero-shot mode, no training and no labels.

    Args:
        config (str): A :class:`TrainingFreeDenseCLIP` config of the CLIP (its ``cam_cfg`` gives the
            background threshold).
        data_root (str): Generated dataset with the ``openvocab`` split.
        clip_checkpoint (str): The CLIP both towers load.
        split (str): Split with open-vocabulary GT masks. Defaults to ``'openvocab'``.
        dense_mode (str, optional): Override the config's dense mode. Defaults to None.

    Returns:
        dict: ``dense_open_vocab_unseen_miou``, ``dense_open_vocab_seen_miou`` (background + labelled
        classes), the same ``*_true_labels``, ``dense_open_vocab_per_class_iou``, ``dense_mode``,
        ``dense_open_vocab_seconds_per_image``. A split whose ground truth holds no unseen class (e.g.
        ``train``) gives None for the unseen figures (not the 0.0 of unseen names predicted there) and
        ``dense_open_vocab_note`` saying so.

    Raises:
        MissingDatasetFileError: ``data_root`` lacks a file or folder of the VOC layout it reads
            (:func:`~mmseg_clip_wsss.datasets.data_root.check_data_root`), before the model is built.
        ValueError: the config's mode is ``'plain'`` (Grad-CAM needs the labels it explains).
    """
    start = time.time()
    check_data_root(data_root, splits=(split, ), demo_info=True)
    words = open_vocab_class_words(data_root)
    names = [w[0] for w in words]
    seen = read_demo_info(data_root)['classes']
    model, protocol = build_dense_model(config, clip_checkpoint, words, dense_mode)
    with open(osp.join(data_root, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
        ids = [line.strip() for line in f if line.strip()]
    found, told, gts = [], [], []
    for i in ids:
        rgb = load_rgb(osp.join(data_root, 'JPEGImages', f'{i}.jpg'))
        gts.append(read_label_png(osp.join(data_root, 'SegmentationClass', f'{i}.png')))
        true = torch.zeros(len(names))
        true[[int(k) for k in np.unique(gts[-1]) if k < len(names)]] = 1
        true[0] = 1
        found.append(_segment(model, protocol, rgb, torch.ones(len(names)), 'all'))
        told.append(_segment(model, protocol, rgb, true, 'labels'))
    iou = compute_miou(found, gts, names, log_table=False)['per_class_iou']
    iou_told = compute_miou(told, gts, names, log_table=False)['per_class_iou']
    unseen = [n for n in names if n not in seen]
    unseen_here = unseen if classes_in(gts, names) & set(unseen) else []  # None: no unseen class in the GT
    result = dict(dense_mode=model.dense_mode,
                  dense_open_vocab_unseen_miou=mean_class_iou(iou, unseen_here),
                  dense_open_vocab_seen_miou=mean_class_iou(iou, seen),
                  dense_open_vocab_unseen_miou_true_labels=mean_class_iou(iou_told, unseen_here),
                  dense_open_vocab_seen_miou_true_labels=mean_class_iou(iou_told, seen),
                  dense_open_vocab_per_class_iou=iou,
                  dense_open_vocab_seconds_per_image=round((time.time() - start) / max(len(ids), 1), 4))
    if not unseen_here:
        result['dense_open_vocab_note'] = (f'no unseen class in split {split!r}: the unseen mIoU is None (the '
                                           'openvocab split holds them)')
    return result


def classes_in(gts: Sequence[np.ndarray], names: Sequence[str]) -> set:
    """The names of the classes some (H, W) ground-truth map of ``gts`` holds (255 and other values
    past ``names`` left out)."""
    values = set()
    for gt in gts:
        values.update(int(v) for v in np.unique(gt))
    return {names[v] for v in values if v < len(names)}
