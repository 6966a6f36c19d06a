"""Write an unlabelled pool of generated images with people-like descriptions
(:mod:`mmseg_clip_wsss.datasets.synthetic.described_pool`)::

    python tools/make_described_pool.py --out data/demo_described --num-images 1500 --seed 1
    python tools/make_described_pool.py --out data/demo_vague --vagueness 0.8     # vaguer words
"""
import argparse
import time
from typing import List, Optional

from mmseg_clip_wsss.datasets.synthetic.described_pool import POOL_CAPTIONS, make_described_pool
from mmseg_clip_wsss.datasets.synthetic.descriptions import DescriptionStyle
from mmseg_clip_wsss.datasets.synthetic.world import WORLD_PRESETS
from . import INPUT_ERRORS, int_at_least, run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write unlabelled generated images with descriptions in the COCO captions format')
    parser.add_argument('--out', default='data/demo_described', help='folder to write')
    parser.add_argument('--world', default='demo', choices=sorted(WORLD_PRESETS), help='the world to draw')
    parser.add_argument('--seed', type=int_at_least(0), default=1, help="the pool's seed (its images never repeat a "
                        'train/val image of any seed)')
    parser.add_argument('--num-images', type=int, default=1500, help='images of the pool')
    parser.add_argument('--vagueness', type=float, default=0.3, help='chance that an object is named by a '
                        "vague word ('a shape', 'something round') instead of its class word")
    parser.add_argument('--mention', type=float, default=0.6,
                        help='chance that each class present is mentioned in a description')
    parser.add_argument('--per-image', type=int, default=5, help='descriptions per image')
    parser.add_argument('--overwrite', action='store_true', help='write over a pool in --out')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    style = DescriptionStyle(vagueness=args.vagueness, mention=args.mention, per_image=args.per_image)
    info = make_described_pool(args.out, args.world, args.seed, args.num_images, style, args.overwrite)
    print(f'{args.num_images} described images of the {args.world!r} world (seed {args.seed}, vagueness '
          f'{args.vagueness}) written to {args.out} ({POOL_CAPTIONS}) in {time.perf_counter() - start:.1f} s')
    return info


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
