"""The whole WSSS pipeline on the generated demo data (what ``make demo`` runs).

::

    python tools/run_demo.py [--work-dir work_dirs/demo] [--data-root data/demo]

1. writes the demo data (``tools/make_demo_data.py``) and a tiny random open_clip text tower, if absent;
2. trains stage 1 (small Swin -> RSC-A neck -> text-guided head, learnable prompts) from image-level
   labels, and under the same budget the hand-written-prompt variant and the plain CAM baseline;
3. writes pseudo masks of the train split for each of them (multi-scale + flip CAMs, refinement) and
   scores them against the GT masks (mmseg's ``IoUMetric``);
4. trains an ordinary mmseg segmenter (stage 2) on the stage-1 pseudo masks, scores it on val;
5. prints a table and writes ``summary.json`` and ``overview.png`` (image | CAMs | pseudo mask | GT)
   under the work dir.

Every step is an ordinary command of the project (``tools/train.py``, ``tools/make_pseudo_masks.py``)
run as a subprocess whose log is kept in the work dir; two chains of steps run side by side (the
small models use one core better than two). A finished step is not run again, an interrupted
training resumes from its last checkpoint.
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

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

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


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run the WSSS demo end to end')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where everything is written')
    parser.add_argument('--data-root', default='data/demo', help='demo data (generated if absent)')
    parser.add_argument('--iters', type=int, help='training iterations of every model (default: config)')
    parser.add_argument('--num-overview', type=int, default=8, help='images in overview.png')
    parser.add_argument('--jobs', type=int, default=2,
                        help='steps run side by side (1 or 2); the cores are shared between them')
    parser.add_argument('--fresh', action='store_true',
                        help='redo every step even where its result exists')
    return parser.parse_args(argv)


def _common_options(data_root: str, iters: Optional[int]) -> List[str]:
    options = [f'{key}.dataset.data_root={data_root}'
               for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'cam_dataloader')]
    if iters:
        warmup = min(30, max(1, iters // 2))
        options += [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
                    f'param_scheduler.0.end={warmup}', f'param_scheduler.1.begin={warmup}',
                    f'param_scheduler.1.end={iters}', f'default_hooks.checkpoint.interval={iters}']
    return options


def _finished_checkpoint(work_dir: str, max_iters: int) -> Optional[str]:
    """The final checkpoint of a finished run in ``work_dir``, else None."""
    path = osp.join(work_dir, f'iter_{max_iters}.pth')
    return path if osp.isfile(path) else None


def _max_iters(config: str, iters: Optional[int]) -> int:
    from mmengine.config import Config
    return iters or Config.fromfile(config).train_cfg.max_iters


def run_command(name: str, argv: List[str], log_file: str, threads: int) -> None:
    """Run one project command in a subprocess; its output goes to ``log_file``, and its progress
    lines (training iterations, metrics, errors) are echoed with a ``[name]`` prefix."""
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


def train(name: str, config: str, work_dir: str, options: List[str], max_iters: int, fresh: bool,
          threads: int) -> str:
    """``tools/train.py`` into ``work_dir`` (resumed if interrupted); returns the final checkpoint."""
    done = None if fresh else _finished_checkpoint(work_dir, max_iters)
    if done:
        print(f'[{name}] finished run found ({done}): not trained again', flush=True)
        return done
    argv = ['tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *options]
    if not fresh and osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        argv.append('--resume')
    run_command(name, argv, osp.join(work_dir, 'train.log'), threads)
    done = _finished_checkpoint(work_dir, max_iters)
    if done is None:
        raise RuntimeError(f'[demo] {config} trained but wrote no iter_{max_iters}.pth in {work_dir}')
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


def main(argv: Optional[List[str]] = None) -> Dict:
    """Run the demo; returns what ``summary.json`` holds."""
    args = parse_args(argv)
    start = time.time()
    os.chdir(REPO)
    work_dir, data_root = osp.abspath(args.work_dir), osp.abspath(args.data_root)
    os.makedirs(work_dir, exist_ok=True)
    jobs = max(1, min(args.jobs, 2))
    threads = max(1, (os.cpu_count() or 1) // jobs)

    # 1. data and the tiny text tower
    from mmseg_clip_wsss.models.text import write_random_clip_checkpoint
    if not osp.isfile(osp.join(data_root, 'demo_info.json')):
        sys.path.insert(0, osp.join(REPO, 'tools'))
        from make_demo_data import make_demo_data
        make_demo_data(data_root)
    tiny_clip = osp.join(data_root, 'wsss_tiny_clip.pt')
    if not osp.isfile(tiny_clip):
        write_random_clip_checkpoint(tiny_clip, seed=0)
    options = _common_options(data_root, args.iters)
    text_option = [f'model.text_encoder.pretrained={tiny_clip}']

    # 2-4. two chains of steps, run side by side when jobs=2:
    #   stage 1 -> pseudo masks -> stage 2  |  hand-written prompts -> pseudo masks -> CAM baseline -> pseudo masks
    summary: Dict = {}
    checkpoints: Dict[str, str] = {}
    # read in this thread: mmengine's config parsing is not thread-safe
    max_iters = {config: _max_iters(config, args.iters) for config in [c for _, c, _ in STAGE1] + [STAGE2]}

    def run_chain(names):
        for name in names:
            config = dict((n, c) for n, c, _ in STAGE1)[name]
            run_dir = osp.join(work_dir, name)
            extra = text_option if name != 'cam_baseline' else []
            checkpoints[name] = train(name, config, run_dir, options + extra, max_iters[config],
                                      args.fresh, threads)
            metrics = pseudo_masks(name, config, checkpoints[name], osp.join(run_dir, 'pseudo_masks'),
                                   options + extra, args.fresh, threads)
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
                                              max_iters[STAGE2], args.fresh, threads)
                summary['stage2_val_miou'] = round(last_val_miou(stage2_dir), 2)

    chains = [['stage1'], ['handcrafted', 'cam_baseline']]
    if jobs == 1:
        chains = [['stage1', 'handcrafted', 'cam_baseline']]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(run_chain, chain) for chain in chains]:
            future.result()

    # 5. picture, table, summary
    overview(STAGE1[0][1], checkpoints['stage1'], options + text_option,
             osp.join(work_dir, 'stage1', 'pseudo_masks'), osp.join(work_dir, 'overview.png'),
             args.num_overview)
    summary['seconds'] = round(time.time() - start, 1)
    summary['checkpoints'] = checkpoints
    ordered = {k: summary[k] for k in ('pseudo_mask_miou', 'cam_baseline_miou', 'handcrafted_prompt_miou',
                                       'stage2_val_miou', 'seconds')}
    ordered.update({k: v for k, v in summary.items() if k not in ordered})
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(ordered, f, indent=2)
    print_table(ordered)
    print(f'[demo] wrote {osp.join(work_dir, "summary.json")} and {osp.join(work_dir, "overview.png")}')
    return ordered


def overview(config: str, checkpoint: str, options: List[str], pseudo_dir: str, out_file: str,
             num_images: int) -> str:
    """``overview.png``: CAMs (same multi-scale + flip protocol), pseudo masks and GT of the first
    ``num_images`` train images, those with several classes first."""
    import numpy as np
    from mmengine.config import Config, DictAction
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from mmseg_clip_wsss.cam import draw_overview, multi_scale_flip_cams, read_label_png
    from mmseg_clip_wsss.cam.cli import build_cam_dataloader_cfg, build_cam_model
    from mmseg_clip_wsss.structures import stack_image_labels

    cfg = Config.fromfile(config)
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(['--o', *options]).o)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = build_cam_model(cfg, checkpoint)
    dataset = Runner.build_dataloader(build_cam_dataloader_cfg(cfg, 'train')).dataset
    class_names = dataset.metainfo['classes']
    order = sorted(range(len(dataset)), key=lambda i: -int(dataset.get_data_info(i)['gt_image_labels'].sum()))
    rows = dict(images=[], cams=[], labels=[], pseudo=[], gt=[], titles=[])
    for i in sorted(order[:num_images]):
        sample = dataset[i]
        batch = model.data_preprocessor(dict(inputs=[sample['inputs']],
                                             data_samples=[sample['data_samples']]), False)
        labels = stack_image_labels(batch['data_samples'])  # (1, K)
        cams = multi_scale_flip_cams(model, batch['inputs'], labels, scales=cfg.cam_cfg.scales,
                                     flip=cfg.cam_cfg.flip)[0]  # (K, H, W)
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
                         class_names, out_file, titles=rows['titles'])


def print_table(summary: Dict) -> None:
    rows = [('pseudo masks, ours (learned prompts, RSC-A)', summary['pseudo_mask_miou']),
            ('pseudo masks, hand-written prompts', summary['handcrafted_prompt_miou']),
            ('pseudo masks, CAM baseline', summary['cam_baseline_miou']),
            ('stage 2 on our pseudo masks (val)', summary['stage2_val_miou'])]
    width = max(len(r[0]) for r in rows)
    print(f'\n| {"demo result".ljust(width)} | mIoU (%) |\n|{"-" * (width + 2)}|----------|')
    for label, value in rows:
        print(f'| {label.ljust(width)} | {value:8.2f} |')
    print(f'\nwall time: {summary["seconds"]:.0f} s')


if __name__ == '__main__':
    main()
