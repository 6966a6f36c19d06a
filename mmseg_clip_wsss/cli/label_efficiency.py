"""Label efficiency on the demo data: stage 2 on our pseudo masks vs. the same model on GT masks.

::

    python tools/label_efficiency.py [--seeds 0 1 2] [--work-dir work_dirs/label_efficiency]
                                     [--data-root data/demo] [--iters N] [--jobs 2]

The runs and what they write: :mod:`mmseg_clip_wsss.benchmark.label_efficiency`.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional

from mmseg_clip_wsss.benchmark.label_efficiency import DEFAULT_VARIANTS, VARIANTS, run_label_efficiency
from . import run_tool
from .run_demo import interrupted_line


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Label-efficiency table on the demo data')
    parser.add_argument('--work-dir', default='work_dirs/label_efficiency',
                        help='folder of the runs and the table; the steps finished there are kept '
                        '(default work_dirs/label_efficiency)')
    parser.add_argument('--data-root', default='data/demo', help='demo data (generated if absent)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='training seeds of every variant (default 0 1 2; the table gives mean and std)')
    parser.add_argument('--variants', nargs='+', default=list(DEFAULT_VARIANTS),
                        choices=sorted(VARIANTS), help='stage-1 variants (the GT upper bound is '
                        'always run; it starts from the stage-1 checkpoint of "ours")')
    parser.add_argument('--iters', type=int, help='training iterations of every model (default: config)')
    parser.add_argument('--jobs', type=int, default=2, help='chains of steps run side by side')
    parser.add_argument('--threads', type=int,
                        help='CPU threads of every step (default: the cores / --jobs)')
    parser.add_argument('--fresh', action='store_true', help='redo finished steps')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    command = 'python tools/label_efficiency.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    summary = run_label_efficiency(args.work_dir, args.data_root, args.seeds, args.variants,
                                   iters=args.iters, jobs=args.jobs, threads=args.threads,
                                   fresh=args.fresh, command=command.strip())
    with open(osp.join(args.work_dir, 'label_efficiency.md')) as f:
        print(f.read())
    return summary


def run() -> None:
    run_tool(main, interrupted=lambda: interrupted_line(parse_args()))


if __name__ == '__main__':
    run()
