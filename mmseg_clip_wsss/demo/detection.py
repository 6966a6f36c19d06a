"""Detection on the generated demo data: a detector from GT boxes and one from stage-1 pseudo masks.

:func:`run_det_demo` (the command line is ``tools/run_det_demo.py``)::

    python tools/run_det_demo.py [--data-root data/demo] \
        [--pseudo-masks work_dirs/demo/stage1/pseudo_masks] [--work-dir work_dirs/det_demo]

1. converts the demo boxes (``Annotations/*.xml``) of both splits to COCO json
   (``<data-root>/det/instances_{train,val}_gt.json``) and the stage-1 pseudo masks of the train split
   (written by ``make demo``) to ``<data-root>/det/instances_train_pseudo.json`` (connected components,
   ``--min-area``);
2. trains ``configs/det/demo/..._demo-gt.py`` (GT boxes) and ``..._demo-pseudo.py`` (pseudo-mask
   boxes, i.e. image-level labels only) and scores both on the val GT boxes with mmdet's
   ``CocoMetric``;
3. scores a trivial baseline the same way: one full-image box per image-level label (val labels);
4. writes ``<work-dir>/summary.json``: bbox mAP / mAP@50 (%) of the three, the quality of the pseudo
   boxes themselves (as predictions against the train GT boxes), and the wall time.

The demo data comes from ``tools/make_demo_data.py``; the pseudo masks from ``make demo``
(``tools/run_demo.py``). ``skip_pseudo`` runs the GT-box detector and the baseline only.
"""
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmdet.evaluation import CocoMetric
from mmengine.config import Config
from mmengine.runner import Runner

import mmseg_clip_wsss  # noqa: F401  (registration, compat shims)
from mmseg_clip_wsss.datasets import DEMO_CLASSES, pseudo_masks_to_coco, voc_xml_to_coco
from .runner import REPO, tiny_text_tower

__all__ = ['run_det_demo', 'check_inputs', 'coco_eval', 'box_predictions', 'percent', 'print_table']

GT_CONFIG = 'configs/det/demo/faster-rcnn_tiny-swin_rsca-fpn_text-head_demo-gt.py'
PSEUDO_CONFIG = 'configs/det/demo/faster-rcnn_tiny-swin_rsca-fpn_text-head_demo-pseudo.py'
SPLIT = 'ImageSets/Segmentation/{}.txt'
#: COCO metric keys (fractions) -> summary keys (%).
METRIC_KEYS = {'bbox_mAP': 'bbox_map', 'bbox_mAP_50': 'bbox_map50', 'bbox_mAP_75': 'bbox_map75'}


def check_inputs(data_root: str, pseudo_dir: Optional[str]) -> None:
    """Fail early, naming what is missing and the command that makes it."""
    for sub in ('JPEGImages', 'Annotations', SPLIT.format('train'), SPLIT.format('val')):
        if not osp.exists(osp.join(data_root, sub)):
            raise SystemExit(f'[det demo] {osp.join(data_root, sub)} does not exist: write the demo '
                             'data '
                             f'first: python tools/make_demo_data.py --out {data_root}')
    if pseudo_dir is not None and not osp.isdir(pseudo_dir):
        raise SystemExit(
            f'[det demo] pseudo-mask directory {pseudo_dir} does not exist: run `make demo` first (it '
            'writes work_dirs/demo/stage1/pseudo_masks), pass --pseudo-masks DIR, or --skip-pseudo to '
            'run only the GT-box detector.')


def coco_eval(ann_file: str, classes, predictions: List[Dict], prefix: str) -> Dict[str, float]:
    """Score predictions with mmdet's ``CocoMetric`` (bbox).

    Args:
        ann_file (str): COCO GT json.
        classes (Sequence[str]): Detection classes (no background), in label order.
        predictions (list[dict]): ``img_id``, ``ori_shape`` and ``pred_instances`` (``bboxes``
            (N, 4) x1y1x2y2, ``scores`` (N,), ``labels`` (N,) tensors) per image.
        prefix (str): Name in the log.

    Returns:
        dict: CocoMetric's ``bbox_*`` results (fractions).
    """
    metric = CocoMetric(ann_file=ann_file, metric='bbox', prefix=prefix)
    metric.dataset_meta = dict(classes=tuple(classes))
    metric.process({}, predictions)
    return dict(metric.compute_metrics(metric.results))


