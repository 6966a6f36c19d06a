"""``python tools/segment.py IMAGES_OR_DIRS --config C --checkpoint P [--classes "cat,dog" |
--vocabulary voc] --out-dir D [--overwrite]``: segment images with any class names
(:mod:`mmseg_clip_wsss.apis.segment`). A checkpoint of another config (or any, for a training-free
model) or a damaged one is refused before any image; an --out-dir of other settings too, unless
--overwrite; the same settings go on from the finished images."""
import argparse
import json
import os.path as osp
from typing import Dict, List, Optional

from mmseg_clip_wsss.apis.inferencer import WSSSInferencer, resolve_classes
from mmseg_clip_wsss.apis.preflight import check_config_assets, read_config
from mmseg_clip_wsss.apis.segment import check_out_dir, list_images, segment_images
from . import INPUT_ERRORS, device_arg, finished_files, run_tool
from .runner_args import add_cfg_options_arg, merge_cfg_options, naming_cfg_options

__all__ = ['parse_args', 'main', 'interrupted_line', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Segment images with any class names (a palette PNG, '
                                     'an overlay with a legend and a JSON of class shares per image)')
    parser.add_argument('inputs', nargs='+', help='image files and/or folders of images')
    parser.add_argument('--config', required=True, help='model config')
    parser.add_argument('--checkpoint', required=True, help='trained checkpoint')
    names = parser.add_mutually_exclusive_group()
    names.add_argument('--classes', help='comma-separated class names, e.g. "cat,dog" (background is '
                       'added); names never labelled in training are encoded by the text tower')
    names.add_argument('--vocabulary', help='a dataset\'s classes: voc, coco or demo')
    parser.add_argument('--out-dir', required=True,
                        help='folder of the outputs (<stem>.png, <stem>_overlay.png, <stem>.json per image); '
                        'one holding the outputs of other settings is refused without --overwrite, one '
                        'of the same settings goes on from its finished images')
    parser.add_argument('--overwrite', action='store_true',
                        help='write into an --out-dir that holds outputs of other settings, replacing them')
    parser.add_argument('--device', type=device_arg, default=None,
                        help='cpu, cuda, ... (default: CUDA if available)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_cfg_options_arg(parser, 'the CLIP: model.backbone.pretrained=P model.text_encoder.pretrained=P')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    """Segment with ``argv``; returns :func:`~mmseg_clip_wsss.apis.segment.segment_images`'s dict."""
    args = parse_args(argv)
    paths = list_images(args.inputs)
    classes = None  # the model's own; a new list is checked before the model is built
    if args.classes is not None or args.vocabulary:
        classes = resolve_classes(args.classes.split(',') if args.classes is not None else None,
                                  args.vocabulary)
    settings = json.loads(json.dumps(dict(  # as JSON holds them (tuples as lists), to compare with the record
        config=osp.abspath(args.config), checkpoint=osp.abspath(args.checkpoint), classes=classes,
        cfg_options=args.cfg_options), default=str))
    resume = check_out_dir(args.out_dir, settings, args.overwrite)  # before the model is built
    cfg = read_config(args.config)
    merge_cfg_options(cfg, args.cfg_options)
    check_config_assets(cfg, ())  # a missing weight file is named with its config key
    with naming_cfg_options(args.cfg_options):
        inferencer = WSSSInferencer(cfg, args.checkpoint, device=args.device)
    if classes is not None:
        inferencer.set_classes(classes)
    result = segment_images(inferencer, paths, args.out_dir, show_progress=not args.no_progress,
                            resume=resume, settings=settings)
    print(f'\nsegment: {len(result["written"])} image(s) into {args.out_dir} with classes '
          f'{list(inferencer.classes)}' + (f'; {len(result["skipped"])} unreadable file(s) skipped: '
                                           f'{list(result["skipped"])}' if result['skipped'] else ''))
    return result


def interrupted_line(args: argparse.Namespace) -> str:
    """What an interrupted run finished (images with their JSON, written last) and how to go on."""
    return (f'{args.out_dir} holds {finished_files(args.out_dir, "*.json")} finished image(s) (.png, '
            '_overlay.png and .json each); run the same command again to go on from them')


def run() -> None:
    run_tool(main, also=INPUT_ERRORS, interrupted=lambda: interrupted_line(parse_args()))


if __name__ == '__main__':
    run()
