"""``python tools/test.py CONFIG CHECKPOINT [--out DIR] [--show-dir DIR] [--tta] [--cfg-options ...]``:
test (and evaluate) a model, as mmseg's ``tools/test.py``."""
import argparse
from typing import List, Optional

from mmengine.config import Config

from mmseg_clip_wsss.apis.runner import test
from . import INPUT_ERRORS, run_tool
from .runner_args import add_runner_args, load_runner_config, naming_cfg_options

__all__ = ['parse_args', 'build_test_config', 'main', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='directory to save predictions for offline evaluation')
    parser.add_argument('--show-dir', help='directory to save painted predictions')
    parser.add_argument('--tta', action='store_true', help='test time augmentation')
    add_runner_args(parser)
    return parser.parse_args(argv)


def build_test_config(argv: Optional[List[str]] = None) -> Config:
    """The final config of ``tools/test.py`` with ``argv``.

    Raises:
        RuntimeError: ``--show-dir`` without a visualization hook in the config.
    """
    args = parse_args(argv)
    cfg = load_runner_config(args)
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


def main(argv: Optional[List[str]] = None):
    """Test with ``argv``; returns the metrics."""
    with naming_cfg_options(parse_args(argv).cfg_options):
        return test(build_test_config(argv))


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
