"""``python tools/robustness.py CONFIG CHECKPOINT [--out-dir DIR] [--subset N] [--corruptions ...]
[--severities 1 2 3 4 5] [--device cpu] [--cfg-options ...]``: mIoU under image corruptions
(:mod:`mmseg_clip_wsss.apis.robustness`)."""
import argparse
import os.path as osp
from typing import Dict, List, Optional

from mmengine.registry import init_default_scope

from mmseg_clip_wsss.apis.preflight import read_config
from mmseg_clip_wsss.apis.robustness import evaluate_robustness, markdown_table, write_robustness_report
from mmseg_clip_wsss.datasets.transforms.corruption import CORRUPTIONS, MAX_SEVERITY
from mmseg_clip_wsss.engine.checkpoint_check import build_model_from_checkpoint
from . import INPUT_ERRORS, device_arg, run_tool
from .runner_args import add_cfg_options_arg, merge_cfg_options, naming_cfg_options

__all__ = ['parse_args', 'main', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='mIoU under image corruptions (val split)')
    parser.add_argument('config', help='model config (its test_dataloader is the split evaluated)')
    parser.add_argument('checkpoint', help='checkpoint of that config')
    parser.add_argument('--out-dir', help='default: work_dirs/robustness/<config name>')
    parser.add_argument('--subset', type=int, help='only the first N images (quick runs)')
    parser.add_argument('--corruptions', nargs='+', default=list(CORRUPTIONS),
                        help='imagecorruptions names (default: noise, blur and JPEG ones)')
    parser.add_argument('--severities', nargs='+', type=int, default=list(range(1, MAX_SEVERITY + 1)),
                        help=f'severities of every corruption, 1 (mild) to {MAX_SEVERITY} (default: all)')
    parser.add_argument('--title', help='chart / table title (default: the config name)')
    parser.add_argument('--device', type=device_arg, help='default: cuda if available, else cpu')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_cfg_options_arg(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    """Run ``tools/robustness.py`` with ``argv``; returns the results (see
    :func:`evaluate_robustness`) with ``files``, the written paths."""
    args = parse_args(argv)
    cfg = read_config(args.config)
    merge_cfg_options(cfg, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    name = osp.splitext(osp.basename(args.config))[0]
    with naming_cfg_options(args.cfg_options):
        model = build_model_from_checkpoint(cfg, args.checkpoint, args.device, tool='robustness')
        results = evaluate_robustness(model, cfg, args.corruptions, args.severities, args.subset,
                                      show_progress=not args.no_progress)
    results.update(config=osp.abspath(args.config), checkpoint=osp.abspath(args.checkpoint))
    out_dir = args.out_dir or osp.join('work_dirs', 'robustness', name)
    files = write_robustness_report(results, out_dir, args.title or name)
    print(markdown_table(results, args.title or name))
    return dict(results, files=files)


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
