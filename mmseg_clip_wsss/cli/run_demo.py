"""The whole WSSS pipeline on the generated demo data (what ``make demo`` runs).

::

    python tools/run_demo.py [--work-dir work_dirs/demo] [--data-root data/demo]
    python tools/run_demo.py --data-root data/shared-pairs-160 --world shared-pairs-160 --work-dir work_dirs/demo_160

The steps and what they write: :mod:`mmseg_clip_wsss.demo.runner`.
"""
import argparse
from typing import Dict, List, Optional

from mmseg_clip_wsss.datasets.synthetic.world import WORLD_PRESETS
from mmseg_clip_wsss.demo import run_demo
from . import run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run the WSSS demo end to end')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where everything is written')
    parser.add_argument('--data-root', default='data/demo', help='demo data (generated if absent); its '
                        'pretrained CLIP is cached in DATA_ROOT/clip')
    parser.add_argument('--world', default='demo', choices=sorted(WORLD_PRESETS),
                        help='world of the data written when DATA_ROOT holds none')
    parser.add_argument('--iters', type=int, help='training iterations of every model (default: config)')
    parser.add_argument('--num-overview', type=int, default=8, help='images in overview.png')
    parser.add_argument('--jobs', type=int, default=2, choices=(1, 2),
                        help='steps run side by side (1 or 2); the cores are shared between them')
    parser.add_argument('--clip-args', nargs=argparse.REMAINDER, default=[],
                        help='the rest of the line goes to tools/pretrain_clip.py (e.g. --steps 200)')
    parser.add_argument('--fresh', action='store_true',
                        help='redo every step, the CLIP pretraining included, even where its result exists')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    return run_demo(args.work_dir, args.data_root, world=args.world, iters=args.iters,
                    clip_args=args.clip_args, num_overview=args.num_overview, jobs=args.jobs,
                    fresh=args.fresh)


def interrupted_line(args: argparse.Namespace) -> str:
    """What an interrupted demo keeps (its finished steps) and how it resumes."""
    return (f'the finished steps stay in {args.work_dir}, each with its log; run the same command again to '
            'resume: a finished step is not run again, an interrupted training goes on from its last '
            'checkpoint')


def run() -> None:
    run_tool(main, interrupted=lambda: interrupted_line(parse_args()))


if __name__ == '__main__':
    run()
