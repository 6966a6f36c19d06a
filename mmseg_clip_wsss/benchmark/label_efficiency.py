"""Aggregation of the label-efficiency runs (``tools/label_efficiency.py``): mean ± std over seeds.

A run is one (variant, seed): the mIoU (%) of its pseudo masks on the train split and of the stage-2
model trained on them, on the val split. The fully supervised variant (stage 2 on the GT masks) is
the upper bound; every other variant is also expressed as a percentage of it, **paired by seed**
(``100 * stage2_s / full_s`` per seed, then mean ± std of those percentages).
Standard deviations are sample standard deviations (n - 1); with one seed the std is 0.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ['mean_std', 'aggregate_label_efficiency', 'format_label_efficiency_markdown',
           'FULL_VARIANT']

#: Name of the fully supervised upper bound among the runs.
FULL_VARIANT = 'gt_masks'


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
