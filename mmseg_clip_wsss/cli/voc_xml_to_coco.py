"""Boxes of a VOC-layout dataset (``Annotations/*.xml``) -> COCO instances json for mmdet.

Example (the demo data, ground-truth boxes of both splits)::

    python tools/dataset_converters/voc_xml_to_coco.py data/demo --classes demo \
        --split ImageSets/Segmentation/val.txt --out det/instances_val_gt.json

Relative ``--split``/``--out`` paths are taken under the dataset root. The logic is
:func:`mmseg_clip_wsss.datasets.voc_xml_to_coco`.
"""
import argparse
from typing import List, Optional

from mmseg_clip_wsss.datasets import parse_class_list, voc_xml_to_coco
from . import INPUT_ERRORS, run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='VOC XML boxes -> COCO instances json')
    parser.add_argument('data_root', help='dataset root in the VOC devkit layout')
    parser.add_argument('--out', required=True, help='json to write (relative: under data_root)')
    parser.add_argument('--split', default=None,
                        help='split file of image ids (default: every image of --img-dir)')
    parser.add_argument('--classes', default='voc',
                        help="'voc' (default), 'coco', 'demo' (the datasets' class lists), or "
                        'comma-separated foreground class names')
    parser.add_argument('--ann-dir', default='Annotations', help='XML directory under data_root')
    parser.add_argument('--img-dir', default='JPEGImages', help='image directory under data_root')
    parser.add_argument('--skip-difficult', action='store_true',
                        help='leave out objects marked difficult')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None):
    args = parse_args(argv)
    summary = voc_xml_to_coco(args.data_root, args.out, parse_class_list(args.classes),
                              split_file=args.split, ann_dir=args.ann_dir, img_dir=args.img_dir,
                              skip_difficult=args.skip_difficult)
    print(f"{summary['num_instances']} boxes in {summary['num_images']} images -> "
          f"{summary['out_file']}")


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
