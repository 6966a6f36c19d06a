"""Label efficiency on the demo data: stage 2 on our pseudo masks vs. the same model on GT masks.

:func:`run_label_efficiency` (the command line is ``tools/label_efficiency.py``): for every seed
(``randomness.seed``) and stage-1 variant -- ours (learned prompts + RSC-A), hand-written prompts, ours
without RSC-A (optionally the plain CAM baseline) -- it trains stage 1 from image-level labels, writes
and scores its pseudo masks on the train split, and trains the stage-2 segmenter
(``configs/demo/stage2_swin_upernet_demo.py``, backbone initialised from that stage-1 checkpoint, as
the demo does) on them. The fully supervised upper bound is the same stage-2 run on the GT masks
(``SegmentationClass``), initialised from the stage-1 checkpoint of ours of the same seed, so only the
training masks differ. Every step is a step of :mod:`mmseg_clip_wsss.demo.runner` (same commands,
logs, skip-if-finished / resume behaviour). It writes ``label_efficiency.json`` (every run and the
mean ± std summary) and ``label_efficiency.md`` (the table of docs/benchmarks.md) into the work dir,
after every finished run.

Aggregation (:func:`aggregate_label_efficiency`): a run is one (variant, seed): the mIoU (%) of its
pseudo masks on the train split and of the stage-2 model trained on them, on the val split. The fully
supervised variant (stage 2 on the GT masks) is the upper bound; every other variant is also
expressed as a percentage of it, **paired by seed** (``100 * stage2_s / full_s`` per seed, then
mean ± std of those percentages).
Standard deviations are sample standard deviations (n - 1); with one seed the std is 0.
"""
import json
import math
import os
import os.path as osp
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mmseg_clip_wsss.demo import runner as demo
from mmseg_clip_wsss.demo.runner import prepare_demo_data, tiny_text_tower

__all__ = ['mean_std', 'aggregate_label_efficiency', 'format_label_efficiency_markdown',
           'FULL_VARIANT', 'VARIANTS', 'DEFAULT_VARIANTS', 'stage2_options', 'run_label_efficiency']

#: Name of the fully supervised upper bound among the runs.
FULL_VARIANT = 'gt_masks'
#: The stage-2 config of every chain (its backbone starts from the chain's stage-1 checkpoint).
STAGE2 = 'configs/demo/stage2_swin_upernet_demo.py'
#: variant -> (stage-1 config, description, uses the text encoder)
VARIANTS = {
    'ours': ('configs/demo/clip_wsss_swin_demo.py', 'ours: learned prompts + RSC-A', True),
    'handcrafted': ('configs/demo/clip_wsss_swin_demo_handcrafted.py',
                    'hand-written prompts + RSC-A', True),
    'no-rsca': ('configs/demo/clip_wsss_swin_demo_no-rsca.py', 'learned prompts, no RSC-A', True),
    'cam_baseline': ('configs/demo/cam_baseline_swin_demo.py', 'plain CAM baseline', False),
}
DEFAULT_VARIANTS = ('ours', 'handcrafted', 'no-rsca')
DESCRIPTIONS = dict({k: v[1] for k, v in VARIANTS.items()},
                    **{FULL_VARIANT: 'stage 2 on GT masks (fully supervised upper bound)'})


def mean_std(values: Sequence[float]) -> Tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation (n - 1); ``(None, None)`` for no values, std 0 for one."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def _stats(values: Sequence[float]) -> Dict:
    mean, std = mean_std(values)
    return dict(mean=None if mean is None else round(mean, 3),
                std=None if std is None else round(std, 3),
                values=[round(float(v), 3) for v in values])