def box_predictions(ann_file: str, full_image: bool) -> List[Dict]:
    """Predictions made from a COCO json: its own boxes (score 1), or one full-image box per class
    present in the image (the trivial baseline)."""
    with open(ann_file) as f:
        coco = json.load(f)
    by_image = {img['id']: [] for img in coco['images']}
    for ann in coco['annotations']:
        by_image[ann['image_id']].append(ann)
    preds = []
    for img in coco['images']:
        anns = by_image[img['id']]
        if full_image:
            labels = sorted({a['category_id'] - 1 for a in anns})
            boxes = [[0.0, 0.0, float(img['width']), float(img['height'])] for _ in labels]
        else:
            labels = [a['category_id'] - 1 for a in anns]
            boxes = [[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                      a['bbox'][1] + a['bbox'][3]] for a in anns]
        preds.append(
            dict(img_id=img['id'], ori_shape=(img['height'], img['width']),
                 pred_instances=dict(
                     bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                     scores=torch.ones(len(labels)),
                     labels=torch.tensor(labels, dtype=torch.long))))
    return preds


def train_and_evaluate(config: str, name: str, work_dir: str, data_root: str, tiny_clip: str,
                       train_json: str, val_json: str, epochs: Optional[int]) -> Dict[str, float]:
    """Train a demo detector config and return its val ``CocoMetric`` results."""
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.work_dir = osp.join(work_dir, name)
    cfg.model.roi_head.bbox_head.text_encoder.pretrained = tiny_clip
    for loader, ann in (('train_dataloader', train_json), ('val_dataloader', val_json),
                        ('test_dataloader', val_json)):
        cfg[loader].dataset.data_root = data_root
        cfg[loader].dataset.ann_file = ann
    cfg.val_evaluator.ann_file = val_json
    cfg.test_evaluator.ann_file = val_json
    if epochs:
        cfg.train_cfg.max_epochs = epochs
        cfg.param_scheduler[1].end = epochs
        cfg.param_scheduler[1].milestones = [max(1, int(epochs * 0.75)), max(1, int(epochs * 0.92))]
        cfg.default_hooks.checkpoint.interval = epochs
    # no validation inside the training loop: it is run once below
    cfg.train_cfg.val_begin = cfg.train_cfg.max_epochs + 1
    cfg.visualizer.name = f'det_demo_{name}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    return dict(runner.val_loop.run())


def percent(metrics: Dict[str, float], prefix: str = 'coco/') -> Dict[str, float]:
    """CocoMetric fractions -> summary keys in %."""
    out = {}
    for key, name in METRIC_KEYS.items():
        value = metrics.get(prefix + key, metrics.get(key))
        if value is not None:
            out[name] = round(100.0 * float(value), 2)
    return out


def _write_jsons(data_root: str, pseudo_dir: Optional[str], min_area: int, summary: Dict) -> Dict:
    """The COCO jsons of the GT boxes (both splits) and of the pseudo-mask boxes; the quality of the
    pseudo boxes (as predictions against the train GT boxes) goes into ``summary``."""
    jsons = {split: osp.join(data_root, 'det', f'instances_{split}_gt.json')
             for split in ('train', 'val')}
    for split, path in jsons.items():
        info = voc_xml_to_coco(data_root, path, DEMO_CLASSES, split_file=SPLIT.format(split))
        print(f"[det demo] {split}: {info['num_instances']} GT boxes in {info['num_images']} images "
              f'-> {path}')
    if pseudo_dir is None:
        return jsons
    jsons['pseudo'] = osp.join(data_root, 'det', 'instances_train_pseudo.json')
    info = pseudo_masks_to_coco(pseudo_dir, osp.join(data_root, 'JPEGImages'), jsons['pseudo'],
                                DEMO_CLASSES, split_file=osp.join(data_root, SPLIT.format('train')),
                                min_area=min_area, show_progress=False)
    print(f"[det demo] pseudo masks: {info['num_instances']} boxes in {info['num_images']} images "
          f"({info['num_small']} components < {min_area} px dropped) -> {jsons['pseudo']}")
    quality = coco_eval(jsons['train'], summary['classes'], box_predictions(jsons['pseudo'], False),
                        'pseudo_vs_gt')
    summary['pseudo_boxes_vs_train_gt'] = percent(quality, 'pseudo_vs_gt/')
    summary['pseudo_box_count'] = info['num_instances']
    return jsons


