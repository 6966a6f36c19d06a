"""Command lines of ``tools/pretrain_clip.py`` and ``tools/eval_clip.py``."""
import argparse
import os.path as osp
from dataclasses import replace
from typing import Dict, List, Optional

import torch

from mmseg_clip_wsss.demo.world import WorldConfig, load_world, world_preset
from mmseg_clip_wsss.models.open_clip_models import DEMO_CLIP_NAME
from .corpus import CorpusConfig, build_corpus
from .pipeline import evaluate_checkpoint, pretrain_from_world, write_json
from .train import PretrainConfig

__all__ = ['pretrain_main', 'eval_main', 'resolve_world']


def resolve_world(data_root: Optional[str], world: Optional[str]) -> WorldConfig:
    """``--world`` (a preset name) if given, else the world of ``--data-root``'s ``demo_info.json``."""
    if world:
        return world_preset(world)
    if not data_root:
        raise SystemExit('give --data-root (a generated dataset) or --world (a preset name).')
    return load_world(data_root)


def pretrain_main(argv: Optional[List[str]] = None) -> Dict:
    defaults, schedule = CorpusConfig(), PretrainConfig()
    parser = argparse.ArgumentParser(description='Contrastive pretraining of a small open_clip model on '
                                     'the captioned corpus of a generated world',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--data-root', default='data/demo', help='generated dataset whose world is captioned')
    parser.add_argument('--world', help='a world preset instead of the dataset\'s world')
    parser.add_argument('--out-dir', help='output folder (default DATA_ROOT/clip)')
    parser.add_argument('--model-name', default=schedule.model_name, help='open_clip model config')
    parser.add_argument('--pairs', type=int, default=defaults.num_pairs, help='image-caption pairs')
    parser.add_argument('--steps', type=int, default=schedule.steps)
    parser.add_argument('--batch-size', type=int, default=schedule.batch_size)
    parser.add_argument('--lr', type=float, default=schedule.lr)
    parser.add_argument('--seed', type=int, default=schedule.seed, help='seed of the init and batch order')
    parser.add_argument('--workers', type=int, default=2, help='processes drawing the corpus')
    parser.add_argument('--threads', type=int, help='torch threads (default: all cores)')
    parser.add_argument('--fresh', action='store_true', help='redo the corpus and the pretraining')
    parser.add_argument('--no-resume', action='store_true', help='start over instead of resuming')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    for name in ('pairs', 'steps', 'batch_size'):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    world = resolve_world(args.data_root if not args.world else None, args.world)
    out_dir = args.out_dir or osp.join(args.data_root, 'clip')
    summary = pretrain_from_world(
        world, out_dir, replace(defaults, num_pairs=args.pairs),
        replace(schedule, model_name=args.model_name, steps=args.steps, batch_size=args.batch_size,
                lr=args.lr, seed=args.seed),
        workers=args.workers, resume=not args.no_resume, fresh=args.fresh,
        show_progress=not args.no_progress)
    print(f"[pretrain_clip] {summary['checkpoint']}: loss {summary['loss']:.3f}, temperature "
          f"{1 / summary['logit_scale']:.4f}, {summary['seconds']:.0f} s (corpus "
          f"{summary['corpus_seconds']:.0f} s, training {summary['train_seconds']:.0f} s)")
    return summary


def eval_main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description='Zero-shot figures of a CLIP and of the random tower',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('checkpoint', help='open_clip state dict (tools/pretrain_clip.py writes clip.pt)')
    parser.add_argument('--data-root', default='data/demo', help='dataset with labelled images')
    parser.add_argument('--world', help='world preset (default: the dataset\'s world)')
    parser.add_argument('--split', default='val', help='split of the multi-label mAP')
    parser.add_argument('--model-name', default=DEMO_CLIP_NAME)
    parser.add_argument('--heldout-pairs', type=int, default=1000, help='held-out captions of the recall')
    parser.add_argument('--out', help='JSON output (default: beside the checkpoint, eval.json)')
    args = parser.parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'eval_clip: checkpoint {args.checkpoint} does not exist; make it with '
                         'tools/pretrain_clip.py.')
    world = resolve_world(args.data_root, args.world)
    heldout = build_corpus(world, CorpusConfig(num_pairs=args.heldout_pairs, seed=CorpusConfig().seed + 1))
    result = dict(
        pretrained=evaluate_checkpoint(args.checkpoint, args.model_name, world, args.data_root, args.split,
                                       heldout),
        random=evaluate_checkpoint(None, args.model_name, world, args.data_root, args.split, heldout),
        split=args.split, checkpoint=osp.abspath(args.checkpoint))
    out = args.out or osp.join(osp.dirname(args.checkpoint), 'eval.json')
    write_json(out, result)
    for name in ('pretrained', 'random'):
        r = result[name]
        print(f"[eval_clip] {name:10s} zero-shot mAP {r['zero_shot_map']:.1f}  retrieval R@1 "
              f"image->text {r['image_to_text_r1']:.1f} text->image {r['text_to_image_r1']:.1f}")
    print(f'[eval_clip] wrote {out}')
    return result