def aggregate_label_efficiency(runs: Sequence[Dict], full_variant: str = FULL_VARIANT,
                               descriptions: Optional[Dict[str, str]] = None) -> Dict:
    """Mean ± std per variant over its seeds, and the percentage of the fully supervised mIoU.

    Args:
        runs (Sequence[dict]): ``dict(variant, seed, stage2_miou, pseudo_mask_miou=None)`` each.
        full_variant (str): The fully supervised variant. Defaults to ``'gt_masks'``.
        descriptions (dict, optional): ``{variant: text}`` for the tables.

    Returns:
        dict: ``full`` (stats of the upper bound or None) and ``variants`` (a list in first-seen
        order, each with ``stage2_miou``, ``pseudo_mask_miou``, ``pct_of_full`` stats and ``seeds``).
    """
    descriptions = descriptions or {}
    order: List[str] = []
    by_variant: Dict[str, List[Dict]] = {}
    for run in runs:
        name = run['variant']
        if name not in by_variant:
            order.append(name)
            by_variant[name] = []
        by_variant[name].append(run)
    for name, group in by_variant.items():
        seeds = [r['seed'] for r in group]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f'label efficiency: variant {name!r} has repeated seeds {seeds}.')

    full_runs = sorted(by_variant.get(full_variant, []), key=lambda r: r['seed'])
    full_by_seed = {r['seed']: float(r['stage2_miou']) for r in full_runs}
    full_mean, _ = mean_std(list(full_by_seed.values()))
    full = None
    if full_runs:
        full = dict(variant=full_variant, description=descriptions.get(full_variant, ''),
                    seeds=[r['seed'] for r in full_runs],
                    stage2_miou=_stats([r['stage2_miou'] for r in full_runs]))

    variants = []
    for name in order:
        if name == full_variant:
            continue
        group = sorted(by_variant[name], key=lambda r: r['seed'])
        pct = []
        for r in group:
            reference = full_by_seed.get(r['seed'], full_mean)
            if reference:
                pct.append(100.0 * float(r['stage2_miou']) / reference)
        pseudo = [r['pseudo_mask_miou'] for r in group if r.get('pseudo_mask_miou') is not None]
        variants.append(dict(variant=name, description=descriptions.get(name, ''),
                             seeds=[r['seed'] for r in group],
                             stage2_miou=_stats([r['stage2_miou'] for r in group]),
                             pseudo_mask_miou=_stats(pseudo),
                             pct_of_full=_stats(pct) if pct else None))
    return dict(full=full, variants=variants)


def _pm(stats: Optional[Dict], digits: int = 2) -> str:
    if not stats or stats.get('mean') is None:
        return '-'
    return f'{stats["mean"]:.{digits}f} ± {stats["std"]:.{digits}f}'


def format_label_efficiency_markdown(summary: Dict, title: str = 'Label efficiency (demo data)'
                                     ) -> str:
    """The label-efficiency table (mean ± std over seeds)."""
    lines = [f'## {title}', '',
             '| variant | pseudo masks, train mIoU (%) | stage 2, val mIoU (%) | % of fully supervised '
             '| seeds |', '|---|---|---|---|---|']
    full = summary.get('full')
    if full:
        label = full.get('description') or full['variant']
        lines.append(f'| {label} (`{full["variant"]}`) | - | {_pm(full["stage2_miou"])} | 100 | '
                     f'{", ".join(map(str, full["seeds"]))} |')
    for v in summary.get('variants', []):
        label = v.get('description') or v['variant']
        lines.append(f'| {label} (`{v["variant"]}`) | {_pm(v["pseudo_mask_miou"])} | '
                     f'{_pm(v["stage2_miou"])} | {_pm(v["pct_of_full"], 1)} | '
                     f'{", ".join(map(str, v["seeds"]))} |')
    lines.append('')
    lines.append('Mean ± sample standard deviation over the seeds; "% of fully supervised" is '
                 '100 x stage-2 mIoU / the fully supervised stage-2 mIoU of the same seed.')
    return '\n'.join(lines) + '\n'


# ------------------------------------------------------------------------------------ the runs
def stage2_options(options: List[str], seg_map_dir: str, init_checkpoint: Optional[str]) -> List[str]:
    """``--cfg-options`` of a stage-2 run: its training masks and (optionally) the stage-1 checkpoint
    its backbone starts from (key by key: mmengine's DictAction cannot parse a "dict(...)" value)."""
    out = options + [f'train_dataloader.dataset.data_prefix.seg_map_path={seg_map_dir}']
    if init_checkpoint:
        out += ['model.backbone.init_cfg._delete_=True', 'model.backbone.init_cfg.type=Pretrained',
                'model.backbone.init_cfg.prefix=backbone.',
                f'model.backbone.init_cfg.checkpoint={init_checkpoint}']
    return out


