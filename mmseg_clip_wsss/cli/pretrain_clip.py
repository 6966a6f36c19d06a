"""``python tools/pretrain_clip.py --data-root data/demo [--out-dir data/demo/clip] [--pairs 20000]
[--steps 1000] [--batch-size 128] [--lr 2e-3] [--amp {auto,bf16,none}] [--[no-]channels-last]
[--hard-negatives] [--workers 2] [--fresh] [--no-resume]``: contrastive pretraining of a small open_clip model on the
captioned corpus of a generated world (:func:`mmseg_clip_wsss.clip_pretrain.pipeline.pretrain_from_world`)."""
import argparse
import os.path as osp
from dataclasses import replace
from typing import Dict, List, Optional

import torch

from mmseg_clip_wsss.clip_pretrain.pipeline import pretrain_from_world
from mmseg_clip_wsss.clip_pretrain.train import PretrainConfig, native_bf16_amp
from mmseg_clip_wsss.datasets.synthetic.corpus import CorpusConfig
from mmseg_clip_wsss.datasets.synthetic.world import resolve_world
from . import INPUT_ERRORS, DefaultsHelpFormatter, int_at_least, run_tool

__all__ = ['parse_args', 'main', 'interrupted_line', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line; ``--pairs``, ``--steps`` and ``--batch-size`` below 1 are refused."""
    defaults, schedule = CorpusConfig(), PretrainConfig()
    parser = argparse.ArgumentParser(description='Contrastive pretraining of a small open_clip model on '
                                     'the captioned corpus of a generated world',
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument('--data-root', default='data/demo', help='generated dataset whose world is captioned')
    parser.add_argument('--world', help='a world preset instead of the dataset\'s world')
    parser.add_argument('--out-dir', help='output folder (default DATA_ROOT/clip)')
    parser.add_argument('--model-name', default=schedule.model_name, help='open_clip model config')
    parser.add_argument('--pretrained', help='weights to fine-tune: an open_clip pretrained tag or a local '
                        'checkpoint (default: a random init); fine-tuning wants a far smaller --lr than '
                        'pretraining (e.g. 1e-5: the default rate undoes pretrained weights in a few steps)')
    parser.add_argument('--pairs', type=int_at_least(1), default=defaults.num_pairs,
                        help='image-caption pairs')
    parser.add_argument('--steps', type=int_at_least(1), default=schedule.steps, help='optimisation steps')
    parser.add_argument('--batch-size', type=int_at_least(1), default=schedule.batch_size,
                        help='image-caption pairs per step (the contrastive negatives of each other)')
    parser.add_argument('--lr', type=float, default=schedule.lr, help='peak learning rate')
    parser.add_argument('--seed', type=int, default=schedule.seed, help='seed of the init and batch order')
    parser.add_argument('--amp', choices=['auto', 'bf16', 'none'], default='auto',
                        help="bfloat16 autocast of the image tower's forward pass (1.4x a step of the "
                        'demo CLIP with --channels-last); auto: bf16 where the CPU computes in bfloat16 '
                        'natively (AVX512-BF16 / AMX), float32 elsewhere; none: float32')
    parser.add_argument('--channels-last', action=argparse.BooleanOptionalAction, default=True,
                        help='the image tower in channels-last memory format (faster convolutions on CPU)')
    parser.add_argument('--hard-negatives', action='store_true',
                        help='every caption also as a negative with its classes swapped for others '
                        '(NegCLIP-style; the text tower encodes twice the captions: docs/demo_clip.md)')
    parser.add_argument('--workers', type=int, default=2, help='processes drawing the corpus')
    parser.add_argument('--threads', type=int, help='torch threads (default: all cores)')
    parser.add_argument('--fresh', action='store_true', help='redo the corpus and the pretraining')
    parser.add_argument('--no-resume', action='store_true', help='start over instead of resuming')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    """Pretrain with ``argv``; returns the pretraining summary."""
    args = parse_args(argv)
    defaults, schedule = CorpusConfig(), PretrainConfig()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.pretrained and osp.splitext(args.pretrained)[1] and not osp.isfile(args.pretrained):
        raise FileNotFoundError(f'pretrain_clip: --pretrained {args.pretrained} does not exist (give a '
                                'local checkpoint file or an open_clip pretrained tag).')
    world = resolve_world(args.data_root if not args.world else None, args.world)
    out_dir = args.out_dir or osp.join(args.data_root, 'clip')
    summary = pretrain_from_world(
        world, out_dir, replace(defaults, num_pairs=args.pairs),
        replace(schedule, model_name=args.model_name, steps=args.steps, batch_size=args.batch_size,
                lr=args.lr, seed=args.seed, pretrained=args.pretrained,
                amp={'auto': native_bf16_amp(), 'bf16': 'bf16', 'none': None}[args.amp],
                channels_last=args.channels_last or None, hard_negatives=args.hard_negatives or None),
        workers=args.workers, resume=not args.no_resume, fresh=args.fresh,
        show_progress=not args.no_progress)
    if summary.get('reused'):
        print(f"[pretrain_clip] {summary['checkpoint']} was made with these settings: reused (--fresh "
              'makes it again); when it was made:', flush=True)
    print(f"[pretrain_clip] {summary['checkpoint']}: loss {summary['loss']:.3f}, temperature "
          f"{1 / summary['logit_scale']:.4f}, {summary['seconds']:.0f} s (corpus "
          f"{summary['corpus_seconds']:.0f} s, training {summary['train_seconds']:.0f} s)")
    return summary


def interrupted_line(args: argparse.Namespace) -> str:
    """What an interrupted pretraining keeps (the corpus, the last checkpoint) and how it resumes."""
    out_dir = args.out_dir or osp.join(args.data_root, 'clip')
    return (f'the corpus (corpus.npz, once drawn) and the last pretraining checkpoint (latest.pth, every '
            f'{PretrainConfig().checkpoint_interval} steps) stay in {out_dir}; run the same command again '
            'to resume from them (--no-resume or --fresh start over)')


def run() -> None:
    run_tool(main, also=INPUT_ERRORS, interrupted=lambda: interrupted_line(parse_args()))


if __name__ == '__main__':
    run()
