"""``python tools/train.py CONFIG [--work-dir DIR] [--resume [PATH]] [--amp] [--cfg-options ...]
[--launcher pytorch]``: train a model, as mmseg's ``tools/train.py``."""
import argparse
import logging
from typing import List, Optional

from mmengine.config import Config
from mmengine.logging import print_log

from mmseg_clip_wsss.apis.runner import train
from . import INPUT_ERRORS, run_tool
from .runner_args import add_runner_args, load_runner_config, naming_cfg_options

__all__ = ['parse_args', 'build_train_config', 'main', 'interrupted_line', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor (mmseg_clip_wsss)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', nargs='?', const=True, default=False, metavar='PATH',
                        help='resume from the latest checkpoint in the work_dir, or from checkpoint PATH')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision training')
    add_runner_args(parser)
    return parser.parse_args(argv)


def build_train_config(argv: Optional[List[str]] = None) -> Config:
    """The final config of ``tools/train.py`` with ``argv``.

    Raises:
        ValueError: ``--amp`` with an optimizer wrapper other than ``OptimWrapper``.
    """
    args = parse_args(argv)
    cfg = load_runner_config(args)
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
    cfg.resume = bool(args.resume)
    if isinstance(args.resume, str):  # --resume PATH: mmengine resumes from load_from
        cfg.load_from = args.resume
    return cfg


def main(argv: Optional[List[str]] = None):
    """Train with ``argv``; returns the runner after training."""
    with naming_cfg_options(parse_args(argv).cfg_options):
        return train(build_train_config(argv))


def interrupted_line() -> str:
    """How an interrupted training resumes (mmengine's checkpoints in the work dir)."""
    return ('the checkpoints saved so far stay in the work dir; run the same command with --resume to '
            'go on from the latest')


def run() -> None:
    run_tool(main, also=INPUT_ERRORS, interrupted=interrupted_line)


if __name__ == '__main__':
    run()
