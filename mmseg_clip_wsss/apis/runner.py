"""The machinery behind ``tools/train.py`` and ``tools/test.py``.

The command lines follow mmseg's own tools (``--work-dir``, ``--resume``, ``--amp``,
``--cfg-options``, ``--launcher``), so an mmseg user needs nothing new. The differences: the plugin
is imported first (its registries and compatibility shims are then in place for any config, ours or
``mmseg::`` / ``mmdet::`` ones), and the functions take ``argv`` so that tests drive them in-process.
"""
import argparse
import logging
import os
import os.path as osp
import sys
from typing import Callable, List, Optional, Tuple

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

import mmseg_clip_wsss  # noqa: F401  registers modules and applies compat shims
from mmseg_clip_wsss.engine.dist import (adapt_config_to_cpu_distributed, cpu_distributed,
                                         setup_cpu_distributed)
from mmseg_clip_wsss.datasets.errors import DatasetError
from mmseg_clip_wsss.datasets.transforms.loading import CorruptImageError
from mmseg_clip_wsss.engine.checkpoint_check import CheckpointMismatchError
from mmseg_clip_wsss.engine.hooks import NonFiniteLossError
from .preflight import (ConfigMismatchError, MissingAssetError, check_config_assets,
                        check_config_classes)

#: Errors of the tools that carry a complete message (file and fix): printed without a traceback.
USER_ERRORS = (MissingAssetError, ConfigMismatchError, CheckpointMismatchError, NonFiniteLossError,
               DatasetError, CorruptImageError)


#: Errors of the data and CLIP tools whose messages name the file and the fix.
INPUT_ERRORS = (FileNotFoundError, FileExistsError, ValueError)


def run_tool(main: Callable[[], object], also: Tuple[type, ...] = ()) -> None:
    """Run a command-line tool's ``main``; a :data:`USER_ERRORS` error (or one of ``also``, e.g.
    :data:`INPUT_ERRORS`) ends it with its message (``error: ...``, exit status 1) instead of a
    traceback."""
    try:
        main()
    except USER_ERRORS + tuple(also) as err:
        sys.exit(f'error: {err}')


def _add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='the dir to save logs, checkpoints and metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, as key=value pairs (mmengine DictAction syntax), '
        'e.g. train_cfg.max_iters=100 "model.backbone.init_cfg=None"')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    # torch.distributed launchers pass --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def _load_config(args: argparse.Namespace) -> Config:
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # work_dir priority: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_train_config(argv: Optional[List[str]] = None) -> Config:
    """Parse ``tools/train.py`` arguments and return the final config."""
    parser = argparse.ArgumentParser(description='Train a segmentor (mmseg_clip_wsss)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work_dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision training')
    _add_common_args(parser)
    args = parser.parse_args(argv)
    cfg = _load_config(args)

    if args.amp:
        wrapper = cfg.optim_wrapper.type
        if wrapper == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in the config.', logger='current',
                      level=logging.WARNING)
        elif wrapper != 'OptimWrapper':
            raise ValueError(f'--amp needs optim_wrapper.type="OptimWrapper", got "{wrapper}"')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.resume = args.resume
    return cfg


def build_test_config(argv: Optional[List[str]] = None) -> Config:
    """Parse ``tools/test.py`` arguments and return the final config."""
    parser = argparse.ArgumentParser(description='Test (and evaluate) a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='directory to save predictions for offline evaluation')
    parser.add_argument('--show-dir', help='directory to save painted predictions')
    parser.add_argument('--tta', action='store_true', help='test time augmentation')
    _add_common_args(parser)
    args = parser.parse_args(argv)
    cfg = _load_config(args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        if 'visualization' not in cfg.default_hooks:
            raise RuntimeError('--show-dir needs default_hooks.visualization '
                               '(e.g. dict(type="SegVisualizationHook")) in the config')
        cfg.default_hooks.visualization.draw = True
        cfg.visualizer.save_dir = args.show_dir
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    return cfg


def _prepare_distributed(cfg: Config) -> None:
    """On a machine without CUDA, run a distributed launcher with gloo (see :mod:`..engine.dist`)."""
    launcher = cfg.get('launcher', 'none')
    if not cpu_distributed(launcher):
        return
    changes = adapt_config_to_cpu_distributed(cfg)
    setup_cpu_distributed(launcher, timeout_s=int(cfg.env_cfg.dist_cfg.get('timeout', 1800)))
    if changes:
        print_log('distributed training on CPU (gloo): ' + '; '.join(changes), logger='current')


def _build_runner(cfg: Config):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    _prepare_distributed(cfg)
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def train_main(argv: Optional[List[str]] = None):
    """Entry point of ``tools/train.py``; returns the runner after training."""
    cfg = build_train_config(argv)
    check_config_assets(cfg, ('train_dataloader', 'val_dataloader'))
    check_config_classes(cfg, ('train_dataloader', 'val_dataloader'))
    runner = _build_runner(cfg)
    runner.train()
    return runner


def test_main(argv: Optional[List[str]] = None):
    """Entry point of ``tools/test.py``; returns the metrics."""
    cfg = build_test_config(argv)
    check_config_assets(cfg, ('test_dataloader', ))
    check_config_classes(cfg, ('test_dataloader', ))
    return _build_runner(cfg).test()
