"""The WSSS pipeline on the generated demo data: its steps, and the whole run ``make demo`` makes.

:func:`run_demo` (the command line is ``tools/run_demo.py``):

1. writes the demo data of a world (:func:`~mmseg_clip_wsss.demo.make_demo_data`) if absent, and
   pretrains the world's CLIP on its captioned corpus once (``tools/pretrain_clip.py``, cached in
   ``<data_root>/clip``): the stand-in for the CLIP weights a real run downloads;
2. scores that CLIP zero-shot against its random initialisation (``tools/eval_clip.py``);
3. trains stage 1 from image-level labels, started from the CLIP (its image tower as frozen
   backbone -> RSC-A neck -> text-guided head, its text tower with learned prompts), and under the
   same budget: hand-written prompts, a random text tower, and the plain CAM baseline;
4. writes pseudo masks of the train split for each of them (multi-scale + flip CAMs, refinement) and
   scores them against the GT masks (mmseg's ``IoUMetric``);
5. trains an ordinary mmseg segmenter (stage 2, from the same CLIP image tower) on the stage-1 pseudo
   masks, and once more on the GT masks (the fully supervised bound), both scored on val;
6. rows that train nothing: the training-free CLIP-ES pseudo masks of the train split from the CLIP
   alone (:mod:`.training_free`), and the stage-1 model's open-vocabulary segmentation (alone, and
   combined with the CLIP's dense map: :mod:`.combined_open_vocab`) and the CLIP's zero-shot tags
   (:mod:`.open_vocab`);
7. prints a table and writes ``summary.json`` and ``overview.png`` (image | CAMs | pseudo mask | GT)
   under the work dir.

Every step is an ordinary command of the project (``tools/train.py``, ``tools/make_pseudo_masks.py``,
``tools/pretrain_clip.py``, ``tools/eval_clip.py``) run as a subprocess whose log is kept in the work
dir (:func:`run_command`); up to ``jobs`` steps run side by side as their inputs become ready (the
small models use one core better than two). A finished step is not run again, an interrupted
training resumes from its last checkpoint. The steps need a source checkout (``configs/`` and
``tools/`` beside the package).
"""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmseg_clip_wsss.apis.config_options import options_dict
from mmseg_clip_wsss.cam import CAMProtocol, draw_overview, multi_scale_flip_cams, read_label_png
from mmseg_clip_wsss.cam.run import build_cam_dataloader_cfg, build_cam_model
from mmseg_clip_wsss.datasets import folder_stamps
from mmseg_clip_wsss.datasets.synthetic import make_demo_data, read_demo_info
from mmseg_clip_wsss.models import write_random_clip_checkpoint
from mmseg_clip_wsss.structures import stack_image_labels

__all__ = ['REPO', 'STAGE1', 'STAGE2', 'prepare_demo_data', 'tiny_text_tower', 'common_options',
           'schedule_options', 'max_iters', 'run_command', 'train', 'pseudo_masks', 'last_val_miou',
           'run_steps', 'run_demo', 'overview', 'print_table']

