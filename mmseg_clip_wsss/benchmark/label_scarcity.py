"""Label scarcity on the demo data: N labelled images, and what unlabelled images, CLIP tags and
descriptions add to them (``tools/label_scarcity.py``).

For N labelled images of the demo train split (the first N; N = 0, 30, 300) and the rest of the
train split plus an unlabelled pool (:func:`~mmseg_clip_wsss.datasets.synthetic.make_described_pool`,
its own seed) as the unlabelled images, every arm trains stage 1 of the demo
(``configs/demo/clip_wsss_clip-rn_demo.py``: the demo CLIP, RSC-A, learned prompts):

* ``labels``: the N labelled images alone (none at N = 0: nothing to train, recorded as absent);
* ``tags``: + confidence-weighted CLIP tags of every unlabelled image (the rest of the train split
  and the pool; :func:`mmseg_clip_wsss.apis.tagging.soft_tags`), their thresholds (one shared
  threshold in units of each class's spread over the tagged images by default, ``threshold_rule``)
  and temperature chosen on the N labelled images (on the demo val split at N = 0) -- never on the
  images scored;
* ``descriptions``: + people-like descriptions (vagueness 0.3) of every unlabelled image: the rest of
  the train split (:func:`~mmseg_clip_wsss.datasets.synthetic.write_split_descriptions`) and the pool
  (``configs/descriptions/clip_wsss_clip-rn_demo_plus-described.py``);
* ``vague_descriptions``: + the same images described vaguely (vagueness 0.8);
* ``vague_descriptions_no_rsca``: the same without RSC-A (``model.neck.use_aggregation=False
  model.neck.loss_region=None model.region_contrast=False``), at N = 30 only.

Every image is drawn alike (``labelled_share='size'``: ``SourceRatioSampler`` by the sources'
sizes); a float ``labelled_share`` gives the N labelled images that share of the draws instead (the
described config's 0.5 gave lower pseudo masks at both N on two data seeds at this schedule:
docs/benchmarks.md, "Label scarcity"). The figure is the pseudo-mask mIoU of the whole 300-image
train split (``tools/make_pseudo_masks.py --eval``; the train split's image-level labels restrict the
CAMs, as in the demo), per arm and N, mean and sample std (n - 1) over the seeds; at N = 30
(``stage2_n``) each run's pseudo masks also train stage 2 (``configs/demo/stage2_clip-rn_upernet_demo.py``),
scored on the val split.

The study schedule is shorter than the demo's so that the whole study (36 stage-1 runs, their
pseudo masks, 15 stage-2 runs) aims at an hour of a 2-core CPU: stage 1 150 iterations of batch 8
(the demo: 800), stage 2 150 iterations (the demo: 600), pseudo masks at one scale with flip and
PAR refinement (the demo: 3 scales). Measured: 29 min on an idle 2-core CPU; at this schedule the
unlabelled images are seen less than once each (docs/benchmarks.md, "Label scarcity").
Every step is a step of :mod:`mmseg_clip_wsss.demo.runner`
(the same commands and logs, finished steps skipped unless ``fresh``, an interrupted training
resumed), run up to ``jobs`` side by side (:func:`~mmseg_clip_wsss.demo.runner.run_steps`).

Outputs in the work dir, rewritten after every finished step: ``summary.json``
(``{"arms": {ARM: {"N": {"mean", "std", "runs"}}}, "stage2": {...}, "settings": {...}}``),
``label_scarcity.md`` (the table) and ``label_scarcity.png`` (mIoU against N, one line per arm).
"""
import json
import os
import os.path as osp
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config

from mmseg_clip_wsss.apis.config_options import options_dict
from mmseg_clip_wsss.apis.tagging import CLIPTagger, choose_thresholds, fit_temperature, precision_recall, soft_tags
from mmseg_clip_wsss.clip_pretrain.evaluate import read_split_images
from mmseg_clip_wsss.datasets import check_data_root, folder_stamps, write_soft_labels
from mmseg_clip_wsss.datasets.synthetic import (DescriptionStyle, load_world, make_described_pool,
                                               write_split_descriptions)
