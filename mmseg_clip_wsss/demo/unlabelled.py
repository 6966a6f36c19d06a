"""Labelled + CLIP-tagged unlabelled images against labelled images only (stage 1 of the demo).

Both arms train the same stage-1 config for the same iterations and seeds; the second concatenates
the labelled train split with unlabelled images tagged by the CLIP
(``configs/unlabelled/clip_wsss_clip-rn_demo_plus-tagged.py``). The figure is the pseudo-mask mIoU
on the labelled train split (tools/make_pseudo_masks.py --eval), mean and std over the seeds::

    python -m mmseg_clip_wsss.cli.unlabelled --data-root data/demo \
        --unlabelled-root data/demo_unlabelled --clip data/demo/clip/clip.pt --iters 300 --seeds 0 1 2

The unlabelled root needs ``ImageLabels/train_clip.txt`` (tools/tag_images.py).
"""
import json
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np

from .runner import STAGE1, pseudo_masks, train

__all__ = ['PLUS_TAGGED_CONFIG', 'arm_options', 'compare_unlabelled']

PLUS_TAGGED_CONFIG = 'configs/unlabelled/clip_wsss_clip-rn_demo_plus-tagged.py'


def arm_options(arm: str, data_root: str, unlabelled_root: str, clip: str, iters: int, seed: int,
                tagged_loss_weight: float = 1.0) -> List[str]:
    """``--cfg-options`` of one arm (``'labelled'`` or ``'plus_tagged'``)."""
    warmup = min(30, max(1, iters // 2))
    options = [f'model.backbone.pretrained={clip}', f'model.text_encoder.pretrained={clip}',
               f'randomness.seed={seed}', f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
               f'param_scheduler.0.end={warmup}', f'param_scheduler.1.begin={warmup}',
               f'param_scheduler.1.end={iters}', f'default_hooks.checkpoint.interval={iters}']
    options += [f'{key}.dataset.data_root={data_root}'
                for key in ('val_dataloader', 'test_dataloader', 'cam_dataloader')]
    if arm == 'labelled':
        return options + [f'train_dataloader.dataset.data_root={data_root}']
    return options + [f'train_dataloader.dataset.datasets.0.data_root={data_root}',
                      f'train_dataloader.dataset.datasets.1.data_root={unlabelled_root}',
                      f'train_dataloader.dataset.datasets.1.loss_weight={tagged_loss_weight}']


def compare_unlabelled(data_root: str, unlabelled_root: str, clip: str, work_dir: str, iters: int = 300,
                       seeds: Sequence[int] = (0, 1, 2), tagged_loss_weight: float = 1.0,
                       threads: int = 2) -> Dict:
    """Train both arms for every seed and score their pseudo masks; writes ``<work_dir>/summary.json``.

    Returns:
        dict: per arm, ``miou`` (per seed), ``mean`` and ``std`` (%), and the settings.
    """
    configs = dict(labelled=STAGE1[0][1], plus_tagged=PLUS_TAGGED_CONFIG)
    result = dict(iters=iters, seeds=list(seeds), tagged_loss_weight=tagged_loss_weight)
    for arm, config in configs.items():
        mious = []
        for seed in seeds:
            options = arm_options(arm, data_root, unlabelled_root, clip, iters, seed, tagged_loss_weight)
            run_dir = osp.join(work_dir, f'{arm}_seed{seed}')
            checkpoint = train(f'{arm} seed {seed}', config, run_dir, options, iters, False, threads)
            metrics = pseudo_masks(f'{arm} seed {seed}', config, checkpoint, osp.join(run_dir, 'pseudo_masks'),
                                   options, False, threads)
            mious.append(round(float(metrics['mIoU']), 2))
        result[arm] = dict(miou=mious, mean=round(float(np.mean(mious)), 2), std=round(float(np.std(mious)), 2))
    result['gain'] = round(result['plus_tagged']['mean'] - result['labelled']['mean'], 2)
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(result, f, indent=2)
    return result
