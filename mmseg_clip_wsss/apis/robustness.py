"""mIoU of a segmenter on the val split under image
corruptions (noise, blur, JPEG) at severities 1-5, as JSON, a Markdown table and a line chart.

``python tools/robustness.py CONFIG CHECKPOINT [--out-dir DIR] [--subset N] [--corruptions ...]
[--severities 1 2 3 4 5] [--device cpu] [--cfg-options ...]``

The corruption (:class:`~mmseg_clip_wsss.datasets.ImageCorruption`, ``imagecorruptions``) is inserted
right after the image loader of the config's ``test_dataloader`` pipeline, so it acts on the image
as read from disk, before any resizing; its noise is seeded per image, so runs repeat exactly
(except impulse noise, which scikit-image draws unseeded).
Severity 0 is the clean image (evaluated once, shared by every corruption).
"""
import copy
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from mmseg_clip_wsss.cam.evaluate import compute_miou, write_metrics_json
from mmseg_clip_wsss.datasets.transforms.corruption import CORRUPTIONS, MAX_SEVERITY

__all__ = ['corrupted_dataloader_cfg', 'evaluate_robustness', 'write_robustness_report', 'markdown_table']


def _loader_index(pipeline: Sequence[dict]) -> int:
    """Index of the image loader in a pipeline (the first transform named ``Load*Image*``)."""
    for i, t in enumerate(pipeline):
        name = t['type'] if isinstance(t['type'], str) else t['type'].__name__
        if name.startswith('Load') and 'Image' in name:
            return i
    raise ValueError('robustness: the test pipeline has no image loader (a transform named '
                     "Load*Image*, e.g. 'LoadImageFromFile') to put the corruption after.")


def corrupted_dataloader_cfg(cfg: Config, corruption: Optional[str], severity: int,
                             subset: Optional[int] = None) -> dict:
    """The config's ``test_dataloader`` with ``ImageCorruption`` after the image loader.

    Args:
        cfg (Config): Model config with a ``test_dataloader``.
        corruption (str, optional): Corruption name; None (or severity 0) for the clean images.
        severity (int): 0..5.
        subset (int, optional): Evaluate only the first ``subset`` images.

    Returns:
        dict: A dataloader config for ``Runner.build_dataloader``.
    """
    dl = copy.deepcopy(cfg.test_dataloader)
    dataset = dl['dataset']
    pipeline = list(dataset['pipeline'])
    if corruption is not None and severity > 0:
        pipeline.insert(_loader_index(pipeline) + 1,
                        dict(type='ImageCorruption', corruption=corruption, severity=severity))
    dataset['pipeline'] = pipeline
    if subset is not None:
        dataset['indices'] = int(subset)
    dl.update(num_workers=0, persistent_workers=False,
              sampler=dict(type='DefaultSampler', shuffle=False))
    return dl


def _miou_on(model, dataloader, classes: Sequence[str], bar: Optional[ProgressBar]) -> float:
    preds, gts = [], []
    with torch.no_grad():
        for batch in dataloader:
            for sample in model.test_step(batch):
                preds.append(sample.pred_sem_seg.data[0].cpu())
                gts.append(sample.gt_sem_seg.data[0].cpu())
            if bar is not None:
                bar.update(len(batch['data_samples']))
    return float(compute_miou(preds, gts, classes, with_per_class=False, log_table=False)['mIoU'])


def evaluate_robustness(model, cfg: Config, corruptions: Sequence[str] = CORRUPTIONS,
                        severities: Sequence[int] = tuple(range(1, MAX_SEVERITY + 1)),
                        subset: Optional[int] = None, show_progress: bool = True) -> Dict:
    """mIoU (%) of ``model`` on the clean and the corrupted test split.

    Args:
        model: A built mmseg segmenter in eval mode (``test_step``).
        cfg (Config): Its config (``test_dataloader``).
        corruptions (Sequence[str]): ``imagecorruptions`` names. Defaults to :data:`CORRUPTIONS`.
        severities (Sequence[int]): Severities in 1..5. Defaults to 1..5.
        subset (int, optional): Only the first ``subset`` images of the split.
        show_progress (bool): Show a progress bar over all image evaluations.

    Returns:
        dict: ``clean`` (mIoU at severity 0), ``miou`` (corruption -> list of mIoU per severity),
        ``mean_corrupted`` (corruption -> mean over the severities), ``mean_corrupted_all``,
        ``severities``, ``num_images``.
    """
    if any(not 1 <= s <= MAX_SEVERITY for s in severities):
        raise ValueError(f'severities must lie in 1..{MAX_SEVERITY}, got {list(severities)}.')
    loaders = {(None, 0): corrupted_dataloader_cfg(cfg, None, 0, subset)}
    loaders.update({(c, s): corrupted_dataloader_cfg(cfg, c, s, subset)
                    for c in corruptions for s in severities})
    built = {key: Runner.build_dataloader(dl) for key, dl in loaders.items()}
    num_images = len(built[(None, 0)].dataset)
    classes = built[(None, 0)].dataset.metainfo['classes']
    bar = ProgressBar(num_images * len(built)) if show_progress else None
    miou = {key: _miou_on(model, loader, classes, bar) for key, loader in built.items()}
    if bar is not None:
        bar.file.write('\n')
    per_corruption = {c: [round(miou[(c, s)], 2) for s in severities] for c in corruptions}
    mean = {c: round(float(np.mean(v)), 2) for c, v in per_corruption.items()}
    return dict(clean=round(miou[(None, 0)], 2), miou=per_corruption, mean_corrupted=mean,
                mean_corrupted_all=round(float(np.mean(list(mean.values()))), 2),
                severities=list(severities), num_images=num_images)


def markdown_table(results: Dict, title: str) -> str:
    sev = results['severities']
    lines = [f'### {title}', '',
             f"mIoU (%) on {results['num_images']} val images; severity 0 = clean.", '',
             '| corruption | 0 | ' + ' | '.join(map(str, sev)) + f" | mean {', '.join(map(str, sev))} |",
             '|---' * (len(sev) + 3) + '|']
    for name, values in results['miou'].items():
        lines.append(f"| {name} | {results['clean']:.2f} | " +
                     ' | '.join(f'{v:.2f}' for v in values) +
                     f" | {results['mean_corrupted'][name]:.2f} |")
    lines.append(f"| **all** | {results['clean']:.2f} | " + ' | '.join(
        f'{np.mean([v[i] for v in results["miou"].values()]):.2f}' for i in range(len(sev))) +
        f" | {results['mean_corrupted_all']:.2f} |")
    return '\n'.join(lines) + '\n'


def _chart(results: Dict, title: str, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = [0] + list(results['severities'])
    for name, values in results['miou'].items():
        ax.plot(x, [results['clean']] + values, marker='o', label=name.replace('_', ' '))
    ax.set(xlabel='severity (0 = clean)', ylabel='mIoU (%)', title=title, xticks=x)
    top = max([results['clean']] + [v for values in results['miou'].values() for v in values])
    ax.set_ylim(0, max(1., top) * 1.1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_robustness_report(results: Dict, out_dir: str, title: str) -> Dict[str, str]:
    """Write ``robustness.json``, ``robustness.md`` and ``robustness.png`` (mIoU against severity,
    one line per corruption) to ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {ext: osp.join(out_dir, f'robustness.{ext}') for ext in ('json', 'md', 'png')}
    write_metrics_json(paths['json'], dict(results, title=title))
    with open(paths['md'], 'w') as f:
        f.write(markdown_table(results, title))
    _chart(results, title, paths['png'])
    return paths
