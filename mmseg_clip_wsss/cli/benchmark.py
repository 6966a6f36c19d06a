"""Speed, memory, FLOPs and size of our models next to mmseg's Swin-T UperNet, measured in one run.

::

    python tools/benchmark.py                       # 512x512, the default comparison set
    OMP_NUM_THREADS=2 python tools/benchmark.py --input-size 256 --repeats 3     # small CPU run
    python tools/benchmark.py --device cuda         # CUDA: peak memory = max allocated
    python tools/benchmark.py --configs upernet=mmseg::swin/...py ours=configs/clip_wsss_swin_voc.py \\
        --baseline upernet

Pseudo masks stage by stage against their floor (the forward passes of each protocol), and dense CRF
with 1 and 2 workers (``pseudo_masks.json`` / ``.md``; see ``mmseg_clip_wsss.benchmark.pseudo_masks``)::

    OMP_NUM_THREADS=1 python tools/benchmark.py --pseudo-masks --threads 1 --workers 1
    python tools/benchmark.py --pseudo-masks --configs demo=configs/demo/clip_wsss_swin_demo.py \
        --input-size 128 --pseudo-mask-images 16 --no-crf

Every model starts from random weights (nothing is downloaded). Timings are taken round-robin over the
models (median of ``--repeats`` rounds after ``--warmup``), peak memory in a fresh process per model.
Writes ``benchmark.json``, ``benchmark.md`` and ``profile_<model>.txt`` to ``--out-dir``
(see ``mmseg_clip_wsss.benchmark`` and docs/benchmarks.md).
"""
import argparse
import dataclasses
import os
import shlex
import sys
from typing import List, Optional

import torch

from mmseg_clip_wsss.benchmark import (DEFAULT_BASELINE, DEFAULT_CAM_MODEL, DEFAULT_PSEUDO_MASK_SPECS,
                                       DEFAULT_SPECS, DEFAULT_TARGET_MODEL, PseudoMaskSpec,
                                       parse_model_arg, run_benchmark, run_pseudo_mask_benchmark)
from . import device_arg, refuse_existing, run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Benchmark models side by side (one run, interleaved)')
    parser.add_argument('--configs', nargs='+', metavar='[NAME=]CONFIG',
                        help='models to compare (default: mmseg Swin-T UperNet, ours, ours without '
                        'RSC-A, the CAM baseline); CONFIG may be an mmseg:: config')
    parser.add_argument('--baseline', default=None,
                        help=f'name of the model the ratios refer to (default: {DEFAULT_BASELINE} '
                        'for the default set, else the first model)')
    parser.add_argument('--input-size', type=int, nargs='+',
                        help='H [W] of the inputs (default 512; 256 for a quick CPU run; with '
                        "--pseudo-masks: the size of the models given by --configs, default each "
                        "default model's own)")
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds (median reported)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    parser.add_argument('--batch-size', type=int, default=1, help='inference batch')
    parser.add_argument('--train-batch-size', type=int, default=2, help='training-step batch')
    parser.add_argument('--device', type=device_arg, default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='cpu, cuda, cuda:0 ... (default: cuda if available)')
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads (default: as OMP_NUM_THREADS / torch decides)')
    parser.add_argument('--out-dir', default='work_dirs/benchmark',
                        help='folder of benchmark.json, benchmark.md and the profiles; one with files in '
                        'it is refused without --overwrite')
    parser.add_argument('--overwrite', action='store_true',
                        help='write into an --out-dir with files in it, replacing the results there')
    parser.add_argument('--num-classes', type=int,
                        help='num_classes of the heads of models without a text encoder')
    parser.add_argument('--pseudo-mask-models', nargs='*', default=None,
                        help=f'models whose pseudo-mask throughput is measured (default: '
                        f'{DEFAULT_TARGET_MODEL}); none: skip')
    parser.add_argument('--pseudo-mask-repeats', type=int, help='timed rounds of the pseudo-mask '
                        'settings (default: min(--repeats, 3))')
    parser.add_argument('--target-model', nargs='+', default=[DEFAULT_TARGET_MODEL],
                        help='our model(s) whose targets are checked')
    parser.add_argument('--cam-model', default=DEFAULT_CAM_MODEL,
                        help='the CAM baseline the inference time of the target model(s) is checked '
                        f'against (default: {DEFAULT_CAM_MODEL})')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory subprocesses')
    parser.add_argument('--no-train', action='store_true', help='skip the training-step timing')
    parser.add_argument('--no-profile', action='store_true', help='skip the torch.profiler reports')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random inputs and of the memory banks filled (default 0)')
    _pseudo_mask_args(parser)
    args = parser.parse_args(argv)
    _check_pseudo_mask_args(parser, args)
    return args


