"""Open vocabulary from a trained stage-1 head and a dense zero-shot map together
(:class:`~mmseg_clip_wsss.models.OpenVocabCombiner`): the head scores the names it was trained on, the
dense map of the CLIP the names it never saw, each through a sigmoid fitted on a split other than the
scored one.

A combination config (``configs/open_vocab/combined-maskclip_demo-clip_demo.py``) names the dense
source and the fit split::

    dense_config = '{{ fileDirname }}/../dense_clip/dense-clip-maskclip_demo-clip_demo.py'  # its dense model
    fit_split = 'val'              # GT masks of the trained classes; never the scored split
    combiner = dict(type='OpenVocabCombiner', dense_mode='maskclip', max_fit_pixels=200000)

``python -m mmseg_clip_wsss.cli.open_vocab CONFIG CHECKPOINT --combine COMBINE_CONFIG
[--calibration FILE]`` adds the ``open_vocab_combined_*`` figures to the open-vocabulary ones (the
calibration is fitted once and written to FILE, then read from it).
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config

from mmseg_clip_wsss.apis.inferencer import WSSSInferencer, load_rgb
from mmseg_clip_wsss.apis.preflight import read_config
from mmseg_clip_wsss.cam.evaluate import compute_miou, mean_class_iou, read_label_png
from mmseg_clip_wsss.datasets.synthetic.world import read_demo_info
from mmseg_clip_wsss.registry import MODELS
from .dense_open_vocab import build_dense_model, dense_name_scores, open_vocab_class_words

__all__ = ['head_predictions', 'combined_open_vocab_figures', 'read_split', 'load_combination_config']

_KEYS = ('dense_config', 'fit_split', 'combiner')


def read_split(data_root: str, split: str) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """RGB images and GT label maps of ``ImageSets/Segmentation/<split>.txt``."""
    with open(osp.join(data_root, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
        ids = [line.strip() for line in f if line.strip()]
    images = [load_rgb(osp.join(data_root, 'JPEGImages', f'{i}.jpg')) for i in ids]
    gts = [read_label_png(osp.join(data_root, 'SegmentationClass', f'{i}.png')) for i in ids]
    return images, gts


def head_predictions(inferencer: WSSSInferencer, images: Sequence[np.ndarray]
                     ) -> Tuple[List[np.ndarray], List[torch.Tensor]]:
    """The model's (H, W) label maps and (K, H, W) score maps (``seg_logits``: a stage-1 model's CAMs
    with the constant background row) of RGB images, over the inferencer's classes."""
    preds, scores = [], []
    for rgb in images:
        data = next(inferencer.preprocess([np.ascontiguousarray(rgb[..., ::-1])]))
        with torch.no_grad():
            sample = inferencer.model.test_step(data)[0]
        preds.append(sample.pred_sem_seg.data[0].cpu().numpy())
        scores.append(sample.seg_logits.data.float().cpu())
    return preds, scores


def load_combination_config(path: str) -> Config:
    """A combination config with ``dense_config``, ``fit_split`` and ``combiner``.

    Raises:
        MissingAssetError: no such file (a FileNotFoundError). ValueError: a key is missing (named with the fix).
    """
    cfg = read_config(path, 'combination config', 'configs/open_vocab/combined-maskclip_demo-clip_demo.py')
    missing = [k for k in _KEYS if k not in cfg]
    if missing:
        raise ValueError(f'{path} lacks {missing}: a combination config sets dense_config (a '
                         'TrainingFreeDenseCLIP config), fit_split and '
                         "combiner=dict(type='OpenVocabCombiner', ...) (see "
                         'configs/open_vocab/combined-maskclip_demo-clip_demo.py).')
    return cfg


def _fit(combiner, inferencer, dense, data_root: str, split: str, names: Sequence[str]) -> None:
    images, gts = read_split(data_root, split)
    _, head = head_predictions(inferencer, images)
    combiner.fit(head, [dense_name_scores(dense, rgb) for rgb in images],
                 [torch.from_numpy(g.astype(np.int64)) for g in gts], names, fit_split=split)


