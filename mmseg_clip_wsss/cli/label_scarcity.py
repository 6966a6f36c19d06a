"""Label scarcity on the demo data: N labelled images, + CLIP tags, + descriptions, + vague descriptions.

::

    python tools/label_scarcity.py [--work-dir work_dirs/label_scarcity] [--data-root data/demo]
        [--clip data/demo/clip/clip.pt] [--arms ...] [--ns 0 30 300] [--seeds 0 1 2]
        [--iters 150] [--stage2-iters 150] [--batch-size 8] [--labelled-share size|SHARE] [--threshold-rule shared|per-class]
        [--jobs 2] [--fresh]

The study schedule (stage 1: 150 iterations of batch 8, stage 2: 150, pseudo masks at one scale with
flip and PAR) is shorter than the demo's so that the whole study fits about an hour of a 2-core CPU
(29 min measured on an idle 2-core CPU; longer schedules: ``--iters``, ``--stage2-iters``).
The runs and what they write: :mod:`mmseg_clip_wsss.benchmark.label_scarcity`.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional

from mmseg_clip_wsss.apis.tagging import THRESHOLD_RULES
from mmseg_clip_wsss.benchmark.label_scarcity import ARMS, DEFAULTS, NS, run_label_scarcity
from . import INPUT_ERRORS, int_at_least, run_tool

__all__ = ['parse_args', 'main', 'run']


def _share(text: str):
    """``--labelled-share``: ``'size'`` or a float in (0, 1)."""
    if text == 'size':
        return text
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f'{text!r} is neither a share in (0, 1) nor "size"')
    return value


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Label scarcity on the demo data: N labelled images, '
                                     'and what CLIP tags and descriptions of unlabelled images add')
    parser.add_argument('--work-dir', default='work_dirs/label_scarcity',
                        help='folder of the runs and the table (default work_dirs/label_scarcity); a step '
                        'finished there with the same settings is skipped; with other settings (another '
                        '--iters, --ns, ...) their steps run and summary.json and label_scarcity.md are '
                        'written anew with this command\'s cells alone (a line says so)')
    parser.add_argument('--data-root', default='data/demo', help='the demo data (default data/demo; tools/make_demo_data.py writes it)')
    parser.add_argument('--clip', help='CLIP checkpoint (default: DATA_ROOT/clip/clip.pt)')
    parser.add_argument('--arms', nargs='+', default=list(ARMS), choices=ARMS,
                        help='what the N labelled images are given beside them (default: all)')
    parser.add_argument('--ns', type=int_at_least(0), nargs='+', default=list(NS), help=f'numbers of labelled images (default {" ".join(map(str, NS))})')
    parser.add_argument('--seeds', type=int_at_least(0), nargs='+', default=[0, 1, 2],
                        help='seeds of every arm and N (default 0 1 2; the table gives mean and std)')
    parser.add_argument('--iters', type=int_at_least(1), help=f'stage-1 iterations (default {DEFAULTS["iters"]})')
    parser.add_argument('--stage2-iters', type=int_at_least(1),
                        help=f'stage-2 iterations (default {DEFAULTS["stage2_iters"]})')
    parser.add_argument('--stage2-n', type=int, help=f'N whose runs train stage 2 (default {DEFAULTS["stage2_n"]}; '
                        'an N not in --ns: no stage 2)')
    parser.add_argument('--batch-size', type=int_at_least(1), help=f'stage-1 batch (default {DEFAULTS["batch_size"]})')
    parser.add_argument('--pool-size', type=int_at_least(1), help=f'images of the described pool (default {DEFAULTS["pool_size"]})')
    parser.add_argument('--pool-seed', type=int_at_least(0), help=f'seed of the pool (default {DEFAULTS["pool_seed"]})')
    parser.add_argument('--labelled-share', type=_share, metavar='SHARE|size',
                        help=f'share of the draws taken from the N labelled images, in (0, 1), or "size": by '
                        f'the sources\' sizes, a uniform draw over all images (default {DEFAULTS["labelled_share"]})')
    parser.add_argument('--threshold-rule', choices=THRESHOLD_RULES,
                        help='how the tags arm\'s thresholds are fitted on the N labelled images: one shared '
                        'threshold in units of each class\'s spread over the tagged images, or each class '
                        f'its own (default {DEFAULTS["threshold_rule"]}; tools/tag_images.py --threshold-rule)')
    parser.add_argument('--jobs', type=int_at_least(1), default=2, help='steps run side by side (default 2)')
    parser.add_argument('--threads', type=int_at_least(1), help='CPU threads of every step (default: the cores / --jobs)')
    parser.add_argument('--fresh', action='store_true', help='redo finished steps')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    """Run the study with ``argv``; prints the table and returns the summary."""
    args = parse_args(argv)
    command = 'python tools/label_scarcity.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    summary = run_label_scarcity(args.work_dir, args.data_root, args.clip, args.arms, args.ns, args.seeds,
                                 jobs=args.jobs, threads=args.threads, fresh=args.fresh, command=command.strip(),
                                 iters=args.iters, stage2_iters=args.stage2_iters, stage2_n=args.stage2_n,
                                 batch_size=args.batch_size, pool_size=args.pool_size, pool_seed=args.pool_seed,
                                 labelled_share=args.labelled_share, threshold_rule=args.threshold_rule)
    with open(osp.join(args.work_dir, 'label_scarcity.md')) as f:
        print(f.read())
    return summary


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
