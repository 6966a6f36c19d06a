"""``python tools/make_pseudo_masks.py CONFIG [CHECKPOINT] --out-dir DIR [--split train] [--eval]
[--scales 1.0 0.5 1.5] [--no-flip] [--refine par|crf|none] [--bg-mode threshold|prompt|complement]
[--bg-threshold T] [--ignore-band LOW HIGH] [--ignore-margin M] [--batch-size B] [--workers N]
[--loader-workers N] [--amp] [--cfg-options ...]``: write CAM
pseudo masks for a dataset split (:func:`mmseg_clip_wsss.cam.run.make_pseudo_masks`; the config keys
it reads are listed in :mod:`mmseg_clip_wsss.cam.run`)."""
import argparse
import os.path as osp
from typing import Dict, List, Optional

from mmengine.config import Config

from mmseg_clip_wsss.apis.preflight import check_config_classes, read_config
from mmseg_clip_wsss.cam.protocol import BG_MODES, CAMProtocol
from mmseg_clip_wsss.cam.run import check_split, init_distributed, make_pseudo_masks
from . import INPUT_ERRORS, device_arg, finished_files, float_between, int_at_least, run_tool
from .runner_args import (add_cfg_options_arg, add_local_rank_arg, merge_cfg_options, naming_cfg_options,
                          naming_clip_download)

__all__ = ['parse_args', 'protocol_from_args', 'main', 'interrupted_line', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line of ``tools/make_pseudo_masks.py``."""
    parser = argparse.ArgumentParser(
        description='Write CAM pseudo masks (VOC palette PNGs) for a dataset split')
    parser.add_argument('config', help='config file of the stage-1 (or CAM baseline) model')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint file (none for a training-free model such as TrainingFreeCLIPES)')
    parser.add_argument('--out-dir', required=True, help='directory for <img_id>.png pseudo masks')
    parser.add_argument('--split', default='train',
                        help='which dataloader of the config to use: train (cam_dataloader if present, '
                        'else train_dataloader), val, test')
    parser.add_argument('--eval', action='store_true',
                        help='compute mIoU vs the ground-truth masks and write OUT_DIR/metrics.json')
    parser.add_argument('--scales', type=float, nargs='+', help='CAM scales (default: cam_cfg, else '
                        'CAMProtocol\'s)')
    parser.add_argument('--no-flip', action='store_true', help='no horizontal-flip augmentation')
    parser.add_argument('--refine', choices=['par', 'crf', 'none'],
                        help='refinement: par (pixel-adaptive, torch), crf (needs pydensecrf), none')
    parser.add_argument('--bg-mode', choices=BG_MODES,
                        help='background by a threshold on the CAMs, the background-prompt channel, or '
                        '(1 - max CAM) ** cam_cfg.bg_power (complement, CLIP-ES)')
    parser.add_argument('--bg-threshold', type=float_between(0, 1),
                        help='background score in threshold mode, 0 to 1')
    parser.add_argument('--ignore-band', type=float_between(0, 1), nargs=2, metavar=('LOW', 'HIGH'),
                        help='foreground CAM between LOW and HIGH -> ignore (255); the band must '
                        'contain the background threshold')
    parser.add_argument('--ignore-margin', type=float_between(0),
                        help='top-1 minus top-2 score below this -> ignore (255); 0 or more')
    parser.add_argument('--batch-size', type=int_at_least(1),
                        help='images per batch (same-size images only), 1 or more')
    parser.add_argument('--amp', action='store_const', const='bf16',
                        help='forward passes under bfloat16 autocast (GPUs; CPUs with AVX512-BF16 / '
                        'AMX): faster, masks differ from fp32 ones in a few pixels')
    parser.add_argument('--workers', type=int_at_least(0), default=0,
                        help='processes that finish the masks (dense CRF, the refinement of a model on '
                        'the CPU, PNG writing) while the model runs; 0 (default): in this process. '
                        'The PNGs are the same for any number')
    parser.add_argument('--loader-workers', type=int_at_least(0), default=None,
                        help='data-loader processes that load and decode the images (default: the '
                        "config's num_workers)")
    parser.add_argument('--device', type=device_arg, default=None,
                        help='cpu, cuda, cuda:0 ... (default: cuda if available)')
    parser.add_argument('--overwrite', action='store_true',
                        help='rewrite existing masks (default: skip valid existing PNGs, i.e. resume)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher: with pytorch (torchrun) or slurm (srun) every process '
                        'writes the masks of its share of the images')
    add_local_rank_arg(parser)
    add_cfg_options_arg(parser, 'cam_cfg.bg_threshold=0.4')
    args = parser.parse_args(argv)
    if args.ignore_band is not None and args.ignore_band[0] > args.ignore_band[1]:
        parser.error(f'argument --ignore-band: LOW {args.ignore_band[0]} is above HIGH '
                     f'{args.ignore_band[1]}; give the band as LOW HIGH, e.g. --ignore-band '
                     f'{args.ignore_band[1]} {args.ignore_band[0]}')
    return args


def protocol_from_args(cfg: Config, args: argparse.Namespace) -> CAMProtocol:
    """The config's ``cam_cfg`` with the options given on the command line."""
    return CAMProtocol.from_cfg(
        cfg.get('cam_cfg'), scales=args.scales, flip=False if args.no_flip else None,
        refine=args.refine, bg_mode=args.bg_mode, bg_threshold=args.bg_threshold,
        ignore_band=args.ignore_band, ignore_margin=args.ignore_margin, batch_size=args.batch_size,
        amp=args.amp)


def main(argv: Optional[List[str]] = None) -> Dict:
    """Write pseudo masks with ``argv``; returns
    :func:`~mmseg_clip_wsss.cam.generate.generate_pseudo_masks`'s dict."""
    args = parse_args(argv)
    if osp.exists(args.out_dir) and not osp.isdir(args.out_dir):
        raise FileExistsError(f'--out-dir {args.out_dir} is a file, not a folder; give a folder for the '
                              'masks (a new one, or one of an earlier run to resume)')
    cfg = read_config(args.config)
    merge_cfg_options(cfg, args.cfg_options)
    check_split(cfg, args.split)
    check_config_classes(cfg, ('cam_dataloader', ) if args.split == 'train' and
                         cfg.get('cam_dataloader') is not None else (f'{args.split}_dataloader', ))
    with naming_cfg_options(args.cfg_options), naming_clip_download(args.config):
        protocol = protocol_from_args(cfg, args)
        device = init_distributed(cfg, args.launcher)
        return make_pseudo_masks(cfg, args.checkpoint, args.out_dir, protocol, split=args.split,
                                 device=args.device or device, evaluate=args.eval,
                                 overwrite=args.overwrite, show_progress=not args.no_progress,
                                 workers=args.workers, loader_workers=args.loader_workers)


def interrupted_line(args: argparse.Namespace) -> str:
    """What an interrupted run finished (the masks in ``--out-dir``) and how it resumes."""
    again = ('run the same command without --overwrite to resume' if args.overwrite else
             'run the same command again to resume')
    return (f'{finished_files(args.out_dir, "*.png")} pseudo mask(s) are finished in {args.out_dir}; '
            f'{again} (finished masks are kept and skipped)')


def run() -> None:
    run_tool(main, also=INPUT_ERRORS, interrupted=lambda: interrupted_line(parse_args()))


if __name__ == '__main__':
    run()