#: The source checkout: ``configs/`` and ``tools/`` of the steps are read from here.
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: (name, config, summary key, loads the CLIP text tower, what it is) of the stage-1 variants,
#: trained under the same budget from the same pretrained image tower.
STAGE1 = (
    ('stage1', 'configs/demo/clip_wsss_clip-rn_demo.py', 'pseudo_mask_miou', True,
     'ours: text-guided head + RSC-A, learned prompts'),
    ('handcrafted', 'configs/demo/clip_wsss_clip-rn_demo_handcrafted.py', 'handcrafted_prompt_miou', True,
     'same model, hand-written prompt templates'),
    ('random_text', 'configs/demo/clip_wsss_clip-rn_demo_random-text.py', 'random_text_miou', False,
     'same model, random text tower'),
    ('cam_baseline', 'configs/demo/cam_baseline_clip-rn_demo.py', 'cam_baseline_miou', False,
     'plain CAM classifier, same backbone'),
)
STAGE2 = 'configs/demo/stage2_clip-rn_upernet_demo.py'
#: The training-free rows: MaskCLIP's dense map of the demo CLIP (``training_free_*``) and CLIP-ES
#: (``training_free_clip_es_*``).
TRAINING_FREE_CONFIG = 'configs/dense_clip/dense-clip-maskclip_demo-clip_demo.py'
CLIP_ES_CONFIG = 'configs/clip_es/clip-es_demo-clip_demo.py'
#: The open-vocabulary step's combination of the stage-1 head with the CLIP's dense map
#: (``open_vocab_combined_*``; its calibration is fitted on val once and kept beside the figures).
OPEN_VOCAB_COMBINE_CONFIG = 'configs/open_vocab/combined-maskclip_demo-clip_demo.py'
#: The open-vocabulary step's figures in ``summary.json``.
OPEN_VOCAB_KEYS = ('open_vocab_unseen_miou', 'open_vocab_seen_miou', 'open_vocab_closest_seen_miou',
                   'open_vocab_combined_unseen_miou', 'open_vocab_combined_seen_miou',
                   'open_vocab_combined_all_miou', 'tagging_map', 'tagging_precision', 'tagging_recall')
#: The file name of the tiny random text tower of the Swin demo configs and tests.
TINY_CLIP_FILE = 'wsss_tiny_clip.pt'
#: Images of the open-vocabulary split the demo data holds.
NUM_OPENVOCAB = 100


def _check_checkout() -> None:
    if not osp.isdir(osp.join(REPO, 'configs', 'demo')):
        raise FileNotFoundError(f'the demo runs the configs of a source checkout, but '
                                f'{osp.join(REPO, "configs", "demo")} does not exist: install the '
                                'package from a clone of the repository (pip install -e .).')


def prepare_demo_data(data_root: str, world: str = 'demo') -> None:
    """Write the demo data of ``world`` unless ``data_root`` holds a generated dataset (one written by
    an older generator, which drew only the ``'demo'`` world, is written again)."""
    info_file = osp.join(data_root, 'demo_info.json')
    if osp.isfile(info_file):
        if 'world' in read_demo_info(data_root):
            return
        print(f'[demo] {info_file} has no world entry (an older generator): writing the data again')
    make_demo_data(data_root, world=world, num_openvocab=NUM_OPENVOCAB, overwrite=True)


def tiny_text_tower(data_root: str) -> str:
    """``<data_root>/wsss_tiny_clip.pt``: the tiny random open_clip text tower of the Swin demo configs
    (written if absent); returns its path."""
    path = osp.join(data_root, TINY_CLIP_FILE)
    if not osp.isfile(path):
        write_random_clip_checkpoint(path, seed=0)
    return path


def schedule_options(iters: Optional[int]) -> List[str]:
    """``--cfg-options`` of a shorter schedule of ``iters`` iterations (the demo configs' warm-up then
    poly decay, validation and checkpoint at the end); none without ``iters``."""
    if not iters:
        return []
    warmup = min(30, max(1, iters // 2))
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'param_scheduler.0.end={warmup}', f'param_scheduler.1.begin={warmup}',
            f'param_scheduler.1.end={iters}', f'default_hooks.checkpoint.interval={iters}']


def common_options(data_root: str, iters: Optional[int]) -> List[str]:
    """``--cfg-options`` of every demo step: the data root, and a shorter schedule with ``iters``."""
    options = [f'{key}.dataset.data_root={data_root}'
               for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'cam_dataloader')]
    return options + schedule_options(iters)


def max_iters(config: str, iters: Optional[int]) -> int:
    """The iterations a demo step trains: ``iters``, else the config's."""
    return iters or Config.fromfile(osp.join(REPO, config)).train_cfg.max_iters


#: The record of what a run in a work dir was started with (its config's text and the options).
RUN_RECORD = 'run_with.json'


