"""``python tools/tag_images.py CHECKPOINT --data-root D --out LABELS [--split train]
[--labelled-root L] [--thresholds T] [--threshold-rule shared|per-class] [--true-labels F] [--soft]
[--overwrite]``: zero-shot image-level
tags of unlabelled images from a CLIP, written as a label file (``--soft``: confidence-weighted tags,
a soft label file) (:func:`mmseg_clip_wsss.apis.tagging.tag_images`)."""
import argparse
from typing import Dict, List, Optional

from mmseg_clip_wsss.apis.tagging import THRESHOLD_RULES, tag_images
from mmseg_clip_wsss.models.open_clip_models import DEMO_CLIP_NAME
from . import INPUT_ERRORS, refuse_existing, run_tool

__all__ = ['parse_args', 'main', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Zero-shot image-level tags of unlabelled images from a '
                                     'CLIP, written as a label file')
    parser.add_argument('checkpoint', help='open_clip checkpoint of the CLIP')
    parser.add_argument('--data-root', required=True, help='images to tag (VOC layout: JPEGImages/, '
                        'ImageSets/Segmentation/<split>.txt)')
    parser.add_argument('--split', default='train', help='split of --data-root to tag (default train)')
    parser.add_argument('--out', required=True, help='label file to write')
    parser.add_argument('--labelled-root', help='labelled dataset whose split chooses the thresholds '
                        '(default: --data-root); its world gives the class names and synonyms')
    parser.add_argument('--labelled-split', default='train',
                        help='split of the labelled dataset the thresholds are chosen on (default train)')
    parser.add_argument('--thresholds', help='thresholds JSON: read if it exists (it must have been chosen '
                        'on the same labelled split and CLIP), else chosen on the labelled split and '
                        'written here (default: beside --out)')
    parser.add_argument('--threshold-rule', choices=THRESHOLD_RULES, default=THRESHOLD_RULES[0],
                        help='shared (default): one threshold, the best F1 over every image and class of the '
                        'labelled split, in units of each class\'s spread over the images to tag; per-class: '
                        'each class\'s own best F1 (wants many labelled images per class)')
    parser.add_argument('--true-labels', help='label file of the tagged images to score the tags '
                        'against (default: DATA_ROOT/ImageLabels/SPLIT.txt if it exists)')
    parser.add_argument('--soft', action='store_true', help='confidence-weighted tags: write a soft label '
                        'file (JSON: targets and per-class confidences, WSSSDataset(soft_label_file=...)) '
                        'instead of a label file')
    parser.add_argument('--model-name', default=DEMO_CLIP_NAME,
                        help=f'open_clip model config of CHECKPOINT (default {DEMO_CLIP_NAME}, the demo CLIP)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --out, and choose the thresholds again (an existing '
                        'thresholds file made on another labelled split or CLIP is refused without it)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    """Tag with ``argv``; returns :func:`~mmseg_clip_wsss.apis.tagging.tag_images`'s dict."""
    args = parse_args(argv)
    refuse_existing(args.out, '--out', args.overwrite)
    return tag_images(**vars(args))


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
