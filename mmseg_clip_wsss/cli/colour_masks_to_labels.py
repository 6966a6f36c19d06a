"""Colour (RGB) masks in the VOC colour map -> palette PNGs of class indices, in place by default.

Example (VOC masks saved as RGB images)::

    python tools/dataset_converters/colour_masks_to_labels.py data/VOCdevkit/VOC2012/SegmentationClass

The palette PNGs look the same and hold the class indices mmseg reads; masks that already are palette
or grey PNGs are left as they are. The logic is
:func:`mmseg_clip_wsss.datasets.converters.colour_masks_to_labels`.
"""
import argparse

from mmseg_clip_wsss.apis import run_tool
from mmseg_clip_wsss.datasets.converters import colour_masks_to_labels


def parse_args():
    parser = argparse.ArgumentParser(description='colour (RGB) VOC masks -> palette PNGs of labels')
    parser.add_argument('mask_dir', help='directory of *.png masks')
    parser.add_argument('--out-dir', default=None, help='write here (default: in place)')
    return parser.parse_args()


def main():
    args = parse_args()
    summary = colour_masks_to_labels(args.mask_dir, args.out_dir)
    print(f"{summary['converted']} colour masks converted, {summary['kept']} already label maps, "
          f"in {summary['out_dir']}")


if __name__ == '__main__':
    run_tool(main)  # a clear message, not a traceback, for bad input