def _named_paths(texts: Sequence[str]) -> List[str]:
    """The quoted strings of ``texts`` (a config's text, ``KEY=VALUE`` options) that look like paths
    (hold a ``/``), relative ones taken from the checkout, as the runs read them."""
    found = set()
    for text in texts:
        found.update(a or b for a, b in re.findall(r"'([^'\n]*/[^'\n]*)'|\"([^\"\n]*/[^\"\n]*)\"", text))
        if '=' in text and '\n' not in text:  # an option: its value, unquoted
            found.update(v.strip(' \'"') for v in text.split('=', 1)[1].split(',') if '/' in v)
    return [p if osp.isabs(p) else osp.join(REPO, p) for p in sorted(found)]


def _run_record(config: str, options: List[str]) -> Dict:
    """The config's text, the options and the stamps of the files they name (a file behind the same
    path that changed -- a CLIP pretrained again, a pool of another seed -- makes another run)."""
    with open(osp.join(REPO, config)) as f:
        text = f.read()
    return dict(config=text, options=list(options), inputs=folder_stamps(_named_paths([text, *options])))


def _finished_checkpoint(work_dir: str, iterations: int) -> Optional[str]:
    """The final checkpoint of a finished run in ``work_dir``, else None."""
    path = osp.join(work_dir, f'iter_{iterations}.pth')
    return path if osp.isfile(path) else None


def _same_run(work_dir: str, config: str, options: List[str]) -> Optional[bool]:
    """Whether the run in ``work_dir`` was started with ``config`` (as its file reads now),
    ``options`` and the files they name as they are now; None when it holds no record of them."""
    try:
        with open(osp.join(work_dir, RUN_RECORD)) as f:
            return json.load(f) == _run_record(config, options)
    except (OSError, ValueError):
        return None


def finished_run(work_dir: str, config: str, options: List[str], iterations: int) -> Optional[str]:
    """The final checkpoint of a finished run in ``work_dir`` started with ``config``, ``options`` and
    the files they name as they are now (:func:`_run_record`), else None: another run is not reused."""
    return _finished_checkpoint(work_dir, iterations) if _same_run(work_dir, config, options) else None


def run_command(name: str, argv: List[str], log_file: str, threads: int) -> None:
    """Run one project command in a subprocess (in the checkout); its output goes to ``log_file``,
    and its progress lines (training iterations, metrics, errors) are echoed with a ``[name]``
    prefix.

    Raises:
        RuntimeError: naming the step and its log when the command fails.
    """
    os.makedirs(osp.dirname(log_file), exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONUNBUFFERED='1')
    keep = ('Iter(train)', 'Iter(val)', 'mIoU:', 'mIoU ', 'Error', 'error:', 'pseudo masks for',
            'Saving checkpoint', '[pretrain_clip]', '[eval_clip]')
    with open(log_file, 'w') as log:
        proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
        for line in proc.stdout:
            log.write(line)
            if any(k in line for k in keep):
                print(f'[{name}] {line.rstrip()[:200]}', flush=True)
        if proc.wait() != 0:
            raise RuntimeError(f'[demo] step "{name}" failed (exit {proc.returncode}); see {log_file}')