def _calibrated(cfg: Config, combine_config: str, inferencer, dense, data_root: str, names: Sequence[str],
                trained: Sequence[str], calibration: Optional[str]):
    """The combiner, its calibration read from ``calibration`` where that file exists, else fitted on
    the config's fit split (and written there when a path is given)."""
    combiner = MODELS.build(dict(cfg.combiner, trained_names=list(trained)))
    if calibration is not None and osp.isfile(calibration):
        combiner.load(calibration)
    else:
        _fit(combiner, inferencer, dense, data_root, cfg.fit_split, names)
        if calibration is not None:
            combiner.save(calibration)
    return combiner


@torch.no_grad()
def combined_open_vocab_figures(inferencer: WSSSInferencer, combine_config: str, data_root: str,
                                clip_checkpoint: str, split: str = 'openvocab',
                                calibration: Optional[str] = None) -> Dict:
    """Open-vocabulary mIoU of the head + dense-map combination on ``split``.

    Args:
        inferencer (WSSSInferencer): The trained stage-1 model (its classes are set to the trained
            names, ``demo_info.json['classes']``, here).
        combine_config (str): Combination config (see the module docstring).
        data_root (str): Generated dataset with the ``openvocab`` split and the fit split.
        clip_checkpoint (str): The CLIP of the dense source.
        split (str): Scored split. Defaults to ``'openvocab'``.
        calibration (str, optional): Calibration JSON: read when it exists (checked against the trained
            names and dense mode), else fitted on the fit split and written there. Defaults to None
            (fitted, not written).

    Returns:
        dict: ``open_vocab_combined_{unseen,seen,all}_miou`` (%), ``..._per_class_iou``,
        ``open_vocab_combined_dense_share`` (% of valid pixels labelled by the dense source),
        ``open_vocab_combined_calibration`` (the fitted sigmoids, fit split, dense mode, file).

    Raises:
        ValueError: the fit split is the scored split, or a calibration file of other names or mode.
    """
    cfg = load_combination_config(combine_config)
    if cfg.fit_split == split:
        raise ValueError(f'{combine_config}: fit_split {cfg.fit_split!r} is the scored split: fit the '
                         "calibration on another split (the demo's 'val').")
    info = read_demo_info(data_root)
    names, trained = list(info['open_vocab_classes']), list(info['classes'])
    dense, _ = build_dense_model(cfg.dense_config, clip_checkpoint, open_vocab_class_words(data_root),
                                 cfg.combiner.get('dense_mode', 'maskclip'))
    inferencer.set_classes(trained)
    combiner = _calibrated(cfg, combine_config, inferencer, dense, data_root, names, trained, calibration)
    images, gts = read_split(data_root, split)
    _, head = head_predictions(inferencer, images)
    preds = [combiner.predict(h[None], dense_name_scores(dense, rgb)[None], names)[0].numpy()
             for h, rgb in zip(head, images)]
    iou = compute_miou(preds, gts, names, log_table=False)['per_class_iou']
    dense_rows = [k for k, s in enumerate(combiner.sources(names)) if s == 'dense']
    valid = sum(int((g != 255).sum()) for g in gts)
    share = sum(int(np.isin(p[g != 255], dense_rows).sum()) for p, g in zip(preds, gts))
    return dict(open_vocab_combined_unseen_miou=mean_class_iou(iou, names[len(trained):]),
                open_vocab_combined_seen_miou=mean_class_iou(iou, trained),
                open_vocab_combined_all_miou=mean_class_iou(iou, names),
                open_vocab_combined_per_class_iou=iou,
                open_vocab_combined_dense_share=round(100.0 * share / max(valid, 1), 2),
                open_vocab_combined_calibration=dict(combiner.params, dense_mode=combiner.dense_mode,
                                                     file=calibration, **combiner.fit_info))
