"""Make the image-level label file of a VOC-layout dataset from its ``Annotations/*.xml``.

Example (PASCAL VOC 2012 + SBD, see docs/datasets.md)::

    python tools/dataset_converters/voc_xml_to_labels.py data/VOCdevkit/VOC2012 \
        --split ImageSets/Segmentation/trainaug.txt --out ImageLabels/trainaug.txt

Relative ``--split``/``--out`` paths are taken under the dataset root. Prints a summary: number of
images and, per class, the number of images and objects.
"""
import argparse
from typing import List, Optional

from mmseg_clip_wsss.datasets import format_label_summary, parse_class_list, voc_xml_to_labels
from . import INPUT_ERRORS, run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='VOC XML annotations -> image-level label file')
    parser.add_argument('data_root', help='devkit root, e.g. data/VOCdevkit/VOC2012')
    parser.add_argument('--split', default=None,
                        help='split file of image ids (default: every Annotations/*.xml)')
    parser.add_argument('--out', default=None,
                        help='label file to write (default: ImageLabels/<split name>.txt, or '
                        'ImageLabels/all.txt without --split)')
    parser.add_argument('--classes', default='voc',
                        help="'voc' (default), 'coco', 'demo' (the datasets' class lists), or "
                        'comma-separated foreground class names')
    parser.add_argument('--ann-dir', default='Annotations', help='XML directory under data_root')
    parser.add_argument('--skip-difficult', action='store_true',
                        help='leave out objects marked difficult')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None):
    args = parse_args(argv)
    out = args.out
    if out is None:
        stem = args.split.replace('\\', '/').rsplit('/', 1)[-1].rsplit('.', 1)[0] \
            if args.split else 'all'
        out = f'ImageLabels/{stem}.txt'
    summary = voc_xml_to_labels(
        args.data_root,
        out,
        classes=parse_class_list(args.classes),
        split_file=args.split,
        ann_dir=args.ann_dir,
        skip_difficult=args.skip_difficult,
        show_progress=not args.no_progress)
    print(format_label_summary(summary))


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