def train(name: str, config: str, work_dir: str, options: List[str], iterations: int, fresh: bool,
          threads: int) -> str:
    """``tools/train.py`` into ``work_dir`` (resumed if interrupted); returns the final checkpoint.

    A run is reused (finished) or resumed (interrupted) only if it was started with the same config,
    options and input files (:func:`finished_run`); another is trained again.
    """
    done = None if fresh else finished_run(work_dir, config, options, iterations)
    if done:
        print(f'[{name}] finished run found ({done}): not trained again', flush=True)
        return done
    if not fresh and (_finished_checkpoint(work_dir, iterations) or _same_run(work_dir, config, options) is False):
        print(f'[{name}] {work_dir} holds a run of another config, options or input files: trained again',
              flush=True)
        fresh = True
    argv = ['-m', 'mmseg_clip_wsss.cli.train', config, '--work-dir', work_dir, '--cfg-options', *options]
    if not fresh and osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        if not osp.isfile(osp.join(work_dir, osp.basename(config))):  # mmengine dumps the config there
            raise RuntimeError(f'[demo] {work_dir} holds an unfinished run of another config (no '
                               f'{osp.basename(config)} in it), which cannot be resumed: run the demo '
                               f'with --fresh, or remove {work_dir}.')
        argv.append('--resume')
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, RUN_RECORD), 'w') as f:
        json.dump(_run_record(config, options), f)
    run_command(name, argv, osp.join(work_dir, 'train.log'), threads)
    done = _finished_checkpoint(work_dir, iterations)
    if done is None:
        raise RuntimeError(f'[demo] {config} trained but wrote no iter_{iterations}.pth in {work_dir}')
    return done


def pseudo_masks(name: str, config: str, checkpoint: str, out_dir: str, options: List[str],
                 fresh: bool, threads: int) -> Dict:
    """``tools/make_pseudo_masks.py --eval`` on the train split; returns its ``metrics.json``."""
    argv = ['-m', 'mmseg_clip_wsss.cli.make_pseudo_masks', config, checkpoint, '--out-dir', out_dir, '--eval',
            '--no-progress', '--cfg-options', *options]
    if fresh:
        argv.append('--overwrite')
    run_command(f'{name} pseudo masks', argv, osp.join(osp.dirname(out_dir), 'pseudo_masks.log'),
                threads)
    with open(osp.join(out_dir, 'metrics.json')) as f:
        return json.load(f)


def last_val_miou(work_dir: str) -> float:
    """mIoU (%) of the last validation logged under ``work_dir`` (mmengine's ``scalars.json``)."""
    miou = None
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'mIoU' in record:
                    miou = float(record['mIoU'])
    if miou is None:
        raise RuntimeError(f'[demo] no validation mIoU logged under {work_dir}')
    return miou


def run_steps(steps: Dict[str, Tuple[Callable[[], None], Sequence[str]]], jobs: int) -> None:
    """Run ``steps`` (name -> (function, names of the steps it needs)), up to ``jobs`` at a time; a
    ready step starts in the order ``steps`` lists it.

    Raises:
        The first error a step raises (after the running steps have finished); ValueError for a
        step that needs an unknown step.
    """
    unknown = {d for _, deps in steps.values() for d in deps} - set(steps)
    if unknown:
        raise ValueError(f'steps need unknown steps: {sorted(unknown)}')
    pending, running, done = dict(steps), {}, set()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            for name, (fn, deps) in list(pending.items()):
                if len(running) < jobs and set(deps) <= done:
                    running[pool.submit(fn)] = name
                    del pending[name]
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()
                done.add(running.pop(future))


def _evaluate_clip(data_root: str, fresh: bool, summary: Dict, threads: int) -> None:
    """Zero-shot scores of the pretrained CLIP and of its random init (``tools/eval_clip.py``, redone
    when the CLIP is newer than them) into ``summary``."""
    clip_dir = osp.join(data_root, 'clip')
    out = osp.join(clip_dir, 'eval.json')
    if fresh or not osp.isfile(out) or osp.getmtime(out) < osp.getmtime(osp.join(clip_dir, 'clip.pt')):
        run_command('clip eval', ['-m', 'mmseg_clip_wsss.cli.eval_clip', osp.join(clip_dir, 'clip.pt'), '--data-root',
                                  data_root, '--out', out], osp.join(clip_dir, 'eval.log'), threads)
    with open(out) as f:
        result = json.load(f)
    summary.update(clip_zero_shot_map=result['pretrained']['zero_shot_map'],
                   clip_random_zero_shot_map=result['random']['zero_shot_map'],
                   clip_retrieval_r1=result['pretrained']['image_to_text_r1'],
                   clip_retrieval_r1_text_to_image=result['pretrained']['text_to_image_r1'])


