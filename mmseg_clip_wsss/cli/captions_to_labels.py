"""Write the image-level label file of the classes each image's descriptions name
(:func:`mmseg_clip_wsss.apis.description_labels.captions_to_labels`)::

    python tools/dataset_converters/captions_to_labels.py data/coco/annotations/captions_train2014.json \\
        --classes coco --out data/coco/ImageLabels/train2014_captions.txt \\
        --split-out data/coco/ImageSets/train2014_captions.txt
"""
import argparse
from typing import List, Optional

from mmseg_clip_wsss.apis.description_labels import captions_to_labels
from . import INPUT_ERRORS, refuse_existing, run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Image-level labels from captions: the classes each image\'s descriptions name')
    parser.add_argument('captions', help='COCO captions JSON or JSONL of {"image", "caption"} lines')
    parser.add_argument('--out', required=True, help='label file to write')
    parser.add_argument('--classes', default='coco', help="vocabulary ('coco', 'voc', 'demo') or a "
                        "comma-separated class list starting with 'background'")
    parser.add_argument('--split-out', default=None, help='also write the split file of the images')
    parser.add_argument('--overwrite', action='store_true', help='replace existing --out / --split-out files')
    parser.add_argument('--clip-model', default=None, help='open_clip model of a text tower whose evidence '
                        'is added to the word matches (e.g. ViT-B-16)')
    parser.add_argument('--clip-pretrained', default=None, help='its pretrained tag or checkpoint file')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    refuse_existing(args.out, '--out', args.overwrite)
    refuse_existing(args.split_out, '--split-out', args.overwrite)
    classes = args.classes if ',' not in args.classes else [c.strip() for c in args.classes.split(',')]
    summary = captions_to_labels(args.captions, args.out, classes, args.split_out,
                                 clip_model=args.clip_model, clip_pretrained=args.clip_pretrained)
    print(f"{summary['images']} images, {summary['with_classes']} with a class their descriptions name: "
          f"{summary['out_file']}")
    return summary


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
