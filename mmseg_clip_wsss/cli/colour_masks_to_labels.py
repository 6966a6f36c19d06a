"""Colour (RGB) masks in the VOC colour map -> palette PNGs of class indices, in place by default.

Example (VOC masks saved as RGB images)::

    python tools/dataset_converters/colour_masks_to_labels.py data/VOCdevkit/VOC2012/SegmentationClass

The palette PNGs look the same and hold the class indices mmseg reads; masks that already are palette
or grey PNGs are left as they are. The logic is
:func:`mmseg_clip_wsss.datasets.converters.colour_masks_to_labels`.
"""
import argparse
from typing import List, Optional

from mmseg_clip_wsss.datasets.converters import colour_masks_to_labels
from . import INPUT_ERRORS, run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='colour (RGB) VOC masks -> palette PNGs of labels')
    parser.add_argument('mask_dir', help='directory of *.png masks')
    parser.add_argument('--out-dir', default=None, help='write here (default: in place)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None):
    args = parse_args(argv)
    summary = colour_masks_to_labels(args.mask_dir, args.out_dir)
    print(f"{summary['converted']} colour masks converted, {summary['kept']} already label maps, "
          f"in {summary['out_dir']}")


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
