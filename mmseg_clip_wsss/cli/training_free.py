"""``python -m mmseg_clip_wsss.cli.training_free [--data-root data/demo] [--clip data/demo/clip/clip.pt]
[--out-dir work_dirs/demo/training_free] [--row row.json] [--config CONFIG] [--split train]
[--key training_free] [--overwrite]``: a training-free row of the demo (MaskCLIP's dense map by
default, CLIP-ES with ``--config configs/clip_es/clip-es_demo-clip_demo.py``, any training-free
config; :mod:`mmseg_clip_wsss.demo.training_free`), printed as JSON."""
import argparse
import json
from typing import Dict, List, Optional

from mmseg_clip_wsss.datasets.atomic_files import write_json_atomically
from mmseg_clip_wsss.demo.training_free import TRAINING_FREE_CONFIG, training_free_row
from . import INPUT_ERRORS, refuse_existing, run_tool

__all__ = ['parse_args', 'main', 'interrupted_line', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='training-free pseudo masks of the demo data')
    parser.add_argument('--data-root', default='data/demo',
                        help='the demo data in the VOC layout: images, GT masks and the split\'s label file '
                        '(default data/demo; tools/make_demo_data.py writes it)')
    parser.add_argument('--clip', default=None, help='CLIP checkpoint (default: the config\'s, under '
                        'DATA_ROOT: DATA_ROOT/clip/clip.pt for the demo CLIP)')
    parser.add_argument('--out-dir', default='work_dirs/demo/training_free',
                        help='folder of the pseudo masks, metrics.json and protocol.json (default '
                        'work_dirs/demo/training_free); one with files in it is refused without --overwrite')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s own)')
    parser.add_argument('--row', default=None, help='JSON file to write the row to')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the masks of an earlier run in --out-dir and an existing --row file '
                        '(the masks are always made anew, so that the time is that of making them)')
    parser.add_argument('--config', default=TRAINING_FREE_CONFIG,
                        help='training-free config (default: MaskCLIP\'s dense map; '
                        'configs/clip_es/clip-es_demo-clip_demo.py: CLIP-ES)')
    parser.add_argument('--split', default='train', help='split to make and score masks of (default train)')
    parser.add_argument('--key', default='training_free',
                        help='prefix of the row\'s keys; with --split other than train, followed by _SPLIT '
                        '(training_free_val_miou)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    """The training-free row with ``argv``; returns it."""
    args = parse_args(argv)
    refuse_existing(args.out_dir, '--out-dir', args.overwrite)
    refuse_existing(args.row, '--row', args.overwrite)
    row = training_free_row(args.data_root, args.clip, args.out_dir, args.threads, args.config, args.split,
                            args.key)
    if args.row:
        write_json_atomically(args.row, row)
    print(json.dumps(row))
    return row


def interrupted_line(args: argparse.Namespace) -> str:
    """What an interrupted row left (masks of an unfinished run, no row) and the command that runs it
    again: the same with ``--overwrite``, as ``--out-dir`` with files in it is refused without it."""
    again = 'the same command again' if args.overwrite else 'the same command with --overwrite'
    return (f'the masks in {args.out_dir} are those of an unfinished run and no row was written; run '
            f'{again} (it makes every mask anew, so that the time is that of making them)')


def run() -> None:
    run_tool(main, also=INPUT_ERRORS, interrupted=lambda: interrupted_line(parse_args()))


if __name__ == '__main__':
    run()