def _check_pseudo_mask_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse (``parser.error``, exit 2) ``--pseudo-masks`` options without it, contradictory ones
    and counts or sizes below 1."""
    if not args.pseudo_masks and (args.crf_only or args.no_crf or args.amp):
        parser.error('--crf-only, --no-crf and --amp are options of --pseudo-masks: add --pseudo-masks.')
    if args.crf_only and args.no_crf:
        parser.error('--crf-only and --no-crf exclude each other.')
    if args.crf_images < 1 or min(args.crf_size) < 1 or min(args.crf_workers) < 1:
        parser.error('--crf-images, --crf-size and --crf-workers must be at least 1.')


def _pseudo_mask_args(parser: argparse.ArgumentParser) -> None:
    """The options of ``--pseudo-masks``."""
    group = parser.add_argument_group('--pseudo-masks: stages of pseudo-mask generation vs its floor')
    group.add_argument('--pseudo-masks', action='store_true',
                       help='measure pseudo-mask generation stage by stage against the forward passes '
                       'of its protocol (instead of the model comparison)')
    group.add_argument('--pseudo-mask-images', type=int,
                       help='generated images per model (default: 48 for the 128x128 models, 4 for '
                       'the others; 8 for --configs)')
    group.add_argument('--workers', type=int, default=1,
                       help='post-processing processes of the run with workers (default 1)')
    group.add_argument('--loader-workers', type=int, default=0, help='data-loader processes')
    group.add_argument('--amp', action='store_const', const='bf16',
                       help='bfloat16 autocast for every forward pass (floor included); the masks are '
                       'compared with fp32 ones')
    group.add_argument('--no-crf', action='store_true',
                       help='skip the separate dense-CRF run of 1 vs 2 workers (the models keep the '
                            'refinement of their own protocols, dense CRF included)')
    group.add_argument('--crf-only', action='store_true', help='only the dense-CRF worker scaling')
    group.add_argument('--crf-images', type=int, default=16, help='images of the dense-CRF scaling')
    group.add_argument('--crf-size', type=int, nargs=2, default=[384, 512], metavar=('H', 'W'),
                       help='image size of the dense-CRF scaling (default 384 512)')
    group.add_argument('--crf-workers', type=int, nargs='+', default=[1, 2],
                       help='worker counts of the dense-CRF scaling (the first is the reference)')


def _pseudo_mask_specs(args: argparse.Namespace) -> List[PseudoMaskSpec]:
    """The default models (their own sizes and image counts unless given), or ``--configs`` at
    ``--input-size`` (default 256)."""
    size = (args.input_size[0], args.input_size[-1]) if args.input_size else None
    if not args.configs:
        return [dataclasses.replace(s, size=size or s.size, images=args.pseudo_mask_images or s.images)
                for s in DEFAULT_PSEUDO_MASK_SPECS]
    return [PseudoMaskSpec(m.name, m.config, size or (256, 256), images=args.pseudo_mask_images)
            for m in map(parse_model_arg, args.configs)]


def _run_pseudo_masks(args: argparse.Namespace, command: str):
    """``--pseudo-masks``: :func:`run_pseudo_mask_benchmark` with the command line's options."""
    return run_pseudo_mask_benchmark(
        [] if args.crf_only else _pseudo_mask_specs(args), out_dir=args.out_dir, num_images=args.pseudo_mask_images or 8,
        workers=args.workers, loader_workers=args.loader_workers, batch_size=args.batch_size,
        repeats=args.pseudo_mask_repeats or min(args.repeats, 3), device=args.device, seed=args.seed,
        crf_config=None if args.no_crf else DEFAULT_PSEUDO_MASK_SPECS[3].config,
        crf_size=tuple(args.crf_size), crf_images=args.crf_images, crf_workers=args.crf_workers,
        amp=args.amp, command=command)


def main(argv: Optional[List[str]] = None):
    args = parse_args(argv)
    refuse_existing(args.out_dir, '--out-dir', args.overwrite)  # before any measurement
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = str(args.threads)
    command = ' '.join(shlex.quote(a) for a in ['python', 'tools/benchmark.py', *sys.argv[1:]]) \
        if argv is None else ' '.join(['python', 'tools/benchmark.py', *argv])
    if args.pseudo_masks:
        return _run_pseudo_masks(args, command)
    if args.configs:
        specs = [parse_model_arg(c) for c in args.configs]
        known = {spec.config: spec for spec in DEFAULT_SPECS}
        for spec in specs:  # a config of the default set keeps its description and overrides
            if spec.config in known:
                spec.description = known[spec.config].description
                spec.cfg_options = dict(known[spec.config].cfg_options)
        baseline = args.baseline or specs[0].name
    else:
        specs = list(DEFAULT_SPECS)
        baseline = args.baseline or DEFAULT_BASELINE
    pseudo = args.pseudo_mask_models
    if pseudo is None:
        pseudo = [DEFAULT_TARGET_MODEL]
    return run_benchmark(
        specs, baseline=baseline, input_size=args.input_size or [512], repeats=args.repeats,
        warmup=args.warmup, batch_size=args.batch_size, train_batch_size=args.train_batch_size,
        device=args.device, out_dir=args.out_dir, memory=not args.no_memory, train=not args.no_train,
        profile=not args.no_profile, pseudo_mask_models=pseudo,
        pseudo_mask_repeats=args.pseudo_mask_repeats, target_model=args.target_model,
        cam_model=args.cam_model, num_classes=args.num_classes, seed=args.seed, command=command)


def run() -> None:
    run_tool(main, also=(FileExistsError, ))


if __name__ == '__main__':
    run()
