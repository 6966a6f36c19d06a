"""Training and testing from a config, with the plugin's checks first.

The plugin is imported first (its registries and compatibility shims are then in place for any
config, ours or ``mmseg::`` / ``mmdet::`` ones); the config's assets and class lists are checked
before anything is built; a distributed launcher on a machine without CUDA runs with gloo. The
command lines are :mod:`mmseg_clip_wsss.cli.train` and :mod:`mmseg_clip_wsss.cli.test`.
"""
import glob
import os.path as osp

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner, find_latest_checkpoint

import mmseg_clip_wsss  # noqa: F401  registers modules and applies compat shims
from mmseg_clip_wsss.engine.dist import (adapt_config_to_cpu_distributed, cpu_distributed,
                                         setup_cpu_distributed)
from mmseg_clip_wsss.engine.checkpoint_check import CHECKPOINT_FIX
from mmseg_clip_wsss.engine.weight_files import check_weight_file
from .preflight import check_config_assets, check_config_classes

__all__ = ['build_runner', 'check_resume_checkpoint', 'train', 'test']


def _prepare_distributed(cfg: Config) -> None:
    """On a machine without CUDA, run a distributed launcher with gloo (see :mod:`..engine.dist`)."""
    launcher = cfg.get('launcher', 'none')
    if not cpu_distributed(launcher):
        return
    changes = adapt_config_to_cpu_distributed(cfg)
    setup_cpu_distributed(launcher, timeout_s=int(cfg.env_cfg.dist_cfg.get('timeout', 1800)))
    if changes:
        print_log('distributed training on CPU (gloo): ' + '; '.join(changes), logger='current')


def build_runner(cfg: Config) -> Runner:
    """mmengine's runner of ``cfg`` (``runner_type`` honoured), after the distributed set-up."""
    _prepare_distributed(cfg)
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def check_resume_checkpoint(cfg: Config) -> None:
    """With ``cfg.resume``, refuse the checkpoint the run would resume from (``cfg.load_from``, else
    the work dir's latest, as mmengine picks it) when it is empty, cut short (written when the
    training was killed) or not a torch file, naming the earlier checkpoints to resume from instead.

    Raises:
        WeightFileError: naming the file and the fix (``--resume PATH`` of an earlier checkpoint).
    """
    if not cfg.get('resume'):
        return
    path = cfg.get('load_from') or find_latest_checkpoint(cfg.work_dir)
    if not path:
        return
    earlier = sorted(f for f in glob.glob(osp.join(glob.escape(osp.dirname(path) or '.'), '*.pth'))
                     if osp.abspath(f) != osp.abspath(path))
    fix = ('name an earlier checkpoint with --resume PATH' + (f' ({", ".join(earlier[-3:])})' if earlier else '')
           + ', or delete the work dir to train from the start.')
    check_weight_file(path, fix, 'train --resume: checkpoint')


def train(cfg: Config) -> Runner:
    """Check ``cfg``'s assets, classes and the checkpoint it resumes from, then train; returns the
    runner after training.

    Raises:
        MissingAssetError: a data root, label file or weight file of the config is missing.
        ConfigMismatchError: the class lists of the config's parts disagree.
        WeightFileError: the checkpoint to resume from is empty, cut short or not a torch file.
    """
    check_config_assets(cfg, ('train_dataloader', 'val_dataloader'))
    check_config_classes(cfg, ('train_dataloader', 'val_dataloader'))
    check_resume_checkpoint(cfg)
    runner = build_runner(cfg)
    runner.train()
    return runner


def test(cfg: Config) -> dict:
    """Check ``cfg``'s assets and classes, then test; returns the metrics.

    Raises:
        MissingAssetError: a data root or weight file of the config is missing.
        ConfigMismatchError: the class lists of the config's parts disagree.
        WeightFileError: the checkpoint (``load_from``) is empty, cut short or not a torch file.
    """
    check_config_assets(cfg, ('test_dataloader', ))
    check_config_classes(cfg, ('test_dataloader', ))
    if cfg.get('load_from'):
        check_weight_file(cfg.load_from, CHECKPOINT_FIX, 'test: checkpoint')
    return build_runner(cfg).test()