from mmseg_clip_wsss.demo import runner as demo
from mmseg_clip_wsss.models.open_clip_models import DEMO_CLIP_NAME
from .label_efficiency import mean_std

__all__ = ['ARMS', 'NS', 'NO_RSCA', 'POOLS', 'study_runs', 'soft_tag_file', 'arm_config',
           'aggregate_label_scarcity', 'format_label_scarcity_markdown', 'plot_label_scarcity',
           'run_label_scarcity']

ARMS = ('labels', 'tags', 'descriptions', 'vague_descriptions', 'vague_descriptions_no_rsca')
NS = (0, 30, 300)
#: The switches that turn RSC-A off (the neck's aggregation, region loss and contrast).
NO_RSCA = ('model.neck.use_aggregation=False', 'model.neck.loss_region=None', 'model.region_contrast=False')
#: arm -> (pool folder under the data dir, vagueness) of the described arms.
POOLS = {'descriptions': ('demo_described', 0.3), 'vague_descriptions': ('demo_vague', 0.8)}
LABELS_CONFIG = 'configs/demo/clip_wsss_clip-rn_demo.py'
DESCRIBED_CONFIG = 'configs/descriptions/clip_wsss_clip-rn_demo_plus-described.py'
STAGE2 = demo.STAGE2
DEFAULTS = dict(iters=150, stage2_iters=150, batch_size=8, scales=(1.0, ), labelled_share='size',
                pool_size=1500, pool_seed=1, stage2_n=30, threshold_rule='shared')


def study_runs(arms: Sequence[str], ns: Sequence[int], stage2_n: int = 30) -> List[Tuple[str, int]]:
    """The (arm, N) pairs that train: ``labels`` needs N > 0; the no-RSC-A arm runs at ``stage2_n``."""
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise ValueError(f'label scarcity: unknown arms {unknown}; choose from {list(ARMS)}.')
    return [(arm, n) for n in ns for arm in arms
            if not (arm == 'labels' and n == 0) and not (arm == 'vague_descriptions_no_rsca' and n != stage2_n)]


# ------------------------------------------------------------------------------------ the data
def _pool_matches(root: str, world: Dict, size: int, seed: int, vagueness: float) -> bool:
    """Whether ``root`` holds a pool of this world and these settings (another one is written again)."""
    path = osp.join(root, 'described_pool.json')
    if not osp.isfile(path):
        return False
    with open(path) as f:
        info = json.load(f)
    return (info.get('world'), info.get('num_images'), info.get('seed'), info.get('style', {}).get('vagueness')) \
        == (world, size, seed, vagueness)


def _prepare_pools(data_dir: str, data_root: str, pool_size: int, pool_seed: int,
                   arms: Sequence[str]) -> Dict[str, str]:
    """The described and vague pools (the same images of seed ``pool_seed``, drawn from the world of
    ``data_root``), written if absent."""
    world = load_world(data_root)
    as_saved = json.loads(json.dumps(world.to_dict()))  # tuples as the pool's JSON holds them
    roots = {}
    for arm, (folder, vagueness) in POOLS.items():
        root = osp.join(data_dir, folder)
        roots[arm] = root
        needed = arm in arms or (arm == 'vague_descriptions' and 'vague_descriptions_no_rsca' in arms) \
            or (arm == 'descriptions' and 'tags' in arms)  # the tags arm tags the pool's images
        if needed and not _pool_matches(root, as_saved, pool_size, pool_seed, vagueness):
            print(f'[label scarcity] writing the pool {root} ({pool_size} images of the world of {data_root}, '
                  f'seed {pool_seed}, vagueness {vagueness})', flush=True)
            make_described_pool(root, world, seed=pool_seed, num_images=pool_size,
                                style=DescriptionStyle(vagueness=vagueness), overwrite=True)
    return roots


