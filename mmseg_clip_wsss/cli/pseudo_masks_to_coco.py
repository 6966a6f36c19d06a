"""Stage-1 pseudo masks -> COCO instances json, for training an mmdet detector from image-level labels.

Example (the demo: pseudo masks of the train split written by ``make demo``)::

    python tools/dataset_converters/pseudo_masks_to_coco.py \
        work_dirs/demo/stage1/pseudo_masks data/demo/JPEGImages \
        --split data/demo/ImageSets/Segmentation/train.txt --classes demo \
        --out data/demo/det/instances_train_pseudo.json --min-area 16

Every connected component of every object class becomes one instance (box ``[x, y, w, h]``, area,
RLE mask); components below ``--min-area`` pixels are dropped. Category ``k`` is class ``k`` of
``--classes`` (``'background'`` first), i.e. the pseudo-mask value. The logic is
:func:`mmseg_clip_wsss.datasets.pseudo_masks_to_coco`.
"""
import argparse
from typing import List, Optional

from mmseg_clip_wsss.datasets import parse_class_list, pseudo_masks_to_coco
from . import INPUT_ERRORS, run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='pseudo masks (class-index PNGs) -> COCO instances json')
    parser.add_argument('mask_dir', help='directory of <image id>.png pseudo masks')
    parser.add_argument('img_dir', help='directory of the images (json image entries are read here)')
    parser.add_argument('--out', required=True, help='COCO json to write')
    parser.add_argument('--split', default=None,
                        help='file of image ids to convert (default: every image of img_dir)')
    parser.add_argument('--classes', default='voc',
                        help="'voc' (default), 'coco', 'demo' (the datasets' class lists), or "
                        'comma-separated foreground class names')
    parser.add_argument('--min-area', type=int, default=16,
                        help='drop components with fewer pixels (default 16)')
    parser.add_argument('--connectivity', type=int, default=8, choices=(4, 8),
                        help='pixel connectivity of a component (default 8)')
    parser.add_argument('--ignore-index', type=int, default=255, help='ignored mask value')
    parser.add_argument('--no-masks', action='store_true', help='write boxes only (no RLE masks)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None):
    args = parse_args(argv)
    summary = pseudo_masks_to_coco(
        args.mask_dir,
        args.img_dir,
        args.out,
        classes=parse_class_list(args.classes),
        split_file=args.split,
        min_area=args.min_area,
        connectivity=args.connectivity,
        ignore_index=args.ignore_index,
        with_masks=not args.no_masks,
        show_progress=not args.no_progress)
    counts = ', '.join(f'{k}: {v}' for k, v in summary['instance_counts'].items())
    print(f"{summary['num_instances']} instances in {summary['num_images']} images "
          f"({summary['num_empty']} without any, {summary['num_small']} components < "
          f'{args.min_area} px dropped) -> {summary["out_file"]}\n{counts}')


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