def _wsss_steps(work_dir: str, options: List[str], clip_options: Dict[str, List[str]],
                data_root: str, iterations: Dict[str, int], fresh: bool, threads: int, summary: Dict,
                checkpoints: Dict[str, str]) -> Dict[str, Tuple[Callable[[], None], Sequence[str]]]:
    """Stage 1 -> pseudo masks for every variant, stage 2 on our pseudo masks and on the GT masks."""
    steps = {}

    def _stage2(name: str, masks: str) -> None:
        stage2_dir = osp.join(work_dir, name)
        stage2_options = options + clip_options['backbone'] + [
            f'train_dataloader.dataset.data_prefix.seg_map_path={masks}']
        checkpoints[name] = train(name, STAGE2, stage2_dir, stage2_options, iterations[STAGE2], fresh,
                                  threads)
        summary[f'{name}_val_miou'] = round(last_val_miou(stage2_dir), 2)

    for name, config, key, uses_text, _ in STAGE1:
        run_dir = osp.join(work_dir, name)
        extra = clip_options['backbone'] + (clip_options['text'] if uses_text else [])

        def fit(name=name, config=config, run_dir=run_dir, extra=extra) -> None:
            checkpoints[name] = train(name, config, run_dir, options + extra, iterations[config], fresh,
                                      threads)

        def score(name=name, config=config, run_dir=run_dir, extra=extra, key=key) -> None:
            metrics = pseudo_masks(name, config, checkpoints[name], osp.join(run_dir, 'pseudo_masks'),
                                   options + extra, fresh, threads)
            summary[key] = round(float(metrics['mIoU']), 2)
            summary[f'{name}_per_class_iou'] = metrics.get('per_class_iou')

        steps[name] = (fit, ())
        steps[f'{name}_pseudo_masks'] = (score, (name, ))
        if name == 'stage1':  # the longest chain goes first
            steps['stage2'] = (lambda: _stage2('stage2', osp.join(work_dir, 'stage1', 'pseudo_masks')),
                               ('stage1_pseudo_masks', ))

    steps['stage2_gt'] = (lambda: _stage2('stage2_gt', osp.join(data_root, 'SegmentationClass')), ())
    return steps


def _stale(out: str, source: str, keys: Sequence[str] = ()) -> bool:
    """Whether ``out`` (JSON) is missing, older than ``source``, or lacks one of ``keys``."""
    if not osp.isfile(out) or osp.getmtime(out) < osp.getmtime(source):
        return True
    with open(out) as f:
        written = json.load(f)
    return any(k not in written for k in keys)


