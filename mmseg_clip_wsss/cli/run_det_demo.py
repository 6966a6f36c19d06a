"""Detection on the generated demo data: a detector from GT boxes and one from stage-1 pseudo masks.

::

    python tools/run_det_demo.py [--data-root data/demo] \
        [--pseudo-masks work_dirs/demo/stage1/pseudo_masks] [--work-dir work_dirs/det_demo]

The steps and what they write: :mod:`mmseg_clip_wsss.demo.detection`.
"""
import argparse
from typing import Dict, List, Optional

from mmseg_clip_wsss.demo import run_det_demo
from . import run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Detection demo: GT boxes vs pseudo-mask boxes')
    parser.add_argument('--data-root', default='data/demo', help='demo data (tools/make_demo_data.py)')
    parser.add_argument('--pseudo-masks', default='work_dirs/demo/stage1/pseudo_masks',
                        help='stage-1 pseudo masks of the train split (from `make demo`)')
    parser.add_argument('--work-dir', default='work_dirs/det_demo', help='where everything is written')
    parser.add_argument('--epochs', type=int, help='training epochs of both detectors (default: config)')
    parser.add_argument('--min-area', type=int, default=16,
                        help='pseudo-mask components below this many pixels are dropped')
    parser.add_argument('--skip-pseudo', action='store_true',
                        help='run only the GT-box detector and the baseline')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    return run_det_demo(args.data_root, None if args.skip_pseudo else args.pseudo_masks,
                        args.work_dir, epochs=args.epochs, min_area=args.min_area)


def run() -> None:
    run_tool(main)


if __name__ == '__main__':
    run()