def _split_ids(root: str, split: str) -> List[str]:
    with open(osp.join(root, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
        return [line.strip() for line in f if line.strip()]


def _clip_scores(data_root: str, pool_root: str, clip: str, cache: str, names: List[str],
                 words: List[List[str]]) -> Dict[str, np.ndarray]:
    """CLIP zero-shot scores and true labels of the train, val and pool images (cached in ``cache``,
    computed again for another data root, pool or CLIP, or one changed behind the same path)."""
    stamp = json.dumps([data_root, clip, folder_stamps([data_root, pool_root, clip])])
    if osp.isfile(cache):
        cached = dict(np.load(cache))
        if str(cached.pop('stamp', '')) == stamp:
            return cached
    print(f'[label scarcity] CLIP scores of the train, val and pool images ({clip})', flush=True)
    tagger = CLIPTagger(clip, words, DEMO_CLIP_NAME)
    out = {}
    for key, root, split, label_file in (
            ('train', data_root, 'train', None), ('val', data_root, 'val', None),
            ('pool', pool_root, 'pool', osp.join(pool_root, 'ImageLabels', 'pool_truth.txt'))):
        images, labels = read_split_images(root, split, names, label_file)
        out[f'{key}_scores'], out[f'{key}_labels'] = tagger.scores(images), labels
    np.savez(cache, stamp=np.array(stamp), **out)
    return out


def soft_tag_file(n: int, scores: Dict[str, np.ndarray], ids: Dict[str, List[str]], names: List[str],
                  out: str, threshold_rule: str = 'shared', image_files: Optional[Dict[str, str]] = None) -> Dict:
    """Write the soft CLIP tags of the unlabelled images at N labelled ones.

    The thresholds (best F1, :func:`~mmseg_clip_wsss.apis.tagging.choose_thresholds` with
    ``threshold_rule``, standardised by the tagged images' scores) and the temperature (least BCE) are
    chosen on the N labelled images (the first N of the train split), or on the val split when N = 0;
    the tags cover the rest of the train split and the pool.

    Returns:
        dict: ``chosen_on``, ``temperature``, and the precision and recall (%) of the tags
        (``p > 0.5``) against the truth of the tagged images (never read by training).
    """
    if n > 0:
        fit_scores, fit_labels, chosen_on = scores['train_scores'][:n], scores['train_labels'][:n], \
            f'the {n} labelled train images'
    else:
        fit_scores, fit_labels, chosen_on = scores['val_scores'], scores['val_labels'], 'the val split'
    tagged = np.concatenate([scores['train_scores'][n:], scores['pool_scores']])
    thresholds = choose_thresholds(threshold_rule, fit_scores, fit_labels, tagged)
    temperature = fit_temperature(fit_scores, fit_labels, thresholds)
    truth = np.concatenate([scores['train_labels'][n:], scores['pool_labels']])
    targets, confidence = soft_tags(tagged, thresholds, temperature)
    tagged_ids = ids['train'][n:] + ids['pool']
    write_soft_labels(out, names, {i: (t, c) for i, t, c in zip(tagged_ids, targets, confidence)},
                      note=f'soft CLIP tags; thresholds (best F1, {threshold_rule}) and temperature {temperature} chosen '
                      f'on {chosen_on}', image_files=image_files)
    tags = [[names[k] for k in np.flatnonzero(row)] for row in targets]
    quality = precision_recall(tags, truth, names)
    return dict(chosen_on=chosen_on, temperature=temperature, mean_confidence=round(float(confidence.mean()), 3),
                precision=round(float(quality['precision']), 2), recall=round(float(quality['recall']), 2))


# ---------------------------------------------------------------------------------- the configs
def _sources(arm: str, n: int, base: Config, ctx: Dict) -> Tuple[List[dict], List[float]]:
    """The train datasets of (arm, N) and their shares of the draws: the N labelled images, then the
    unlabelled ones (the rest of the train split and the pool, tagged or described as the arm says)
    sharing the rest of the draws by their sizes."""
    labelled = dict(base.train_dataloader.dataset if arm in ('labels', 'tags')
                    else base.train_dataloader.dataset.datasets[0])
    labelled.update(data_root=ctx['data_root'], indices=n)
    if arm == 'labels':
        return [labelled], [1.0]
    if arm == 'tags':
        tagged = dict(type='DemoWSSSDataset', data_prefix=dict(img_path='JPEGImages'), with_gt_masks=False,
                      soft_label_file=ctx['tag_files'][n], pipeline=base.train_pipeline)
        rest = dict(tagged, data_root=ctx['data_root'], ann_file=ctx['rest_splits'][n])
        pool = dict(tagged, data_root=ctx['pools']['descriptions'], ann_file='ImageSets/Segmentation/pool.txt')
    else:
        pool_arm = 'descriptions' if arm == 'descriptions' else 'vague_descriptions'
        described = base.train_dataloader.dataset.datasets[1]
        rest = dict(described, data_root=ctx['data_root'], caption_file=ctx['rest_captions'][pool_arm].get(n))
        pool = dict(described, data_root=ctx['pools'][pool_arm])
    has_rest = ctx['num_train'] > n
    unlabelled = ([rest] if has_rest else []) + [pool]
    sizes = ([ctx['num_train'] - n] if has_rest else []) + [ctx['pool_size']]
    labelled_share = ctx['labelled_share'] if n > 0 else 0.0
    if labelled_share == 'size':  # a uniform draw over all images
        labelled_share = n / (n + sum(sizes))
    ratios = [(1.0 - labelled_share) * s / sum(sizes) for s in sizes]
    return ([labelled] if n > 0 else []) + unlabelled, ([labelled_share] if n > 0 else []) + ratios


def arm_config(arm: str, n: int, ctx: Dict) -> Config:
    """The stage-1 config of (arm, N): the demo config (``labels``, ``tags``) or the described one,
    with absolute data roots, the CLIP, the study's batch and CAM scales, no validation (the figure
    is the pseudo masks) and the arm's train data.

    Args:
        arm (str): One of :data:`ARMS`.
        n (int): Labelled images (the first N of the train split).
        ctx (dict): ``data_root``, ``clip``, ``pools``, ``tag_files`` and ``rest_splits`` (per N),
            ``rest_captions`` (per described arm and N),
            ``num_train``, ``pool_size``, ``labelled_share``, ``batch_size``, ``scales``.
    """
    base = Config.fromfile(osp.join(demo.REPO, LABELS_CONFIG if arm in ('labels', 'tags') else DESCRIBED_CONFIG))
    datasets, ratios = _sources(arm, n, base, ctx)
    if arm == 'labels':
        base.train_dataloader.dataset = datasets[0]
    else:
        base.train_dataloader.sampler = dict(type='SourceRatioSampler', ratios=ratios)
        base.train_dataloader.dataset = dict(type='ConcatDataset', datasets=datasets,
                                             ignore_keys=['classes', 'palette', 'label_map', 'reduce_zero_label'])
    base.train_dataloader.batch_size = ctx['batch_size']
    for key in ('val_dataloader', 'test_dataloader', 'cam_dataloader'):
        base[key].dataset.data_root = ctx['data_root']
    base.model.backbone.pretrained = ctx['clip']
    base.model.text_encoder.pretrained = ctx['clip']
    base.cam_cfg.scales = tuple(ctx['scales'])
    base.val_dataloader, base.val_cfg, base.val_evaluator = None, None, None
    if arm == 'vague_descriptions_no_rsca':
        base.merge_from_dict(options_dict(NO_RSCA))
    return base


# ---------------------------------------------------------------------------------- the summary
def _stats(values: Sequence[float]) -> Dict:
    mean, std = mean_std(values)
    return dict(mean=None if mean is None else round(mean, 2), std=None if std is None else round(std, 2),
                runs=[round(float(v), 2) for v in values])


def aggregate_label_scarcity(results: Dict, stage2: Dict, arms: Sequence[str], ns: Sequence[int],
                             stage2_n: int = 30) -> Dict:
    """``{"arms": {ARM: {"N": stats}}, "stage2": {ARM: {"N": stats}}, "absent": [...]}``.

    Args:
        results (dict): (arm, N) -> {seed: pseudo-mask mIoU (%)}.
        stage2 (dict): arm -> {seed: stage-2 val mIoU (%)} at ``stage2_n``.
        arms, ns: The arms and N of the study (every pair appears; one that trains nothing, or has
            no finished run yet, has ``mean`` and ``std`` None and no runs).

    Returns:
        dict: stats are ``mean``, ``std`` (sample std, n - 1; 0 for one run) and ``runs`` (by seed).
    """
    out = dict(arms={}, stage2={}, absent=[])
    trained = set(study_runs(arms, ns, stage2_n))
    for arm in arms:
        out['arms'][arm] = {}
        for n in ns:
            if arm == 'vague_descriptions_no_rsca' and n != stage2_n:
                continue
            runs = results.get((arm, n), {})
            out['arms'][arm][str(n)] = _stats([runs[s] for s in sorted(runs)])
            if (arm, n) not in trained:
                out['absent'].append(f'{arm} at N={n}: nothing to train (no labelled image)')
        if stage2_n in ns:
            runs = stage2.get(arm, {})
            out['stage2'][arm] = {str(stage2_n): _stats([runs[s] for s in sorted(runs)])}
    return out


def _cell(stats: Optional[Dict]) -> str:
    if not stats or stats.get('mean') is None:
        return '-'
    if len(stats['runs']) < 2:  # one run has no sample std
        return f'{stats["mean"]:.2f} (1)'
    return f'{stats["mean"]:.2f} ± {stats["std"]:.2f} ({len(stats["runs"])})'


def format_label_scarcity_markdown(summary: Dict, ns: Sequence[int], stage2_n: int = 30,
                                   num_train: Optional[int] = None) -> str:
    """The table: pseudo-mask mIoU per arm and N, and stage-2 val mIoU at ``stage2_n``; its footer
    names the ``num_train`` images of the train split the masks are scored on."""
    stage2 = stage2_n in ns
    head = ' | '.join(f'N = {n}' for n in ns) + (f' | stage 2 val, N = {stage2_n}' if stage2 else '')
    lines = [f'| arm | {head} |', '|---' * (len(ns) + 1 + stage2) + '|']
    for arm, by_n in summary['arms'].items():
        cells = [_cell(by_n.get(str(n))) for n in ns]
        if stage2:
            cells.append(_cell(summary['stage2'].get(arm, {}).get(str(stage2_n))))
        lines.append(f'| {arm} | {" | ".join(cells)} |')
    split = f'the {num_train}-image train split' if num_train is not None else 'the train split'
    lines += ['', f'Pseudo-mask mIoU (%) of {split} (stage 2: val mIoU, %): mean ± '
              'sample std (runs). "-": not trained.']
    return '\n'.join(lines) + '\n'


def plot_label_scarcity(summary: Dict, ns: Sequence[int], path: str) -> None:
    """``path``: pseudo-mask mIoU against N, one line per arm, std as error bars (N on even steps)."""
    import matplotlib  # heavy optional dependency: only the plot needs it
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (arm, by_n) in enumerate(summary['arms'].items()):
        points = [(k, by_n[str(n)]) for k, n in enumerate(ns) if by_n.get(str(n), {}).get('mean') is not None]
        if points:
            ax.errorbar([k + 0.04 * (i - 2) for k, _ in points], [s['mean'] for _, s in points],
                        yerr=[s['std'] for _, s in points], marker='o', capsize=3, label=arm)
    ax.set_xticks(range(len(ns)), [str(n) for n in ns])
    ax.set_xlabel('N labelled images')
    ax.set_ylabel('pseudo-mask mIoU (%), train split')
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------- the runs
def _check_ns(ctx: Dict, ns: Sequence[int]) -> None:
    """``ctx['num_train']``: the images of the train split; an N beyond them is refused (before the
    work dir is made)."""
    ctx['num_train'] = len(_split_ids(ctx['data_root'], 'train'))
    bad = [n for n in ns if not 0 <= n <= ctx['num_train']]
    if bad:
        raise ValueError(f'label scarcity: N {bad} outside 0..{ctx["num_train"]} (the train split of '
                         f'{ctx["data_root"]}); give --ns between 0 and {ctx["num_train"]}.')


#: The settings that decide the runs: a work dir's summary.json made with others is said to be replaced.
_RUN_SETTINGS = ('data_root', 'clip', 'arms', 'ns', 'seeds') + tuple(DEFAULTS)


def _say_what_is_redone(work_dir: str, settings: Dict) -> None:
    """Print one line when ``work_dir/summary.json`` was made with other settings: which differ, and
    that the table is written anew with this command's cells alone."""
    path = osp.join(work_dir, 'summary.json')
    try:
        with open(path) as f:
            earlier = json.load(f)['settings']
    except (OSError, ValueError, KeyError, TypeError):
        return  # no earlier table (or none readable): nothing is replaced that was finished
    now = json.loads(json.dumps({k: settings.get(k) for k in _RUN_SETTINGS}))
    differ = [f'{k} {earlier.get(k)} -> {now[k]}' for k in _RUN_SETTINGS if earlier.get(k) != now[k]]
    if differ:
        print(f'[label scarcity] {path} was made with other settings ({"; ".join(differ)}): the steps of '
              'these settings run (finished ones of the same settings are skipped) and summary.json and '
              'label_scarcity.md are written anew with this command\'s cells alone; give another --work-dir '
              'to keep the earlier table', flush=True)


def _prepare(ctx: Dict, arms: Sequence[str], ns: Sequence[int]) -> Dict:
    """Pools, CLIP scores, the soft tags and rest-of-train split files per N; returns tag stats."""
    data_dir = osp.join(ctx['work_dir'], 'data')
    ids = dict(train=_split_ids(ctx['data_root'], 'train'))
    os.makedirs(data_dir, exist_ok=True)
    ctx['pools'] = _prepare_pools(data_dir, ctx['data_root'], ctx['pool_size'], ctx['pool_seed'], arms)
    ctx['rest_captions'] = _describe_rest(ctx, data_dir, arms, ns)
    ctx['tag_files'], ctx['rest_splits'], tag_stats = {}, {}, {}
    if 'tags' not in arms:
        return tag_stats
    ids['pool'] = _split_ids(ctx['pools']['descriptions'], 'pool')
    words = [list(c.words) for c in load_world(ctx['data_root']).classes]
    names = [w[0] for w in words]
    image_files = {i: osp.join(root, 'JPEGImages', f'{i}.jpg') for key, root in (
        ('train', ctx['data_root']), ('pool', ctx['pools']['descriptions'])) for i in ids[key]}
    scores = _clip_scores(ctx['data_root'], ctx['pools']['descriptions'], ctx['clip'],
                          osp.join(data_dir, 'clip_scores.npz'), names, words)
    for n in ns:
        # the rule in the name: each rule's tags kept apart
        ctx['tag_files'][n] = osp.join(data_dir, f'soft_tags_{ctx["threshold_rule"]}_N{n}.json')
        ctx['rest_splits'][n] = osp.join(data_dir, f'train_rest_N{n}.txt')
        with open(ctx['rest_splits'][n], 'w') as f:
            f.write(''.join(f'{i}\n' for i in ids['train'][n:]))
        tag_stats[str(n)] = soft_tag_file(n, scores, ids, names, ctx['tag_files'][n], ctx['threshold_rule'],
                                          image_files)
        print(f'[label scarcity] soft tags at N={n}: {tag_stats[str(n)]}', flush=True)
    return tag_stats


def _describe_rest(ctx: Dict, data_dir: str, arms: Sequence[str], ns: Sequence[int]) -> Dict[str, Dict[int, str]]:
    """Descriptions of the unlabelled rest of the train split (all but the first N) for each described
    arm, as its pool is described (same vagueness); written again only for another data root,
    data seed or style."""
    out = {}
    for arm, (folder, vagueness) in POOLS.items():
        out[arm] = {}
        if not any(a.startswith(arm) for a in arms):
            continue
        for n in ns:
            if n >= ctx['num_train']:
                continue
            path = osp.join(data_dir, f'captions_train_rest_N{n}_{folder}.json')  # kept if up to date
            write_split_descriptions(ctx['data_root'], 'train', path, DescriptionStyle(vagueness=vagueness), skip=n)
            out[arm][n] = path
    return out


def _metrics(out_dir: str) -> Optional[Dict]:
    path = osp.join(out_dir, 'metrics.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _chain_steps(arm: str, n: int, seed: int, ctx: Dict, record: Callable) -> Dict:
    """Stage 1 -> pseudo masks (-> stage 2 at ``stage2_n``) of one (arm, N, seed)."""
    name, run_dir = f'{arm} N={n} s{seed}', osp.join(ctx['work_dir'], f'{arm}_N{n}', f'seed{seed}')
    config = osp.join(ctx['work_dir'], 'configs', f'{arm}_N{n}.py')
    options = demo.schedule_options(ctx['iters']) + [f'randomness.seed={seed}']
    masks = osp.join(run_dir, 'pseudo_masks')
    state = {}

    def fit() -> None:
        done = not ctx['fresh'] and demo.finished_run(run_dir, config, options, ctx['iters']) is not None
        state['checkpoint'] = demo.train(name, config, run_dir, options, ctx['iters'], ctx['fresh'], ctx['threads'])
        state['redo'] = not done  # a new checkpoint: its masks and stage 2 are made again
        record('skipped' if done else 'ran', f'stage 1 {name}')

    def score() -> None:
        metrics = None if state['redo'] else _metrics(masks)
        if metrics is None:
            metrics = demo.pseudo_masks(name, config, state['checkpoint'], masks, options[-1:], state['redo'],
                                        ctx['threads'])
            status = 'ran'
        else:
            status = 'skipped'
        ctx['results'].setdefault((arm, n), {})[seed] = round(float(metrics['mIoU']), 2)
        record(status, f'pseudo masks {name}: mIoU {metrics["mIoU"]:.2f}', publish=True)

    def stage2() -> None:
        stage2_dir = osp.join(run_dir, 'stage2')
        stage2_options = demo.common_options(ctx['data_root'], ctx['stage2_iters']) + [
            f'randomness.seed={seed}', f'model.backbone.pretrained={ctx["clip"]}',
            f'train_dataloader.dataset.data_prefix.seg_map_path={masks}']
        done = not state['redo'] and osp.isfile(osp.join(stage2_dir, f'iter_{ctx["stage2_iters"]}.pth'))
        demo.train(f'stage2 {name}', STAGE2, stage2_dir, stage2_options, ctx['stage2_iters'], state['redo'],
                   ctx['threads'])
        ctx['stage2'].setdefault(arm, {})[seed] = round(demo.last_val_miou(stage2_dir), 2)
        record('skipped' if done else 'ran', f'stage 2 {name}: val mIoU {ctx["stage2"][arm][seed]:.2f}',
               publish=True)

    steps = {f'fit {name}': (fit, ()), f'score {name}': (score, (f'fit {name}', ))}
    if n == ctx['stage2_n']:
        steps[f'stage2 {name}'] = (stage2, (f'score {name}', ))
    return steps


def _write_outputs(ctx: Dict, arms: Sequence[str], ns: Sequence[int], settings: Dict) -> Dict:
    """``summary.json``, ``label_scarcity.md`` and ``label_scarcity.png`` from the runs so far."""
    summary = aggregate_label_scarcity(ctx['results'], ctx['stage2'], arms, ns, ctx['stage2_n'])
    summary['settings'] = dict(settings, seconds=round(time.time() - ctx['start'], 1))
    work_dir = ctx['work_dir']
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    table = format_label_scarcity_markdown(summary, ns, ctx['stage2_n'], ctx['num_train'])
    with open(osp.join(work_dir, 'label_scarcity.md'), 'w') as f:
        f.write(table + f'\nCommand: `{settings["command"]}`\n')
    plot_label_scarcity(summary, ns, osp.join(work_dir, 'label_scarcity.png'))
    return summary


def _write_configs(ctx: Dict, runs: Sequence[Tuple[str, int]]) -> None:
    os.makedirs(osp.join(ctx['work_dir'], 'configs'), exist_ok=True)
    for arm, n in runs:
        arm_config(arm, n, ctx).dump(osp.join(ctx['work_dir'], 'configs', f'{arm}_N{n}.py'))


def run_label_scarcity(work_dir: str = 'work_dirs/label_scarcity', data_root: str = 'data/demo',
                       clip: Optional[str] = None, arms: Sequence[str] = ARMS, ns: Sequence[int] = NS,
                       seeds: Sequence[int] = (0, 1, 2), jobs: int = 2, threads: Optional[int] = None,
                       fresh: bool = False, command: str = '', **options) -> Dict:
    """Run the study (see the module docstring); returns the summary it writes.

    Args:
        work_dir (str): Where everything is written (pools and tags under ``<work_dir>/data``).
        data_root (str): The demo data (its train split gives the N labelled images).
        clip (str, optional): The CLIP checkpoint. Defaults to ``<data_root>/clip/clip.pt``.
        arms (Sequence[str]): Arms of :data:`ARMS`. Defaults to all.
        ns (Sequence[int]): Numbers of labelled images. Defaults to (0, 30, 300).
        seeds (Sequence[int]): ``randomness.seed`` of the runs. Defaults to (0, 1, 2).
        jobs (int): Steps run side by side. Defaults to 2.
        threads (int, optional): CPU threads per step. Defaults to the cores / ``jobs``.
        fresh (bool): Redo finished steps. Defaults to False.
        command (str): The command line, recorded in the outputs.
        **options: ``iters``, ``stage2_iters``, ``batch_size``, ``scales``, ``labelled_share``,
            ``pool_size``, ``pool_seed``, ``stage2_n`` (an N not in ``ns``: no stage 2),
            ``threshold_rule`` (of the tags arm's thresholds) (defaults:
            :data:`DEFAULTS`).

    Raises:
        ValueError: an unknown arm or option, or N outside the train split.
        FileNotFoundError: no demo data or CLIP (naming the command that makes them).
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f'label scarcity: unknown options {unknown}; known: {sorted(DEFAULTS)}.')
    ctx = dict(DEFAULTS, **{k: v for k, v in options.items() if v is not None})
    ctx.update(work_dir=osp.abspath(work_dir), data_root=osp.abspath(data_root), fresh=fresh,
               clip=osp.abspath(clip or osp.join(data_root, 'clip', 'clip.pt')), results={}, stage2={},
               threads=threads or max(1, (os.cpu_count() or 1) // max(1, jobs)), start=time.time())
    check_data_root(data_root, splits=('train', 'val'), demo_info=True)
    if not osp.isfile(ctx['clip']):
        raise FileNotFoundError(f'label scarcity: the CLIP checkpoint {ctx["clip"]} does not exist: make it with '
                                f'`python tools/pretrain_clip.py --data-root {data_root}`, or give --clip FILE.')
    arms, ns, seeds = (list(dict.fromkeys(v)) for v in (arms, ns, seeds))  # each once, in the order given
    runs = study_runs(arms, ns, ctx['stage2_n'])
    if 'vague_descriptions_no_rsca' in arms and ctx['stage2_n'] not in ns:
        print(f'[label scarcity] vague_descriptions_no_rsca runs at N = stage2_n ({ctx["stage2_n"]}) only, which '
              f'is not in --ns {ns}: it trains nothing', flush=True)
    _check_ns(ctx, ns)
    settings = dict(command=command, seeds=list(seeds), arms=list(arms), ns=list(ns), data_root=ctx['data_root'],
                    clip=ctx['clip'], **{k: ctx[k] for k in DEFAULTS}, std='sample (n - 1)')
    _say_what_is_redone(ctx['work_dir'], settings)
    os.makedirs(ctx['work_dir'], exist_ok=True)
    settings['soft_tags'] = _prepare(ctx, arms, ns)
    _write_configs(ctx, runs)
    counts, lock = dict(ran=0, skipped=0), threading.Lock()
    total = sum(1 + 1 + (n == ctx['stage2_n']) for _, n in runs) * len(seeds)

    def record(status: str, what: str, publish: bool = False) -> None:
        with lock:
            counts[status] += 1
            print(f'[label scarcity] {sum(counts.values())}/{total} {status}: {what} '
                  f'({time.time() - ctx["start"]:.0f} s)', flush=True)
            if publish:
                _write_outputs(ctx, arms, ns, dict(settings, steps=dict(counts)))

    steps = {}
    for seed in seeds:
        for arm, n in sorted(runs, key=lambda r: (r[1] != ctx['stage2_n'], r[1], ARMS.index(r[0]))):
            steps.update(_chain_steps(arm, n, seed, ctx, record))
    demo.run_steps(steps, max(1, jobs))
    return _write_outputs(ctx, arms, ns, dict(settings, steps=dict(counts)))
