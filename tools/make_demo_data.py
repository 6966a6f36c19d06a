"""Write the synthetic demo dataset in the PASCAL VOC devkit layout (:mod:`mmseg_clip_wsss.demo.data`).

::

    python tools/make_demo_data.py --out data/demo --seed 0            # 300 train + 100 val, 128 px
    python tools/make_demo_data.py --out data/demo_large --large       # 2000 + 500, 192 px
"""
import argparse
import os.path as osp
import time

from mmseg_clip_wsss.datasets import format_label_summary
from mmseg_clip_wsss.demo import make_demo_data


def parse_args():
    parser = argparse.ArgumentParser(
        description='Write the synthetic WSSS demo dataset in the PASCAL VOC devkit layout')
    parser.add_argument('--out', default='data/demo', help='dataset root to write')
    parser.add_argument('--seed', type=int, default=0, help='random seed (output is byte-identical '
                        'for the same arguments)')
    parser.add_argument('--num-train', type=int, default=None, help='train images (default 300, '
                        '2000 with --large)')
    parser.add_argument('--num-val', type=int, default=None, help='val images (default 100, 500 '
                        'with --large)')
    parser.add_argument('--size', type=int, default=None, help='image side in pixels (default 128, '
                        '192 with --large)')
    parser.add_argument('--large', action='store_true',
                        help='a bigger dataset: 2000 train + 500 val images of 192 px')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the demo files of a non-empty --out')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return parser.parse_args()


def main():
    args = parse_args()
    defaults = (2000, 500, 192) if args.large else (300, 100, 128)
    num_train = defaults[0] if args.num_train is None else args.num_train
    num_val = defaults[1] if args.num_val is None else args.num_val
    size = defaults[2] if args.size is None else args.size
    start = time.perf_counter()
    info = make_demo_data(args.out, seed=args.seed, num_train=num_train, num_val=num_val,
                          size=size, overwrite=args.overwrite, show_progress=not args.no_progress)
    for split in ('train', 'val'):
        summary = dict(info['splits'][split], out_file=osp.join(args.out,
                                                                 info['splits'][split]['label_file']))
        print(f'[{split}] ' + format_label_summary(summary))
    print(f'demo data ({num_train} train + {num_val} val, {size}x{size} px, seed {args.seed}) '
          f'written to {args.out} in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
