"""``python -m mmseg_clip_wsss.cli.benchmark_memory --spec JSON ...``: the peak memory of one model in a
fresh process (:mod:`mmseg_clip_wsss.benchmark.memory`; ``tools/benchmark.py`` runs it per model)."""
import argparse
import json
from typing import List, Optional

from mmseg_clip_wsss.benchmark.memory import MARKER, measure
from . import device_arg, run_tool

__all__ = ['parse_args', 'main', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Peak memory of one model (used by benchmark.py)')
    parser.add_argument('--spec', required=True, help='ModelSpec as JSON')
    parser.add_argument('--input-size', type=int, nargs='+', default=[512], help='H [W] of the inputs (default 512)')
    parser.add_argument('--batch-size', type=int, default=1, help='inference batch (default 1)')
    parser.add_argument('--train-batch-size', type=int, default=2, help='training-step batch (default 2)')
    parser.add_argument('--device', type=device_arg, default='cpu', help='cpu, cuda, cuda:0 ... (default cpu)')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: as torch decides)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random inputs and of the memory banks filled (default 0)')
    parser.add_argument('--num-classes', type=int,
                        help='num_classes of the heads of models without a text encoder')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Measure with ``argv`` and print the result after :data:`MARKER` (read by the parent)."""
    args = parse_args(argv)
    result = measure(args)
    print(MARKER + json.dumps(result), flush=True)


def run() -> None:
    run_tool(main)


if __name__ == '__main__':
    run()
