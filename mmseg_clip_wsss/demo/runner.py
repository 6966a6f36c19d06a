"""The WSSS pipeline on the generated demo data: its steps, and the whole run ``make demo`` makes.

:func:`run_demo` (the command line is ``tools/run_demo.py``):

1. writes the demo data (:func:`~mmseg_clip_wsss.demo.make_demo_data`) and a tiny random open_clip
   text tower, if absent (:func:`prepare_demo_assets`);
2. trains stage 1 (small Swin -> RSC-A neck -> text-guided head, learnable prompts) from image-level
   labels, and under the same budget the hand-written-prompt variant and the plain CAM baseline;
3. writes pseudo masks of the train split for each of them (multi-scale + flip CAMs, refinement) and
   scores them against the GT masks (mmseg's ``IoUMetric``);
4. trains an ordinary mmseg segmenter (stage 2) on the stage-1 pseudo masks, scores it on val;
5. prints a table and writes ``summary.json`` and ``overview.png`` (image | CAMs | pseudo mask | GT)
   under the work dir.

Every step is an ordinary command of the project (``tools/train.py``, ``tools/make_pseudo_masks.py``)
run as a subprocess whose log is kept in the work dir (:func:`train`, :func:`pseudo_masks`); two
chains of steps run side by side (the small models use one core better than two). A finished step
is not run again, an interrupted training resumes from its last checkpoint. The label-efficiency
benchmark (:mod:`mmseg_clip_wsss.benchmark.label_efficiency`) runs the same steps. The steps need a
source checkout (``configs/`` and ``tools/`` beside the package).
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

__all__ = ['REPO', 'STAGE1', 'STAGE2', 'SUMMARY_KEYS', 'prepare_demo_assets', 'common_options',
           'max_iters', 'run_command', 'train', 'pseudo_masks', 'last_val_miou', 'run_demo',
           'overview', 'print_table']

#: The source checkout: ``configs/`` and ``tools/`` of the steps are read from here.
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: (name, config, what it is) of the stage-1 variants, trained under the same budget.
STAGE1 = (
    ('stage1', 'configs/demo/clip_wsss_swin_demo.py', 'ours: text-guided head + RSC-A, learned prompts'),
    ('handcrafted', 'configs/demo/clip_wsss_swin_demo_handcrafted.py',
     'same model, hand-written prompt templates'),
    ('cam_baseline', 'configs/demo/cam_baseline_swin_demo.py', 'plain CAM classifier, same backbone'),
)
STAGE2 = 'configs/demo/stage2_swin_upernet_demo.py'
SUMMARY_KEYS = {'stage1': 'pseudo_mask_miou', 'handcrafted': 'handcrafted_prompt_miou',
                'cam_baseline': 'cam_baseline_miou'}
#: The file name of the tiny text tower beside the demo data.
TINY_CLIP_FILE = 'wsss_tiny_clip.pt'


def _check_checkout() -> None:
    if not osp.isfile(osp.join(REPO, 'tools', 'train.py')):
        raise FileNotFoundError(f'the demo runs the tools and configs of a source checkout, but '
                                f'{osp.join(REPO, "tools", "train.py")} does not exist: install the '
                                'package from a clone of the repository (pip install -e .).')


def prepare_demo_assets(data_root: str, with_data: bool = True) -> str:
    """Write the demo data (if ``with_data`` and absent) and the tiny text tower (if absent).

    Returns:
        str: Path of the tiny open_clip checkpoint (``<data_root>/wsss_tiny_clip.pt``).
    """
    from mmseg_clip_wsss.models import write_random_clip_checkpoint
    from .data import make_demo_data
    if with_data and not osp.isfile(osp.join(data_root, 'demo_info.json')):
        make_demo_data(data_root)
    tiny_clip = osp.join(data_root, TINY_CLIP_FILE)
    if not osp.isfile(tiny_clip):
        write_random_clip_checkpoint(tiny_clip, seed=0)
    return tiny_clip


def common_options(data_root: str, iters: Optional[int]) -> List[str]:
    """``--cfg-options`` of every demo step: the data root, and a shorter schedule with ``iters``."""
    options = [f'{key}.dataset.data_root={data_root}'
               for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'cam_dataloader')]
    if iters:
        warmup = min(30, max(1, iters // 2))
        options += [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
                    f'param_scheduler.0.end={warmup}', f'param_scheduler.1.begin={warmup}',
                    f'param_scheduler.1.end={iters}', f'default_hooks.checkpoint.interval={iters}']
    return options


def max_iters(config: str, iters: Optional[int]) -> int:
    """The iterations a demo step trains: ``iters``, else the config's."""
    from mmengine.config import Config
    return iters or Config.fromfile(osp.join(REPO, config)).train_cfg.max_iters