def _run_chain(seed: int, variant: str, work_dir: str, data_root: str, tiny_clip: str,
               iters: Optional[int], fresh: bool, threads: int, record: Callable[[Dict], None]) -> None:
    """Stage 1 -> pseudo masks -> stage 2 of one (seed, variant); for ``ours`` also the GT run."""
    config, _, uses_text = VARIANTS[variant]
    seed_dir = osp.join(work_dir, f'seed{seed}')
    run_dir = osp.join(seed_dir, variant)
    options = demo.common_options(data_root, iters) + [f'randomness.seed={seed}']
    extra = [f'model.text_encoder.pretrained={tiny_clip}'] if uses_text else []
    tag = f'{variant} s{seed}'
    checkpoint = demo.train(tag, config, run_dir, options + extra, demo.max_iters(config, iters),
                            fresh, threads)
    pseudo_dir = osp.join(run_dir, 'pseudo_masks')
    metrics = demo.pseudo_masks(tag, config, checkpoint, pseudo_dir, options + extra, fresh, threads)
    stage2_iters = demo.max_iters(STAGE2, iters)
    stage2_dir = osp.join(seed_dir, f'stage2_{variant}')
    demo.train(f'stage2 {tag}', STAGE2, stage2_dir, stage2_options(options, pseudo_dir, checkpoint),
               stage2_iters, fresh, threads)
    record(dict(variant=variant, seed=seed, stage2_miou=demo.last_val_miou(stage2_dir),
                pseudo_mask_miou=float(metrics['mIoU']), stage1_checkpoint=checkpoint,
                stage2_dir=stage2_dir))
    if variant == 'ours':
        gt_dir = osp.join(seed_dir, f'stage2_{FULL_VARIANT}')
        demo.train(f'stage2 GT s{seed}', STAGE2, gt_dir,
                   stage2_options(options, osp.join(data_root, 'SegmentationClass'), checkpoint),
                   stage2_iters, fresh, threads)
        record(dict(variant=FULL_VARIANT, seed=seed, stage2_miou=demo.last_val_miou(gt_dir),
                    pseudo_mask_miou=None, stage2_dir=gt_dir))


def _write_outputs(work_dir: str, runs: List[Dict], meta: Dict) -> Dict:
    """``label_efficiency.json`` / ``.md`` from the runs so far; returns the summary."""
    order = {name: i for i, name in enumerate([FULL_VARIANT, *VARIANTS])}
    runs = sorted(runs, key=lambda r: (order.get(r['variant'], 99), r['seed']))
    summary = aggregate_label_efficiency(runs, FULL_VARIANT, DESCRIPTIONS)
    with open(osp.join(work_dir, 'label_efficiency.json'), 'w') as f:
        json.dump(dict(meta, runs=runs, summary=summary), f, indent=2)
    with open(osp.join(work_dir, 'label_efficiency.md'), 'w') as f:
        f.write(format_label_efficiency_markdown(summary))
        f.write(f'\nCommand: `{meta["command"]}`\n')
    return summary


def run_label_efficiency(work_dir: str = 'work_dirs/label_efficiency',
                         data_root: str = 'data/demo',
                         seeds: Sequence[int] = (0, 1, 2),
                         variants: Sequence[str] = DEFAULT_VARIANTS,
                         iters: Optional[int] = None,
                         jobs: int = 2,
                         threads: Optional[int] = None,
                         fresh: bool = False,
                         command: str = '') -> Dict:
    """Run every (seed, variant) chain and the GT upper bound (see the module docstring).

    Args:
        work_dir (str): Where everything is written.
        data_root (str): Demo data (generated if absent).
        seeds (Sequence[int]): ``randomness.seed`` of the runs. Defaults to (0, 1, 2).
        variants (Sequence[str]): Stage-1 variants of :data:`VARIANTS` (``'ours'`` always runs: the
            GT run starts from its stage-1 checkpoint).
        iters (int, optional): Training iterations of every model. Defaults to the configs'.
        jobs (int): Chains run side by side (1 or 2). Defaults to 2.
        threads (int, optional): CPU threads of every step. Defaults to the cores / ``jobs``.
        fresh (bool): Redo finished steps. Defaults to False.
        command (str): The command line, recorded in the outputs.

    Returns:
        dict: The summary of :func:`aggregate_label_efficiency`.
    """
    start = time.time()
    work_dir, data_root = osp.abspath(work_dir), osp.abspath(data_root)
    os.makedirs(work_dir, exist_ok=True)
    jobs = max(1, min(jobs, 2))
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    prepare_demo_data(data_root)
    tiny_clip = tiny_text_tower(data_root)
    variants = list(dict.fromkeys(['ours', *variants]))
    meta = dict(seeds=list(seeds), variants=variants, iters=iters, data_root=data_root,
                stage2_config=STAGE2, command=command,
                stage1_configs={v: VARIANTS[v][0] for v in variants})
    runs: List[Dict] = []
    lock = threading.Lock()

    def record(run: Dict) -> None:
        with lock:
            runs.append(run)
            _write_outputs(work_dir, runs, dict(meta, seconds=round(time.time() - start, 1)))
            print(f'[label efficiency] {run["variant"]} seed {run["seed"]}: stage-2 mIoU '
                  f'{run["stage2_miou"]:.2f}', flush=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_chain, seed, variant, work_dir, data_root, tiny_clip, iters,
                               fresh, threads, record) for seed in seeds for variant in variants]
        for future in as_completed(futures):
            if future.exception() is not None:  # stop at the first failed step
                pool.shutdown(wait=True, cancel_futures=True)
                raise future.exception()
    return _write_outputs(work_dir, runs, dict(meta, seconds=round(time.time() - start, 1)))
