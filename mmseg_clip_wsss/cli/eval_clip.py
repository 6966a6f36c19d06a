"""``python tools/eval_clip.py CHECKPOINT --data-root data/demo [--split val] [--model-name M]
[--heldout-pairs 1000] [--out eval.json]``: zero-shot figures of a CLIP and of the random tower of
the same architecture for contrast (:mod:`mmseg_clip_wsss.clip_pretrain.pipeline`)."""
import argparse
import os.path as osp
from typing import Dict, List, Optional

from mmseg_clip_wsss.clip_pretrain.pipeline import evaluate_checkpoint, write_json
from mmseg_clip_wsss.datasets.synthetic.corpus import CorpusConfig, build_corpus
from mmseg_clip_wsss.datasets.synthetic.world import resolve_world
from mmseg_clip_wsss.models.open_clip_models import DEMO_CLIP_NAME
from . import INPUT_ERRORS, DefaultsHelpFormatter, run_tool

__all__ = ['parse_args', 'main', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Zero-shot figures of a CLIP and of the random tower',
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument('checkpoint', help='open_clip state dict (tools/pretrain_clip.py writes clip.pt)')
    parser.add_argument('--data-root', default='data/demo', help='dataset with labelled images')
    parser.add_argument('--world', help='world preset (default: the dataset\'s world)')
    parser.add_argument('--split', default='val', help='split of the multi-label mAP')
    parser.add_argument('--model-name', default=DEMO_CLIP_NAME,
                        help=f'open_clip model config of the checkpoint (default {DEMO_CLIP_NAME}, the demo CLIP)')
    parser.add_argument('--heldout-pairs', type=int, default=1000, help='held-out captions of the recall')
    parser.add_argument('--out', help='JSON output (default: beside the checkpoint, eval.json)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    """Evaluate with ``argv``; returns the figures of the pretrained and the random tower."""
    args = parse_args(argv)
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


def run() -> None:
    run_tool(main, also=INPUT_ERRORS)


if __name__ == '__main__':
    run()
