"""``python -m mmseg_clip_wsss.cli.open_vocab CONFIG CHECKPOINT [--data-root data/demo] [--clip CLIP]
[--combine COMBINE_CONFIG] [--calibration FILE] [--out figures.json] [--overwrite]``: open-vocabulary and tagging
figures of a demo stage-1 model (:mod:`mmseg_clip_wsss.demo.open_vocab`), with ``--combine`` also those
of the trained head + dense zero-shot map combination (:mod:`mmseg_clip_wsss.demo.combined_open_vocab`)."""
import argparse
import os.path as osp
from typing import Dict, List, Optional

from mmseg_clip_wsss.demo.open_vocab import open_vocab_figures
from . import INPUT_ERRORS, refuse_existing, report_json, run_tool

__all__ = ['parse_args', 'main', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Open-vocabulary and tagging figures of a demo stage-1 model')
    parser.add_argument('config', help='stage-1 config (text-guided head with learned prompts)')
    parser.add_argument('checkpoint', help='its trained checkpoint')
    parser.add_argument('--data-root', default='data/demo', help='demo data with the openvocab split (default data/demo)')
    parser.add_argument('--clip', default=None, help='the CLIP of both towers (default DATA_ROOT/clip/clip.pt)')
    parser.add_argument('--combine', default=None, metavar='COMBINE_CONFIG',
                        help='also the figures of the head + dense zero-shot map combination of this config '
                        '(configs/open_vocab/combined-maskclip_demo-clip_demo.py)')
    parser.add_argument('--calibration', default=None,
                        help="the combination's calibration JSON: read when it exists, else fitted on the "
                        "config's fit split and written (default with --out: OUT's stem + "
                        "'_calibration.json')")
    parser.add_argument('--out', default=None,
                        help='JSON file to write the figures to; an existing one is refused without --overwrite')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out file')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    """Open-vocabulary and tagging figures with ``argv``; returns them."""
    args = parse_args(argv)
    refuse_existing(args.out, '--out', args.overwrite)
    calibration = args.calibration
    if args.combine and calibration is None and args.out:
        calibration = osp.splitext(args.out)[0] + '_calibration.json'
    result = open_vocab_figures(args.config, args.checkpoint, args.data_root,
                                args.clip or osp.join(args.data_root, 'clip', 'clip.pt'),
                                combine=args.combine, calibration=calibration)
    return report_json(result, args.out)


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