def _inference_steps(work_dir: str, data_root: str, clip: str, checkpoints: Dict[str, str], fresh: bool,
                     threads: int, summary: Dict) -> Dict[str, Tuple[Callable[[], None], Sequence[str]]]:
    """The rows that train nothing: CLIP-ES training-free pseudo masks of the train split, and the
    open-vocabulary / tagging figures of the stage-1 model (when the data has the open-vocabulary
    split). Like the other steps, a result found is not computed again."""
    def training_free(name: str, config: str, key: str) -> None:
        run_dir = osp.join(work_dir, name)
        row = osp.join(run_dir, 'row.json')
        if fresh or not osp.isfile(row):
            run_command(name.replace('_', ' '), [
                '-m', 'mmseg_clip_wsss.cli.training_free', '--data-root', data_root, '--clip', clip,
                '--out-dir', osp.join(run_dir, 'pseudo_masks'), '--threads', str(threads), '--row', row,
                '--config', config, '--key', key, '--overwrite'
            ], osp.join(run_dir, 'pseudo_masks.log'), threads)
        with open(row) as f:
            summary.update(json.load(f))

    def open_vocab() -> None:
        out = osp.join(work_dir, 'open_vocab.json')
        if fresh or _stale(out, checkpoints['stage1'], OPEN_VOCAB_KEYS):
            calibration = osp.join(work_dir, 'open_vocab_calibration.json')  # fitted for another model
            if osp.isfile(calibration) and (fresh or _stale(calibration, checkpoints['stage1'])):
                os.remove(calibration)
            run_command('open vocabulary', ['-m', 'mmseg_clip_wsss.cli.open_vocab', STAGE1[0][1],
                                            checkpoints['stage1'], '--data-root', data_root, '--clip', clip,
                                            '--combine', OPEN_VOCAB_COMBINE_CONFIG, '--out', out, '--overwrite'],
                        osp.join(work_dir, 'open_vocab.log'), threads)
        with open(out) as f:
            figures = json.load(f)
        summary.update({k: figures[k] for k in OPEN_VOCAB_KEYS})

    steps = dict(training_free_maskclip=(lambda: training_free('training_free_maskclip', TRAINING_FREE_CONFIG,
                                                               'training_free'), ()),
                 training_free_clip_es=(lambda: training_free('training_free_clip_es', CLIP_ES_CONFIG,
                                                              'training_free_clip_es'), ()))
    if 'open_vocab_classes' in read_demo_info(data_root):
        steps['open_vocab'] = (open_vocab, ('stage1', ))
    else:
        print(f'[demo] {data_root} has no open-vocabulary split: no open-vocabulary or tagging row '
              f'(write the data with tools/make_demo_data.py --num-openvocab {NUM_OPENVOCAB})')
    return steps


def _pretrain_demo_clip(data_root: str, clip_dir: str, clip_args: Sequence[str], fresh: bool) -> Dict:
    """Pretrain the demo world's CLIP once (cached in ``clip_dir``); returns its pretraining time."""
    print(f'[demo] the demo world\'s CLIP: pretrained once (about 8 minutes on 2 cores, 11 on a CPU '
          f'without native bfloat16), then reused from {clip_dir}', flush=True)
    run_command('clip pretraining', ['-m', 'mmseg_clip_wsss.cli.pretrain_clip', '--data-root', data_root,
                                     '--no-progress', *clip_args, *(['--fresh'] if fresh else [])],
                osp.join(clip_dir, 'pretrain.log'), os.cpu_count() or 1)
    with open(osp.join(clip_dir, 'pretrain.json')) as f:
        return dict(clip_pretrain_seconds=json.load(f)['seconds'])


def _demo_steps(work_dir: str, data_root: str, clip: str, options: List[str],
                clip_options: Dict[str, List[str]], iterations: Dict[str, int], fresh: bool,
                threads: int, summary: Dict, checkpoints: Dict[str, str]
                ) -> Dict[str, Tuple[Callable[[], None], Sequence[str]]]:
    """Every step of the demo, in the order :func:`run_steps` starts them when ready."""
    steps = _wsss_steps(work_dir, options, clip_options, data_root, iterations, fresh, threads, summary,
                        checkpoints)
    steps['clip_eval'] = (lambda: _evaluate_clip(data_root, fresh, summary, threads), ())
    steps.update(_inference_steps(work_dir, data_root, clip, checkpoints, fresh, threads, summary))
    # the open-vocabulary figures need stage 1 only: they start beside the other trainings, not after them
    first = ('stage1', 'stage1_pseudo_masks', 'stage2', 'open_vocab')
    return {**{name: steps[name] for name in first if name in steps}, **steps}


def _write_summary(work_dir: str, summary: Dict) -> Dict:
    """``summary.json``: the headline figures first; returns the summary in that order."""
    first = ('pseudo_mask_miou', 'handcrafted_prompt_miou', 'random_text_miou', 'cam_baseline_miou',
             'stage2_val_miou', 'stage2_gt_val_miou', 'clip_zero_shot_map', 'clip_random_zero_shot_map',
             'training_free_miou', 'training_free_clip_es_miou', 'open_vocab_unseen_miou', 'open_vocab_closest_seen_miou', 'tagging_map',
             'clip_retrieval_r1', 'clip_pretrain_seconds', 'seconds')
    ordered = {k: summary[k] for k in first if k in summary}
    ordered.update({k: v for k, v in summary.items() if k not in ordered})
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(ordered, f, indent=2)
    return ordered


