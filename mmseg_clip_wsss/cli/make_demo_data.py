"""Write a generated dataset in the PASCAL VOC devkit layout (:mod:`mmseg_clip_wsss.datasets.synthetic.voc_writer`).

::

    python tools/make_demo_data.py --out data/demo --seed 0                  # the demo world
    python tools/make_demo_data.py --out data/shape-only --world shape-only-96
    python tools/make_demo_data.py --out data/demo_large --large             # 2000 + 500, 192 px
"""
import argparse
import os.path as osp
import time
from typing import List, Optional

from mmseg_clip_wsss.datasets import format_label_summary
from mmseg_clip_wsss.datasets.synthetic import make_demo_data
from mmseg_clip_wsss.datasets.synthetic.world import WORLD_PRESETS
from . import INPUT_ERRORS, run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a generated WSSS dataset in the PASCAL VOC devkit layout')
    parser.add_argument('--out', default='data/demo', help='dataset root to write (default data/demo)')
    parser.add_argument('--world', default='demo', choices=sorted(WORLD_PRESETS),
                        help='the world to draw (what decides a class, image size, unseen classes)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (output is byte-identical '
                        'for the same arguments)')
    parser.add_argument('--num-train', type=int, default=None, help='train images (default 300, '
                        '2000 with --large)')
    parser.add_argument('--num-val', type=int, default=None, help='val images (default 100, 500 '
                        'with --large)')
    parser.add_argument('--num-openvocab', type=int, default=100,
                        help='images of the open-vocabulary split (worlds with unseen classes; default 100)')
    parser.add_argument('--size', type=int, default=None, help="image side in pixels (default: the "
                        "world's, 192 with --large)")
    parser.add_argument('--large', action='store_true',
                        help='a bigger dataset: 2000 train + 500 val images of 192 px')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the demo files of a non-empty --out')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None):
    args = parse_args(argv)
    defaults = (2000, 500, 192) if args.large else (300, 100, None)
    num_train = defaults[0] if args.num_train is None else args.num_train
    num_val = defaults[1] if args.num_val is None else args.num_val
    size = defaults[2] if args.size is None else args.size
    start = time.perf_counter()
    info = make_demo_data(args.out, world=args.world, seed=args.seed, num_train=num_train,
                          num_val=num_val, num_openvocab=args.num_openvocab, size=size,
                          overwrite=args.overwrite, show_progress=not args.no_progress)
    for split, summary in info['splits'].items():
        summary = dict(summary, out_file=osp.join(args.out, summary['label_file']))
        print(f'[{split}] ' + format_label_summary(summary))
    print(f"demo data '{args.world}' ({num_train} train + {num_val} val + {info['num_openvocab']} "
          f"open-vocabulary, {info['size']}x{info['size']} px, seed {args.seed}) written to "
          f'{args.out} in {time.perf_counter() - start:.1f} s')


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
