"""Make image-level labels (and optionally semantic masks) of MS COCO from an instances json.

Example (COCO 2014, see docs/datasets.md)::

    python tools/dataset_converters/coco_to_labels.py data/coco/annotations/instances_train2014.json \
        --out data/coco/ImageLabels/train2014.txt --split-out data/coco/ImageSets/train2014.txt \
        --masks-out data/coco/SegmentationClass/train2014 --nproc 8

Category ids are mapped by name to contiguous indices (background = 0, then mmdet's 80 COCO
classes); masks are VOC-palette PNGs holding those indices. Prints a summary: number of images and,
per class, the number of images and objects.
"""
import argparse
from typing import List, Optional

from mmseg_clip_wsss.datasets import coco_to_labels, dataset_classes, format_label_summary
from . import INPUT_ERRORS, run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='COCO instances json -> image-level label file')
    parser.add_argument('ann_file', help='instances json, e.g. annotations/instances_train2014.json')
    parser.add_argument('--out', required=True, help='label file to write')
    parser.add_argument('--split-out', default=None,
                        help='also write a split file of the images with at least one object')
    parser.add_argument('--masks-out', default=None,
                        help='also render semantic masks (VOC-palette PNGs) into this directory')
    parser.add_argument('--nproc', type=int, default=1, help='processes for mask rendering')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None):
    args = parse_args(argv)
    summary = coco_to_labels(
        args.ann_file,
        args.out,
        classes=dataset_classes('coco'),
        split_out=args.split_out,
        masks_out=args.masks_out,
        nproc=args.nproc,
        show_progress=not args.no_progress)
    print(format_label_summary(summary))
    if args.split_out:
        print(f'wrote {args.split_out}: {summary["num_images"] - summary["num_empty"]} ids')
    if args.masks_out:
        print(f'wrote {summary["num_images"]} masks into {args.masks_out}')


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
