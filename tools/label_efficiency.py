"""Label efficiency on the demo data: stage 2 on our pseudo masks vs. the same model on GT masks.

::

    python tools/label_efficiency.py [--seeds 0 1 2] [--work-dir work_dirs/label_efficiency]
                                     [--data-root data/demo] [--iters N] [--jobs 2]

For every seed (``randomness.seed``) and stage-1 variant -- ours (learned prompts + RSC-A),
hand-written prompts, ours without RSC-A (optionally the plain CAM baseline) -- it trains stage 1 from
image-level labels, writes and scores its pseudo masks on the train split, and trains the stage-2
segmenter (``configs/demo/stage2_swin_upernet_demo.py``, backbone initialised from that stage-1
checkpoint, as ``tools/run_demo.py`` does) on them. The fully supervised upper bound is the same
stage-2 run on the GT masks (``SegmentationClass``), initialised from the stage-1 checkpoint of ours of
the same seed, so only the training masks differ. Every step is a ``tools/run_demo.py`` step (same
commands, logs, skip-if-finished / resume behaviour).

Writes ``label_efficiency.json`` (every run and the mean ± std summary) and ``label_efficiency.md``
(the table of docs/benchmarks.md) into the work dir, after every finished run.
"""
import argparse
import json
import os
import os.path as osp
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import run_demo  # noqa: E402  (the demo's steps: train, pseudo_masks, last_val_miou, options)

#: variant -> (stage-1 config, description, uses the text encoder)
VARIANTS = {
    'ours': ('configs/demo/clip_wsss_swin_demo.py', 'ours: learned prompts + RSC-A', True),
    'handcrafted': ('configs/demo/clip_wsss_swin_demo_handcrafted.py',
                    'hand-written prompts + RSC-A', True),
    'no-rsca': ('configs/demo/clip_wsss_swin_demo_no-rsca.py', 'learned prompts, no RSC-A', True),
    'cam_baseline': ('configs/demo/cam_baseline_swin_demo.py', 'plain CAM baseline', False),
}
DEFAULT_VARIANTS = ('ours', 'handcrafted', 'no-rsca')
FULL = 'gt_masks'
DESCRIPTIONS = dict({k: v[1] for k, v in VARIANTS.items()},
                    **{FULL: 'stage 2 on GT masks (fully supervised upper bound)'})


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Label-efficiency table on the demo data')
    parser.add_argument('--work-dir', default='work_dirs/label_efficiency')
    parser.add_argument('--data-root', default='data/demo', help='demo data (generated if absent)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--variants', nargs='+', default=list(DEFAULT_VARIANTS),
                        choices=sorted(VARIANTS), help='stage-1 variants (the GT upper bound is '
                        'always run; it starts from the stage-1 checkpoint of "ours")')
    parser.add_argument('--iters', type=int, help='training iterations of every model (default: config)')
    parser.add_argument('--jobs', type=int, default=2, help='chains of steps run side by side')
    parser.add_argument('--threads', type=int,
                        help='CPU threads of every step (default: the cores / --jobs)')
    parser.add_argument('--fresh', action='store_true', help='redo finished steps')
    return parser.parse_args(argv)


def _stage2_options(options: List[str], seg_map_dir: str, init_checkpoint: Optional[str]) -> List[str]:
    out = options + [f'train_dataloader.dataset.data_prefix.seg_map_path={seg_map_dir}']
    if init_checkpoint:  # key by key: mmengine's DictAction cannot parse a "dict(...)" value
        out += ['model.backbone.init_cfg._delete_=True', 'model.backbone.init_cfg.type=Pretrained',
                'model.backbone.init_cfg.prefix=backbone.',
                f'model.backbone.init_cfg.checkpoint={init_checkpoint}']
    return out