def run_demo(work_dir: str = 'work_dirs/demo',
             data_root: str = 'data/demo',
             world: str = 'demo',
             iters: Optional[int] = None,
             clip_args: Sequence[str] = (),
             num_overview: int = 8,
             jobs: int = 2,
             fresh: bool = False) -> Dict:
    """Run the demo (see the module docstring).

    Args:
        work_dir (str): Where everything is written. Defaults to ``'work_dirs/demo'``.
        data_root (str): Demo data (generated if absent); its CLIP is cached in ``<data_root>/clip``.
            Defaults to ``'data/demo'``.
        world (str): World preset of data written here (:data:`~.world.WORLD_PRESETS`). Defaults
            to ``'demo'``.
        iters (int, optional): Training iterations of every model. Defaults to the configs'.
        clip_args (Sequence[str]): Extra arguments of ``tools/pretrain_clip.py`` (a smaller corpus
            or schedule: ``['--pairs', '256', '--steps', '2']``).
        num_overview (int): Images in ``overview.png``. Defaults to 8.
        jobs (int): Steps run side by side (1 or 2); the cores are shared between them. Defaults
            to 2.
        fresh (bool): Redo every step, the CLIP included, even where its result exists.

    Returns:
        dict: What ``summary.json`` holds (mIoU and mAP in %, ``seconds`` of wall time).
    """
    start = time.time()
    _check_checkout()
    work_dir, data_root = osp.abspath(work_dir), osp.abspath(data_root)
    os.makedirs(work_dir, exist_ok=True)
    jobs = max(1, min(jobs, 2))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    prepare_demo_data(data_root, world)
    clip_dir = osp.join(data_root, 'clip')
    summary = _pretrain_demo_clip(data_root, clip_dir, clip_args, fresh)
    clip = osp.join(clip_dir, 'clip.pt')
    clip_options = dict(backbone=[f'model.backbone.pretrained={clip}'],
                        text=[f'model.text_encoder.pretrained={clip}'])
    options = common_options(data_root, iters)
    # read in this thread: mmengine's config parsing is not thread-safe
    iterations = {config: max_iters(config, iters) for config in [c for _, c, *_ in STAGE1] + [STAGE2]}
    checkpoints: Dict[str, str] = {}
    run_steps(_demo_steps(work_dir, data_root, clip, options, clip_options, iterations, fresh, threads,
                          summary, checkpoints), jobs)

    overview(STAGE1[0][1], checkpoints['stage1'], options + clip_options['backbone'] + clip_options['text'],
             osp.join(work_dir, 'stage1', 'pseudo_masks'), osp.join(work_dir, 'overview.png'),
             num_overview)
    summary['seconds'] = round(time.time() - start, 1)
    summary['checkpoints'] = checkpoints
    ordered = _write_summary(work_dir, summary)
    print_table(ordered)
    print(f'[demo] wrote {osp.join(work_dir, "summary.json")} and {osp.join(work_dir, "overview.png")}')
    return ordered


