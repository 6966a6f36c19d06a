"""``python -m mmseg_clip_wsss.cli.unlabelled --unlabelled-root U --clip CLIP [--seeds 0 1 2]``: stage 1
on the labelled images alone and with CLIP-tagged unlabelled images beside them
(:mod:`mmseg_clip_wsss.demo.unlabelled`)."""
import argparse
import json
from typing import Dict, List, Optional

from mmseg_clip_wsss.demo.unlabelled import compare_unlabelled
from . import INPUT_ERRORS, run_tool

__all__ = ['parse_args', 'main', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Stage 1 on labelled images alone and with CLIP-tagged unlabelled images')
    parser.add_argument('--data-root', default='data/demo',
                        help='the labelled demo data; its train split is trained on and scored (default data/demo)')
    parser.add_argument('--unlabelled-root', required=True,
                        help='the unlabelled images, tagged: ImageLabels/train_clip.txt (tools/tag_images.py)')
    parser.add_argument('--clip', required=True, help='CLIP checkpoint of the stage-1 towers')
    parser.add_argument('--work-dir', default='work_dirs/unlabelled',
                        help='folder of the runs and summary.json (default work_dirs/unlabelled)')
    parser.add_argument('--iters', type=int, default=300, help='stage-1 iterations of every run (default 300)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='seeds of both arms (default 0 1 2; mean and std reported)')
    parser.add_argument('--tagged-loss-weight', type=float, default=1.0,
                        help='loss weight of the tagged images against the labelled ones (default 1.0)')
    parser.add_argument('--threads', type=int, default=2, help='CPU threads of every step (default 2)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    """The labelled vs labelled + tagged comparison with ``argv``; returns it."""
    args = parse_args(argv)
    result = compare_unlabelled(args.data_root, args.unlabelled_root, args.clip, args.work_dir, args.iters,
                                args.seeds, args.tagged_loss_weight, args.threads)
    print(json.dumps(result, indent=2))
    return result


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
