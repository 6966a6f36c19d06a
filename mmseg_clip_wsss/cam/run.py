"""The machinery behind ``tools/make_pseudo_masks.py``.

``python tools/make_pseudo_masks.py CONFIG [CHECKPOINT] --out-dir DIR [--split train] [--eval]
[--scales 1.0 0.5 1.5] [--no-flip] [--refine par|crf|none] [--bg-mode threshold|prompt]
[--bg-threshold T] [--ignore-band LOW HIGH] [--ignore-margin M] [--cfg-options ...]``

CHECKPOINT may be left out for a training-free model (one whose class sets ``training_free = True``,
e.g. :class:`~mmseg_clip_wsss.models.segmentors.TrainingFreeCLIPES`): it is run as the config builds it.

Config keys it reads (all optional except the model and a dataloader):

- ``cam_cfg``: the fields of :class:`~mmseg_clip_wsss.cam.CAMProtocol` (defaults for the options
  above, plus ``size_divisor`` and ``batch_size``; the protocol's defaults where absent). The command
  line wins over ``cam_cfg``.
- ``cam_dataloader``: the dataloader for ``--split train``, used as given (its pipeline must load the
  images without random augmentation and pack ``gt_image_labels``, e.g. with ``PackWSSSInputs``).
- otherwise ``<split>_dataloader`` (``train_dataloader`` for ``--split train``): its dataset (dataset
  wrappers are unwrapped) with the pipeline replaced by ``cam_pipeline`` if the config has one, else
  ``[LoadImageFromFile, PackWSSSInputs]``; batch size ``cam_cfg.batch_size`` (default 1, images of a
  batch must share a size), no shuffling.

Distributed: ``torchrun --nproc_per_node N tools/make_pseudo_masks.py ... --launcher pytorch`` (or
``tools/dist_make_pseudo_masks.sh``) gives every process a disjoint share of the images, so each PNG
is written once; rank 0 evaluates them all. Existing valid PNGs are skipped (resume) and every PNG
is written to a temporary name first, then renamed, so a killed run leaves no half-written mask.
``OUT_DIR/protocol.json`` records the checkpoint, split and protocol of the masks; resuming into a
directory whose masks were made otherwise, or that holds PNGs without that record, is refused
(``--overwrite`` replaces them).
"""
import argparse
import copy
import glob
import json
import os
import os.path as osp
from typing import Dict, List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmseg_clip_wsss.datasets.errors import DatasetError
from mmseg_clip_wsss.engine.checkpoint_check import build_model_from_checkpoint
from mmseg_clip_wsss.registry import MODELS, TRANSFORMS
from .evaluate import write_metrics_json
from .generate import generate_pseudo_masks
from .protocol import BG_MODES, CAMProtocol

__all__ = ['parse_args', 'build_cam_dataloader_cfg', 'build_cam_model', 'protocol_from_args',
           'make_pseudo_masks_main', 'DEFAULT_CAM_PIPELINE']

DEFAULT_CAM_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackWSSSInputs')]
#: Written into the output directory: the checkpoint, split and options its masks were made with.
PROTOCOL_FILE = 'protocol.json'


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
                        help='background by a threshold on the CAMs, or the background-prompt channel')
    parser.add_argument('--bg-threshold', type=float, help='background score in threshold mode')
    parser.add_argument('--ignore-band', type=float, nargs=2, metavar=('LOW', 'HIGH'),
                        help='foreground CAM between LOW and HIGH -> ignore (255); the band must '
                        'contain the background threshold')
    parser.add_argument('--ignore-margin', type=float,
                        help='top-1 minus top-2 score below this -> ignore (255)')
    parser.add_argument('--batch-size', type=int, help='images per batch (same-size images only)')
    parser.add_argument('--device', default=None,
                        help='cpu, cuda, cuda:0 ... (default: cuda if available)')
    parser.add_argument('--overwrite', action='store_true',
                        help='rewrite existing masks (default: skip valid existing PNGs, i.e. resume)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher: with pytorch (torchrun) or slurm (srun) every process '
                        'writes the masks of its share of the images')
    # torch.distributed launchers pass --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, as key=value pairs (mmengine DictAction syntax)')
    return parser.parse_args(argv)