def _config_classes() -> Sequence[str]:
    """The detection classes of the demo configs, checked against the demo dataset's."""

    classes = tuple(DEMO_CLASSES[1:])
    config_classes = tuple(Config.fromfile(osp.join(REPO, GT_CONFIG)).classes)
    if config_classes != classes:
        raise SystemExit(f'[det demo] {GT_CONFIG} classes {config_classes} differ from DEMO_CLASSES[1:] '
                         f'{classes}: keep them in sync.')
    return classes


def run_det_demo(data_root: str = 'data/demo',
                 pseudo_masks: Optional[str] = 'work_dirs/demo/stage1/pseudo_masks',
                 work_dir: str = 'work_dirs/det_demo',
                 epochs: Optional[int] = None,
                 min_area: int = 16) -> Dict:
    """Run the detection demo (see the module docstring).

    Args:
        data_root (str): Demo data. Defaults to ``'data/demo'``.
        pseudo_masks (str, optional): Stage-1 pseudo masks of the train split (from ``make demo``);
            None runs the GT-box detector and the baseline only.
        work_dir (str): Where everything is written. Defaults to ``'work_dirs/det_demo'``.
        epochs (int, optional): Training epochs of both detectors. Defaults to the config's.
        min_area (int): Pseudo-mask components below this many pixels are dropped. Defaults to 16.

    Returns:
        dict: What ``<work_dir>/summary.json`` holds (bbox mAP in %).
    """
    start = time.time()
    data_root, work_dir = osp.abspath(data_root), osp.abspath(work_dir)
    pseudo_dir = None if pseudo_masks is None else osp.abspath(pseudo_masks)
    check_inputs(data_root, pseudo_dir)
    os.makedirs(work_dir, exist_ok=True)

    summary: Dict = dict(data_root=data_root, classes=list(_config_classes()))
    tiny_clip = tiny_text_tower(data_root)
    jsons = _write_jsons(data_root, pseudo_dir, min_area, summary)
    # the trivial baseline: one full-image box per image-level label
    baseline = coco_eval(jsons['val'], summary['classes'], box_predictions(jsons['val'], True),
                         'baseline')
    summary['baseline_full_image_box'] = percent(baseline, 'baseline/')
    runs = [('gt_boxes', GT_CONFIG, jsons['train'])]
    if pseudo_dir is not None:
        runs.append(('pseudo_mask_boxes', PSEUDO_CONFIG, jsons['pseudo']))
    for name, config, train_json in runs:
        t0 = time.time()
        metrics = train_and_evaluate(config, name, work_dir, data_root, tiny_clip, train_json,
                                     jsons['val'], epochs)
        summary[name] = dict(percent(metrics), config=config, seconds=round(time.time() - t0, 1))
    for name in ('gt_boxes', 'pseudo_mask_boxes', 'baseline_full_image_box'):
        if name in summary:
            summary[f'{name}_bbox_map'] = summary[name]['bbox_map']
    summary['seconds'] = round(time.time() - start, 1)
    out = osp.join(work_dir, 'summary.json')
    with open(out, 'w', newline='\n') as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write('\n')
    print_table(summary)
    print(f'[det demo] summary -> {out}')
    return summary


def print_table(summary: Dict) -> None:
    """The detection demo's figures (val bbox mAP, mAP@50) as a table."""
    rows = [('detector, GT boxes', 'gt_boxes'), ('detector, pseudo-mask boxes', 'pseudo_mask_boxes'),
            ('baseline: full-image box per label', 'baseline_full_image_box'),
            ('pseudo boxes vs train GT (no detector)', 'pseudo_boxes_vs_train_gt')]
    print(f"{'val bbox (COCO)':<42}{'mAP':>8}{'mAP@50':>8}")
    for title, key in rows:
        if key in summary:
            print(f"{title:<42}{summary[key]['bbox_map']:>8.2f}{summary[key]['bbox_map50']:>8.2f}")