def _finished_checkpoint(work_dir: str, iterations: int) -> Optional[str]:
    """The final checkpoint of a finished run in ``work_dir``, else None."""
    path = osp.join(work_dir, f'iter_{iterations}.pth')
    return path if osp.isfile(path) else None


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
            'Saving checkpoint')
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
    """``tools/train.py`` into ``work_dir`` (resumed if interrupted); returns the final checkpoint."""
    done = None if fresh else _finished_checkpoint(work_dir, iterations)
    if done:
        print(f'[{name}] finished run found ({done}): not trained again', flush=True)
        return done
    argv = ['tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *options]
    if not fresh and osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        argv.append('--resume')
    run_command(name, argv, osp.join(work_dir, 'train.log'), threads)
    done = _finished_checkpoint(work_dir, iterations)
    if done is None:
        raise RuntimeError(f'[demo] {config} trained but wrote no iter_{iterations}.pth in {work_dir}')
    return done


def pseudo_masks(name: str, config: str, checkpoint: str, out_dir: str, options: List[str],
                 fresh: bool, threads: int) -> Dict:
    """``tools/make_pseudo_masks.py --eval`` on the train split; returns its ``metrics.json``."""
    argv = ['tools/make_pseudo_masks.py', config, checkpoint, '--out-dir', out_dir, '--eval',
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


def _run_chain(names: List[str], work_dir: str, options: List[str], text_option: List[str],
               iterations: Dict[str, int], fresh: bool, threads: int, summary: Dict,
               checkpoints: Dict[str, str]) -> None:
    """Stage 1 -> pseudo masks (-> stage 2 after ``'stage1'``) for each stage-1 variant of ``names``."""
    configs = {n: c for n, c, _ in STAGE1}
    for name in names:
        run_dir = osp.join(work_dir, name)
        extra = text_option if name != 'cam_baseline' else []
        checkpoints[name] = train(name, configs[name], run_dir, options + extra,
                                  iterations[configs[name]], fresh, threads)
        metrics = pseudo_masks(name, configs[name], checkpoints[name],
                               osp.join(run_dir, 'pseudo_masks'), options + extra, fresh, threads)
        summary[SUMMARY_KEYS[name]] = round(float(metrics['mIoU']), 2)
        summary[f'{name}_per_class_iou'] = metrics.get('per_class_iou')
        if name == 'stage1':
            stage2_dir = osp.join(work_dir, 'stage2')
            stage2_options = options + [
                'train_dataloader.dataset.data_prefix.seg_map_path=' +
                osp.join(run_dir, 'pseudo_masks'),
                f"model.backbone.init_cfg.checkpoint={checkpoints['stage1']}"
            ]
            checkpoints['stage2'] = train('stage2', STAGE2, stage2_dir, stage2_options,
                                          iterations[STAGE2], fresh, threads)
            summary['stage2_val_miou'] = round(last_val_miou(stage2_dir), 2)


def run_demo(work_dir: str = 'work_dirs/demo',
             data_root: str = 'data/demo',
             iters: Optional[int] = None,
             num_overview: int = 8,
             jobs: int = 2,
             fresh: bool = False) -> Dict:
    """Run the demo (see the module docstring).

    Args:
        work_dir (str): Where everything is written. Defaults to ``'work_dirs/demo'``.
        data_root (str): Demo data (generated if absent). Defaults to ``'data/demo'``.
        iters (int, optional): Training iterations of every model. Defaults to the configs'.
        num_overview (int): Images in ``overview.png``. Defaults to 8.
        jobs (int): Chains of steps run side by side (1 or 2); the cores are shared between them.
            Defaults to 2.
        fresh (bool): Redo every step even where its result exists. Defaults to False.

    Returns:
        dict: What ``summary.json`` holds (mIoU in %, ``seconds`` of wall time).
    """
    start = time.time()
    _check_checkout()
    work_dir, data_root = osp.abspath(work_dir), osp.abspath(data_root)
    os.makedirs(work_dir, exist_ok=True)
    jobs = max(1, min(jobs, 2))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    tiny_clip = prepare_demo_assets(data_root)
    options = common_options(data_root, iters)
    text_option = [f'model.text_encoder.pretrained={tiny_clip}']

    # two chains, side by side when jobs=2: stage 1 -> pseudo masks -> stage 2  |
    # hand-written prompts -> pseudo masks -> CAM baseline -> pseudo masks
    summary: Dict = {}
    checkpoints: Dict[str, str] = {}
    # read in this thread: mmengine's config parsing is not thread-safe
    iterations = {config: max_iters(config, iters) for config in [c for _, c, _ in STAGE1] + [STAGE2]}
    chains = [['stage1'], ['handcrafted', 'cam_baseline']] if jobs == 2 else \
        [['stage1', 'handcrafted', 'cam_baseline']]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_chain, chain, work_dir, options, text_option, iterations, fresh,
                               threads, summary, checkpoints) for chain in chains]
        for future in futures:
            future.result()

    overview(STAGE1[0][1], checkpoints['stage1'], options + text_option,
             osp.join(work_dir, 'stage1', 'pseudo_masks'), osp.join(work_dir, 'overview.png'),
             num_overview)
    summary['seconds'] = round(time.time() - start, 1)
    summary['checkpoints'] = checkpoints
    ordered = {k: summary[k] for k in ('pseudo_mask_miou', 'cam_baseline_miou',
                                       'handcrafted_prompt_miou', 'stage2_val_miou', 'seconds')}
    ordered.update({k: v for k, v in summary.items() if k not in ordered})
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(ordered, f, indent=2)
    print_table(ordered)
    print(f'[demo] wrote {osp.join(work_dir, "summary.json")} and {osp.join(work_dir, "overview.png")}')
    return ordered