def overview(config: str, checkpoint: str, options: List[str], pseudo_dir: str, out_file: str,
             num_images: int) -> str:
    """``overview.png``: CAMs (the config's CAM protocol), pseudo masks and GT of ``num_images`` train
    images, those with several classes first."""
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.merge_from_dict(options_dict(options))
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    protocol = CAMProtocol.from_cfg(cfg.get('cam_cfg'))
    model = build_cam_model(cfg, checkpoint)
    dataset = Runner.build_dataloader(build_cam_dataloader_cfg(cfg, 'train')).dataset
    order = sorted(range(len(dataset)),
                   key=lambda i: -int(dataset.get_data_info(i)['gt_image_labels'].sum()))
    rows = dict(images=[], cams=[], labels=[], pseudo=[], gt=[], titles=[])
    for i in sorted(order[:num_images]):
        sample = dataset[i]
        batch = model.data_preprocessor(dict(inputs=[sample['inputs']],
                                             data_samples=[sample['data_samples']]), False)
        labels = stack_image_labels(batch['data_samples'])  # (1, K)
        cams = multi_scale_flip_cams(model, batch['inputs'], labels, scales=protocol.scales,
                                     flip=protocol.flip)[0]  # (K, H, W)
        info = sample['data_samples'].metainfo
        img_id = osp.splitext(osp.basename(info['img_path']))[0]
        image = sample['inputs'].numpy().transpose(1, 2, 0)[..., ::-1]  # BGR (H, W, 3) -> RGB
        rows['images'].append(np.ascontiguousarray(image))
        rows['cams'].append(cams.numpy())
        rows['labels'].append([k for k in labels[0].nonzero().flatten().tolist() if k != 0])
        rows['pseudo'].append(read_label_png(osp.join(pseudo_dir, img_id + '.png')))
        rows['gt'].append(read_label_png(info['seg_map_path']))
        rows['titles'].append(img_id)
    return draw_overview(rows['images'], rows['cams'], rows['labels'], rows['pseudo'], rows['gt'],
                         dataset.metainfo['classes'], out_file, titles=rows['titles'])


def print_table(summary: Dict) -> None:
    """The demo's figures as a markdown table, and its wall time."""
    rows = [('pseudo masks, ours (learned prompts, RSC-A)', 'pseudo_mask_miou', 'mIoU'),
            ('pseudo masks, hand-written prompts', 'handcrafted_prompt_miou', 'mIoU'),
            ('pseudo masks, random text tower', 'random_text_miou', 'mIoU'),
            ('pseudo masks, CAM baseline', 'cam_baseline_miou', 'mIoU'),
            ('pseudo masks, training-free (MaskCLIP dense map)', 'training_free_miou', 'mIoU'),
            ('pseudo masks, training-free CLIP-ES', 'training_free_clip_es_miou', 'mIoU'),
            ('stage 2 on our pseudo masks (val)', 'stage2_val_miou', 'mIoU'),
            ('stage 2 on GT masks (val, the bound)', 'stage2_gt_val_miou', 'mIoU'),
            ('open vocabulary: unseen classes named', 'open_vocab_unseen_miou', 'mIoU'),
            ('open vocabulary: closest seen class', 'open_vocab_closest_seen_miou', 'mIoU'),
            ('open vocabulary: head + dense map, unseen classes', 'open_vocab_combined_unseen_miou', 'mIoU'),
            ('CLIP zero-shot tags (val, thresholds from train)', 'tagging_precision', 'prec.'),
            ('CLIP zero-shot tags (val, thresholds from train)', 'tagging_recall', 'recall'),
            ('CLIP zero-shot multi-label (val)', 'clip_zero_shot_map', 'mAP'),
            ('same CLIP, random init', 'clip_random_zero_shot_map', 'mAP'),
            ('CLIP image->text retrieval', 'clip_retrieval_r1', 'R@1')]
    rows = [(label, summary[key], metric) for label, key, metric in rows if key in summary]
    width = max(len(r[0]) for r in rows)
    print(f'\n| {"demo result".ljust(width)} | metric | value (%) |\n|{"-" * (width + 2)}|--------|-----------|')
    for label, value, metric in rows:
        print(f'| {label.ljust(width)} | {metric.ljust(6)} | {value:9.2f} |')
    print(f"\nwall time: {summary['seconds']:.0f} s (CLIP pretraining {summary['clip_pretrain_seconds']:.0f} s, "
          'cached after the first run)')
