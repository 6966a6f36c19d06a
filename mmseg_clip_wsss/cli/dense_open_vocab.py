"""``python -m mmseg_clip_wsss.cli.dense_open_vocab CONFIG [--data-root data/demo] [--clip CLIP]
[--dense-mode MODE] [--out figures.json] [--overwrite]``: open-vocabulary figures of a dense zero-shot
mode, no training (:mod:`mmseg_clip_wsss.demo.dense_open_vocab`)."""
import argparse
from typing import Dict, List, Optional

from mmseg_clip_wsss.demo.dense_open_vocab import dense_open_vocab_figures
from mmseg_clip_wsss.demo.training_free import config_clip
from . import INPUT_ERRORS, refuse_existing, report_json, run_tool

__all__ = ['parse_args', 'main', 'interrupted_line', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Open-vocabulary figures of a dense zero-shot mode (no training)')
    parser.add_argument('config', help='a TrainingFreeDenseCLIP config (configs/dense_clip/*_demo.py)')
    parser.add_argument('--data-root', default='data/demo', help='demo data with the openvocab split (default data/demo)')
    parser.add_argument('--clip', default=None,
                        help='the CLIP of both towers (default: the config\'s, under DATA_ROOT: '
                        'DATA_ROOT/clip/clip.pt for the demo CLIP)')
    parser.add_argument('--dense-mode', default=None, help="override the config's dense mode")
    parser.add_argument('--split', default='openvocab',
                        help='split of DATA_ROOT scored against its GT masks (default: openvocab, the '
                        'split that holds the unseen classes; on another the unseen mIoU is None)')
    parser.add_argument('--out', default=None, help='JSON file to write the figures to')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out file')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    """Open-vocabulary figures of a dense mode with ``argv``; returns them."""
    args = parse_args(argv)
    refuse_existing(args.out, '--out', args.overwrite)
    result = dense_open_vocab_figures(args.config, args.data_root,
                                      args.clip or config_clip(args.config, args.data_root), args.split,
                                      args.dense_mode)
    return report_json(result, args.out)


def interrupted_line(args: argparse.Namespace) -> str:
    """What an interrupted run left: nothing (the figures are written once every image is scored)."""
    return ('no figures were written (they are written once every image is scored); run the same command '
            'again (it starts over)')


def run() -> None:
    run_tool(main, also=INPUT_ERRORS, interrupted=lambda: interrupted_line(parse_args()))


if __name__ == '__main__':
    run()