def overview(config: str, checkpoint: str, options: List[str], pseudo_dir: str, out_file: str,
             num_images: int) -> str:
    """``overview.png``: CAMs (the config's CAM protocol), pseudo masks and GT of ``num_images`` train
    images, those with several classes first."""
    import numpy as np
    from mmengine.config import Config, DictAction
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from mmseg_clip_wsss.cam import CAMProtocol, draw_overview, multi_scale_flip_cams, read_label_png
    from mmseg_clip_wsss.cam.cli import build_cam_dataloader_cfg, build_cam_model
    from mmseg_clip_wsss.structures import stack_image_labels

    cfg = Config.fromfile(osp.join(REPO, config))
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(['--o', *options]).o)
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
    rows = [('pseudo masks, ours (learned prompts, RSC-A)', summary['pseudo_mask_miou']),
            ('pseudo masks, hand-written prompts', summary['handcrafted_prompt_miou']),
            ('pseudo masks, CAM baseline', summary['cam_baseline_miou']),
            ('stage 2 on our pseudo masks (val)', summary['stage2_val_miou'])]
    width = max(len(r[0]) for r in rows)
    print(f'\n| {"demo result".ljust(width)} | mIoU (%) |\n|{"-" * (width + 2)}|----------|')
    for label, value in rows:
        print(f'| {label.ljust(width)} | {value:8.2f} |')
    print(f'\nwall time: {summary["seconds"]:.0f} s')