def _unwrap_dataset(ds_cfg: dict) -> dict:
    """Strip dataset wrappers (RepeatDataset, ClassBalancedDataset, ...) that hold ``dataset``."""
    ds_cfg = copy.deepcopy(ds_cfg)
    while 'dataset' in ds_cfg and isinstance(ds_cfg['dataset'], dict) and 'pipeline' not in ds_cfg:
        ds_cfg = ds_cfg['dataset']
    return ds_cfg


def _set_pipeline(ds_cfg: dict, pipeline: list) -> dict:
    if 'datasets' in ds_cfg and 'pipeline' not in ds_cfg:  # ConcatDataset
        ds_cfg['datasets'] = [_set_pipeline(_unwrap_dataset(d), pipeline) for d in ds_cfg['datasets']]
    else:
        ds_cfg['pipeline'] = copy.deepcopy(pipeline)
    return ds_cfg


def build_cam_dataloader_cfg(cfg: Config, split: str = 'train', batch_size: int = 1) -> dict:
    """The dataloader config used for pseudo masks (see the module docstring).

    Raises:
        KeyError: if the config has no usable dataloader for ``split``.
    """
    if split == 'train' and cfg.get('cam_dataloader') is not None:
        dl = copy.deepcopy(cfg.cam_dataloader)
    else:
        key = f'{split}_dataloader'
        if cfg.get(key) is None:
            raise KeyError(f'make_pseudo_masks: the config has no `{key}` (nor `cam_dataloader` for '
                           f'--split train); add one or choose another --split.')
        src = copy.deepcopy(cfg[key])
        pipeline = cfg.get('cam_pipeline') or DEFAULT_CAM_PIPELINE
        for step in pipeline:
            name = step.get('type')
            if isinstance(name, str) and name == 'PackWSSSInputs' and TRANSFORMS.get(name) is None:
                raise KeyError('make_pseudo_masks: the default CAM pipeline needs the `PackWSSSInputs` '
                               'transform (mmseg_clip_wsss.datasets); set `cam_pipeline` (or '
                               '`cam_dataloader`) in the config to a pipeline that packs '
                               '`gt_image_labels`.')
        dl = dict(batch_size=batch_size, num_workers=src.get('num_workers', 0),
                  dataset=_set_pipeline(_unwrap_dataset(src['dataset']), pipeline))
    dl = dict(dl)
    # in order; under a distributed launcher every image goes to exactly one rank (no padding)
    dl['sampler'] = dict(type='DefaultSampler', shuffle=False, round_up=False)
    dl.pop('batch_sampler', None)
    if not dl.get('num_workers'):
        dl['num_workers'] = 0
        dl['persistent_workers'] = False
    dl.setdefault('batch_size', batch_size)
    return dl


def build_cam_model(cfg: Config, checkpoint: Optional[str], device: Optional[str] = None):
    """Build ``cfg.model``, load ``checkpoint`` (None: a training-free model as built) and move the
    model to ``device`` in eval mode."""
    if checkpoint is None:
        model = MODELS.build(cfg.model)
        if not getattr(model, 'training_free', False):
            raise ValueError(f'make_pseudo_masks: {type(model).__name__} (cfg.model) is trained; give '
                             'its CHECKPOINT after the config (only training-free models such as '
                             'TrainingFreeCLIPES run without one).')
        model.cfg = cfg
        model = model.to(device or ('cuda' if torch.cuda.is_available() else 'cpu')).eval()
    else:
        model = build_model_from_checkpoint(cfg, checkpoint, device, tool='make_pseudo_masks')
    if not hasattr(model, 'compute_cams'):
        raise TypeError(f'make_pseudo_masks: {type(model).__name__} (cfg.model) has no `compute_cams`; '
                        'use a WSSSEncoderDecoder / CAM-baseline config.')
    return model


def _init_distributed(cfg: Config, launcher: str) -> Optional[str]:
    """Start the process group of ``launcher``; returns this rank's device (None: the default)."""
    if launcher == 'none':
        return None
    from mmengine.dist import init_dist

    from mmseg_clip_wsss.engine.dist import cpu_distributed, setup_cpu_distributed
    if cpu_distributed(launcher):
        setup_cpu_distributed(launcher)
        return 'cpu'
    dist_cfg = dict((cfg.get('env_cfg') or {}).get('dist_cfg') or dict(backend='nccl'))
    init_dist(launcher, **dist_cfg)
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"