def run_chain(seed: int, variant: str, args: argparse.Namespace, data_root: str, tiny_clip: str,
              threads: int, record) -> None:
    """Stage 1 -> pseudo masks -> stage 2 of one (seed, variant); for ``ours`` also the GT run."""
    from mmseg_clip_wsss.benchmark.label_efficiency import FULL_VARIANT
    config, _, uses_text = VARIANTS[variant]
    seed_dir = osp.join(args.work_dir, f'seed{seed}')
    run_dir = osp.join(seed_dir, variant)
    options = run_demo._common_options(data_root, args.iters) + [f'randomness.seed={seed}']
    extra = [f'model.text_encoder.pretrained={tiny_clip}'] if uses_text else []
    tag = f'{variant} s{seed}'
    checkpoint = run_demo.train(tag, config, run_dir, options + extra,
                                run_demo._max_iters(config, args.iters), args.fresh, threads)
    pseudo_dir = osp.join(run_dir, 'pseudo_masks')
    metrics = run_demo.pseudo_masks(tag, config, checkpoint, pseudo_dir, options + extra, args.fresh,
                                    threads)
    stage2_iters = run_demo._max_iters(run_demo.STAGE2, args.iters)
    stage2_dir = osp.join(seed_dir, f'stage2_{variant}')
    run_demo.train(f'stage2 {tag}', run_demo.STAGE2, stage2_dir,
                   _stage2_options(options, pseudo_dir, checkpoint), stage2_iters, args.fresh, threads)
    record(dict(variant=variant, seed=seed, stage2_miou=run_demo.last_val_miou(stage2_dir),
                pseudo_mask_miou=float(metrics['mIoU']), stage1_checkpoint=checkpoint,
                stage2_dir=stage2_dir))
    if variant == 'ours':
        gt_dir = osp.join(seed_dir, f'stage2_{FULL_VARIANT}')
        run_demo.train(f'stage2 GT s{seed}', run_demo.STAGE2, gt_dir,
                       _stage2_options(options, osp.join(data_root, 'SegmentationClass'), checkpoint),
                       stage2_iters, args.fresh, threads)
        record(dict(variant=FULL_VARIANT, seed=seed, stage2_miou=run_demo.last_val_miou(gt_dir),
                    pseudo_mask_miou=None, stage2_dir=gt_dir))


def write_outputs(work_dir: str, runs: List[Dict], meta: Dict) -> Dict:
    """``label_efficiency.json`` / ``.md`` from the runs so far; returns the summary."""
    from mmseg_clip_wsss.benchmark.label_efficiency import (aggregate_label_efficiency,
                                                            format_label_efficiency_markdown)
    order = {name: i for i, name in enumerate([FULL, *VARIANTS])}
    runs = sorted(runs, key=lambda r: (order.get(r['variant'], 99), r['seed']))
    summary = aggregate_label_efficiency(runs, FULL, DESCRIPTIONS)
    with open(osp.join(work_dir, 'label_efficiency.json'), 'w') as f:
        json.dump(dict(meta, runs=runs, summary=summary), f, indent=2)
    with open(osp.join(work_dir, 'label_efficiency.md'), 'w') as f:
        f.write(format_label_efficiency_markdown(summary))
        f.write(f'\nCommand: `{meta["command"]}`\n')
    return summary


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    start = time.time()
    os.chdir(run_demo.REPO)
    args.work_dir = osp.abspath(args.work_dir)
    data_root = osp.abspath(args.data_root)
    os.makedirs(args.work_dir, exist_ok=True)
    jobs = max(1, min(args.jobs, 2))
    threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)

    from mmseg_clip_wsss.models.text import write_random_clip_checkpoint
    if not osp.isfile(osp.join(data_root, 'demo_info.json')):
        from make_demo_data import make_demo_data
        make_demo_data(data_root)
    tiny_clip = osp.join(data_root, 'wsss_tiny_clip.pt')
    if not osp.isfile(tiny_clip):
        write_random_clip_checkpoint(tiny_clip, seed=0)

    variants = list(dict.fromkeys(['ours', *args.variants]))  # the GT run needs ours' stage 1
    command = 'python tools/label_efficiency.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    meta = dict(seeds=args.seeds, variants=variants, iters=args.iters, data_root=data_root,
                stage2_config=run_demo.STAGE2, command=command.strip(),
                stage1_configs={v: VARIANTS[v][0] for v in variants})
    runs: List[Dict] = []
    lock = threading.Lock()

    def record(run: Dict) -> None:
        with lock:
            runs.append(run)
            write_outputs(args.work_dir, runs, dict(meta, seconds=round(time.time() - start, 1)))
            print(f'[label efficiency] {run["variant"]} seed {run["seed"]}: stage-2 mIoU '
                  f'{run["stage2_miou"]:.2f}', flush=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_chain, seed, variant, args, data_root, tiny_clip, threads, record)
                   for seed in args.seeds for variant in variants]
        for future in as_completed(futures):
            if future.exception() is not None:  # stop at the first failed step
                pool.shutdown(wait=True, cancel_futures=True)
                raise future.exception()
    summary = write_outputs(args.work_dir, runs, dict(meta, seconds=round(time.time() - start, 1)))
    with open(osp.join(args.work_dir, 'label_efficiency.md')) as f:
        print(f.read())
    return summary


if __name__ == '__main__':
    main()