def protocol_from_args(cfg: Config, args: argparse.Namespace) -> CAMProtocol:
    """The config's ``cam_cfg`` with the options given on the command line."""
    return CAMProtocol.from_cfg(
        cfg.get('cam_cfg'), scales=args.scales, flip=False if args.no_flip else None,
        refine=args.refine, bg_mode=args.bg_mode, bg_threshold=args.bg_threshold,
        ignore_band=args.ignore_band, ignore_margin=args.ignore_margin, batch_size=args.batch_size)


def make_pseudo_masks_main(argv: Optional[List[str]] = None) -> Dict:
    """Run ``tools/make_pseudo_masks.py`` with ``argv``; returns :func:`generate_pseudo_masks`'s dict."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg_clip_wsss.apis.preflight import check_config_classes  # (apis imports this package)
    check_config_classes(cfg, ('cam_dataloader', ) if args.split == 'train' and
                         cfg.get('cam_dataloader') is not None else (f'{args.split}_dataloader', ))
    protocol = protocol_from_args(cfg, args)
    device = _init_distributed(cfg, args.launcher)
    model = build_cam_model(cfg, args.checkpoint, args.device or device)
    dataloader = Runner.build_dataloader(build_cam_dataloader_cfg(cfg, args.split, protocol.batch_size))
    dataset = dataloader.dataset
    meta = getattr(dataset, 'metainfo', {}) or {}
    print_log(f'pseudo masks for {len(dataset)} images of split "{args.split}" -> {args.out_dir}',
              logger='current')
    checkpoint = osp.abspath(args.checkpoint) if args.checkpoint else None
    record = dict(checkpoint=checkpoint, split=args.split, **protocol.record())
    if not args.overwrite:
        check_protocol(args.out_dir, record)
    if is_main_process():  # atomic: the other ranks read it in check_protocol
        write_metrics_json(osp.join(args.out_dir, PROTOCOL_FILE), record)
    return generate_pseudo_masks(
        model,
        dataloader,
        args.out_dir,
        protocol,
        background_index=getattr(model, 'background_index', 0),
        skip_existing=not args.overwrite,
        evaluate=args.eval,
        classes=meta.get('classes'),
        reduce_zero_label=bool(meta.get('reduce_zero_label', False)),
        show_progress=not args.no_progress)


def check_protocol(out_dir: str, protocol: Dict) -> None:
    """Refuse to resume into ``out_dir`` when its masks were made by another protocol, or by an
    unknown one (PNGs without ``protocol.json``: another tool, an older run).

    ``out_dir/protocol.json`` (written by :func:`make_pseudo_masks_main`) records the checkpoint,
    split and CAM -> mask options of the masks in ``out_dir``. Resuming skips the valid PNGs already
    there, so a changed protocol would silently mix masks of two protocols.

    Raises:
        DatasetError: naming the options that differ (or the missing record) and the two ways out.
    """
    path = osp.join(out_dir, PROTOCOL_FILE)
    if not osp.isfile(path):
        masks = glob.glob(osp.join(glob.escape(out_dir), '*.png'))
        if masks:
            raise DatasetError(
                f'make_pseudo_masks: {out_dir} already holds {len(masks)} PNG masks (e.g. '
                f'{osp.basename(sorted(masks)[0])}) but no {PROTOCOL_FILE}, so it is unknown which '
                'checkpoint, split and protocol made them and they cannot be resumed. Pass '
                '--overwrite to replace them, or write to another --out-dir.')
        return
    with open(path) as f:
        old = json.load(f)
    new = json.loads(json.dumps(protocol))  # tuples -> lists, as read back from the file
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        details = '; '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in changed)
        raise DatasetError(f'make_pseudo_masks: {out_dir} holds pseudo masks made with another '
                           f'protocol ({details}; see {path}). Pass --overwrite to replace them, or '
                           'write to another --out-dir.')
