"""Pseudo masks of a dataset split from a config and a checkpoint: :func:`make_pseudo_masks`, what
``tools/make_pseudo_masks.py`` (:mod:`mmseg_clip_wsss.cli.make_pseudo_masks`) runs.

``python tools/make_pseudo_masks.py CONFIG [CHECKPOINT] --out-dir DIR [--split train] [--eval]
[--scales 1.0 0.5 1.5] [--no-flip] [--refine par|crf|none] [--bg-mode threshold|prompt|complement]
[--bg-threshold T] [--ignore-band LOW HIGH] [--ignore-margin M] [--batch-size B] [--workers N]
[--loader-workers N] [--amp] [--cfg-options ...]``

The checkpoint may be left out for a training-free model (one whose class sets ``training_free = True``,
e.g. :class:`~mmseg_clip_wsss.models.segmentors.TrainingFreeCLIPES`): it is run as the config builds it.

Config keys it reads (all optional except the model and a dataloader):

- ``cam_cfg``: the fields of :class:`~mmseg_clip_wsss.cam.CAMProtocol` (defaults for the options
  above, plus ``size_divisor`` and ``batch_size``; the protocol's defaults where absent). The command
  line wins over ``cam_cfg``.
- ``cam_dataloader``: the dataloader for ``--split train``, used as given (its pipeline must load the
  images without random augmentation and pack ``gt_image_labels``, e.g. with ``PackWSSSInputs``).
- otherwise ``<split>_dataloader`` (``train_dataloader`` for ``--split train``): its dataset (dataset
  wrappers are unwrapped) with the pipeline replaced by ``cam_pipeline`` if the config has one, else
  ``[LoadWSSSImage, PackWSSSInputs]``; batch size ``cam_cfg.batch_size`` (default 1, images of a
  batch must share a size), no shuffling.

Parallel post-processing: ``--workers N`` finishes the masks (dense CRF, the pixel-adaptive refinement
of a model on the CPU, PNG writing) in N processes of one torch thread each while the model computes
the CAMs of the next batch (the PNGs are those of ``--workers 0``, the default, which does it all in
one process); ``--loader-workers N`` decodes the images in N data-loader processes.

Distributed: ``torchrun --nproc_per_node N tools/make_pseudo_masks.py ... --launcher pytorch`` (or
``tools/dist_make_pseudo_masks.sh``) gives every process a disjoint share of the images, so each PNG
is written once; rank 0 evaluates them all. Existing valid PNGs are skipped (resume) and every PNG
is written to a temporary name first, then renamed, so a killed run leaves no half-written mask.
``OUT_DIR/protocol.json`` records the model (its config dict, the checkpoint and the files it reads),
the split and the protocol of the masks, written when the first mask is; resuming into a directory
whose masks were made otherwise, or that holds PNGs without that record, is refused (``--overwrite``
replaces them).
"""
import copy
import glob
import json
import logging
import os
import os.path as osp
from typing import Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.dist import init_dist
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmseg_clip_wsss.datasets.errors import DatasetError, MissingDatasetFileError
from mmseg_clip_wsss.datasets.file_stamps import file_identity, nested_strings
from mmseg_clip_wsss.engine.checkpoint_check import build_model_from_checkpoint
from mmseg_clip_wsss.engine.dist import cpu_distributed, setup_cpu_distributed
from mmseg_clip_wsss.registry import MODELS, TRANSFORMS
from .evaluate import write_metrics_json
from .generate import generate_pseudo_masks
from .protocol import DEFAULT_PROTOCOL, CAMProtocol

__all__ = ['build_cam_dataloader_cfg', 'build_cam_model', 'init_distributed', 'check_protocol',
           'make_pseudo_masks', 'model_record', 'DEFAULT_CAM_PIPELINE', 'PROTOCOL_FILE',
           'UnknownSplitError', 'config_splits', 'check_split']

#: The loader names the file and the fix for an image it cannot use (missing, corrupt, above the pixel
#: limit of datasets/image_io.py); mmcv's LoadImageFromFile would end in a bare decoder error.
DEFAULT_CAM_PIPELINE = [dict(type='LoadWSSSImage'), dict(type='PackWSSSInputs')]
#: Written into the output directory: the checkpoint, split and options its masks were made with.
PROTOCOL_FILE = 'protocol.json'
#: The fields of ``protocol.json`` that say which model made the masks (:func:`model_record`).
MODEL_FIELDS = ('model', 'files')


class UnknownSplitError(ValueError, KeyError):
    """``--split`` names a split the config has no dataloader for; the message names the valid
    ones. A :class:`ValueError` (the tools print its message, no traceback) and a :class:`KeyError`
    (a missing config key), printed without KeyError's quotes."""

    __str__ = ValueError.__str__


def config_splits(cfg: Config) -> List[str]:
    """The splits of ``cfg`` that pseudo masks can be made of: ``train`` (``cam_dataloader`` or
    ``train_dataloader``) and every other ``<split>_dataloader`` that is set, in the config's order."""
    splits = ['train'] if cfg.get('cam_dataloader') is not None else []
    for key in cfg.keys():
        if key.endswith('_dataloader') and key != 'cam_dataloader' and cfg.get(key) is not None:
            splits.append(key[:-len('_dataloader')])
    return list(dict.fromkeys(splits))


def check_split(cfg: Config, split: str) -> None:
    """Refuse a ``split`` that ``cfg`` has no dataloader for, before anything is built.

    Raises:
        UnknownSplitError: naming the split, the config and its valid splits (:func:`config_splits`).
    """
    valid = config_splits(cfg)
    if split not in valid:
        source = getattr(cfg, 'filename', None) or 'the config'
        raise UnknownSplitError(
            f'make_pseudo_masks: --split {split}: {source} has no `{split}_dataloader` (nor '
            f'`cam_dataloader` for --split train); valid splits of this config: '
            f'{", ".join(valid) or "none"}. Choose one, or add the dataloader to the config.')


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


#: Transforms that load a ground-truth mask (left out of the pipeline when no evaluation reads it).
GT_LOADERS = ('LoadWSSSAnnotations', 'LoadAnnotations')


def _without_ground_truth(ds_cfg: dict) -> dict:
    """``ds_cfg`` (wrappers and ConcatDataset included) with no ground-truth mask read: a dataset's
    ``with_gt_masks`` set to False and the GT-loading transforms (:data:`GT_LOADERS`, not a
    ``masks='pseudo'`` loader) left out of its pipeline, so that a set without masks (own images
    with image labels) gives pseudo masks."""
    ds_cfg = dict(ds_cfg)
    for key in ('dataset', 'datasets'):
        if isinstance(ds_cfg.get(key), dict):
            ds_cfg[key] = _without_ground_truth(ds_cfg[key])
        elif isinstance(ds_cfg.get(key), (list, tuple)):
            ds_cfg[key] = [_without_ground_truth(d) for d in ds_cfg[key]]
    if 'with_gt_masks' in ds_cfg:
        ds_cfg['with_gt_masks'] = False
    if isinstance(ds_cfg.get('pipeline'), (list, tuple)):
        ds_cfg['pipeline'] = [step for step in ds_cfg['pipeline']
                              if not (isinstance(step, dict) and step.get('type') in GT_LOADERS and
                                      step.get('masks', 'gt') != 'pseudo')]
    return ds_cfg


def build_cam_dataloader_cfg(cfg: Config, split: str = 'train', batch_size: int = 1,
                             num_workers: Optional[int] = None, ground_truth: bool = True) -> dict:
    """The dataloader config used for pseudo masks (see the module docstring).

    Args:
        cfg (Config): The config.
        split (str): ``train``, ``val`` or ``test``. Defaults to 'train'.
        batch_size (int): Images per batch where the config's loader does not say. Defaults to 1.
        num_workers (int, optional): Processes that load and decode the images; None keeps the
            config's. Defaults to None.
        ground_truth (bool): Read the ground-truth masks (for an evaluation); False: no mask is
            read, so a set without them works (:func:`_without_ground_truth`). Defaults to True.

    Raises:
        UnknownSplitError: the config has no usable dataloader for ``split`` (a ``KeyError``).
    """
    check_split(cfg, split)
    if split == 'train' and cfg.get('cam_dataloader') is not None:
        dl = copy.deepcopy(cfg.cam_dataloader)
    else:
        src = copy.deepcopy(cfg[f'{split}_dataloader'])
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
    if not ground_truth:
        dl['dataset'] = _without_ground_truth(dl['dataset'])
    # in order; under a distributed launcher every image goes to exactly one rank (no padding)
    dl['sampler'] = dict(type='DefaultSampler', shuffle=False, round_up=False)
    dl.pop('batch_sampler', None)
    if num_workers is not None:
        if int(num_workers) < 0:
            raise ValueError(f'make_pseudo_masks: --loader-workers must be >= 0, got {num_workers}.')
        dl['num_workers'] = int(num_workers)
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


def init_distributed(cfg: Config, launcher: str) -> Optional[str]:
    """Start the process group of ``launcher``; returns this rank's device (None: the default)."""
    if launcher == 'none':
        return None
    if cpu_distributed(launcher):
        setup_cpu_distributed(launcher)
        return 'cpu'
    dist_cfg = dict((cfg.get('env_cfg') or {}).get('dist_cfg') or dict(backend='nccl'))
    init_dist(launcher, **dist_cfg)
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"


def model_record(cfg: Config, checkpoint: Optional[str]) -> Dict:
    """What makes the masks besides the CAM protocol, as ``protocol.json`` records it.

    Args:
        cfg (Config): The config; its ``model`` dict as resolved (``--cfg-options`` merged).
        checkpoint (str, optional): The checkpoint file (None: a training-free model).

    Returns:
        dict: ``model`` (the model dict, JSON-normalised) and ``files``: for the checkpoint and
        every file the model dict names (CLIP weights, tuned prompts, ...), absolute path ->
        :func:`file_identity`.
    """
    model = json.loads(json.dumps(cfg.get('model'), default=str))
    paths = {osp.abspath(v) for v in nested_strings(model) if osp.isfile(v)}
    if checkpoint and osp.isfile(checkpoint):
        paths.add(osp.abspath(checkpoint))
    return dict(model=model, files={p: file_identity(p) for p in sorted(paths)})


def _flat(value, prefix: str) -> Dict[str, object]:
    """``{'model.backbone.type': ..., ...}`` of a nested dict (lists are leaves)."""
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    return {k: v for key, item in value.items() for k, v in _flat(item, f'{prefix}.{key}').items()}


def _model_changes(old: Dict, new: Dict) -> List[str]:
    """The differences of the model fields (:data:`MODEL_FIELDS`) of two records, one line each."""
    old_model, new_model = _flat(old.get('model'), 'model'), _flat(new.get('model'), 'model')
    changes = [f'{k}: {old_model.get(k, "(unset)")!r} -> {new_model.get(k, "(unset)")!r}'
               for k in sorted(set(old_model) | set(new_model)) if old_model.get(k) != new_model.get(k)]
    old_files, new_files = old.get('files') or {}, new.get('files') or {}
    changes += [f'file {p}: {old_files.get(p, "(not used)")} -> {new_files.get(p, "(not used)")}'
                for p in sorted(set(old_files) | set(new_files)) if old_files.get(p) != new_files.get(p)]
    return changes


def _read_record(out_dir: str, new: Dict) -> Optional[Dict]:
    """``out_dir``'s ``protocol.json`` with the defaults of fields added since it was written (None:
    none there). A record without the model fields (written before they existed) is trusted to be of
    this model: it is logged, and the fields are taken from ``new``."""
    path = osp.join(out_dir, PROTOCOL_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        old = json.load(f)
    if not isinstance(old, dict):
        raise DatasetError(f'make_pseudo_masks: {path} is no protocol record (a JSON object); delete '
                           f'{out_dir} or write to another --out-dir.')
    if any(k in new and k not in old for k in MODEL_FIELDS):
        print_log(f'make_pseudo_masks: {path} does not record the model (written before the model was '
                  'recorded); its masks are resumed as masks of this model and config', logger='current',
                  level=logging.WARNING)
        old = dict(old, **{k: new[k] for k in MODEL_FIELDS if k in new})
    # a field added to the protocol since the record was written counts as its default
    defaults = json.loads(json.dumps(DEFAULT_PROTOCOL.record()))
    return dict({k: v for k, v in defaults.items() if k not in old}, **old)


def check_protocol(out_dir: str, protocol: Dict) -> None:
    """Refuse to resume into ``out_dir`` when its masks were made by another model or protocol, or
    by an unknown one (PNGs without ``protocol.json``: another tool, an older run).

    ``out_dir/protocol.json`` (written by :func:`make_pseudo_masks`) records the model
    (:func:`model_record`: the model dict, the checkpoint and the files the model reads), the split
    and the CAM -> mask options of the masks in ``out_dir``. Resuming skips the valid PNGs already
    there, so a changed model or protocol would silently mix masks of two. A protocol field the
    record lacks (added to :class:`~mmseg_clip_wsss.cam.protocol.CAMProtocol` after it was written)
    counts as that field's default; a record without the model fields counts as made by this model
    (:func:`_read_record`).

    Raises:
        DatasetError: naming what differs (or the missing record) and the ways out.
    """
    new = json.loads(json.dumps(protocol))  # tuples -> lists, as read back from the file
    old = _read_record(out_dir, new)
    path = osp.join(out_dir, PROTOCOL_FILE)
    if old is None:
        masks = glob.glob(osp.join(glob.escape(out_dir), '*.png'))
        if masks:
            raise DatasetError(
                f'make_pseudo_masks: {out_dir} already holds {len(masks)} PNG masks (e.g. '
                f'{osp.basename(sorted(masks)[0])}) but no {PROTOCOL_FILE}, so it is unknown which '
                'checkpoint, split and protocol made them and they cannot be resumed. Pass '
                '--overwrite to replace them, or write to another --out-dir.')
        return
    models = _model_changes(old, new)
    if models:
        raise DatasetError(f'make_pseudo_masks: {out_dir} holds pseudo masks made by another model '
                           f'({"; ".join(models)}; see {path}). Write to another --out-dir, or delete '
                           f'{out_dir} (or pass --overwrite) to replace them.')
    changed = sorted(k for k in set(old) | set(new)
                     if k not in MODEL_FIELDS and old.get(k) != new.get(k))
    if changed:
        details = '; '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in changed)
        raise DatasetError(f'make_pseudo_masks: {out_dir} holds pseudo masks made with another '
                           f'protocol ({details}; see {path}). Pass --overwrite to replace them, or '
                           'write to another --out-dir.')


_NO_GT_FIX = ('Without ground-truth masks (own images with image labels) leave out --eval: the pseudo '
              'masks need only the images and their labels.')


def _build_dataloader(cfg: Config, split: str, batch_size: int, loader_workers: Optional[int],
                      evaluate: bool):
    """The pseudo-mask dataloader of ``split``; it reads the ground-truth masks only to ``evaluate``.

    Raises:
        DatasetError: ``evaluate`` and the split has no ground-truth masks (missing files, or a
            dataset without mask paths), naming them and the fix (leave out ``--eval``).
    """
    try:
        dataloader = Runner.build_dataloader(build_cam_dataloader_cfg(
            cfg, split, batch_size, loader_workers, ground_truth=evaluate))
    except MissingDatasetFileError as err:
        if not evaluate or 'ground-truth mask' not in str(err):
            raise
        raise MissingDatasetFileError(f'make_pseudo_masks --eval scores the masks against the ground-truth '
                                      f'masks of split "{split}", but {err} {_NO_GT_FIX}') from err
    dataset = dataloader.dataset
    info = dataset.get_data_info(0) if evaluate and len(dataset) and hasattr(dataset, 'get_data_info') \
        else {'seg_map_path': True}
    if not info.get('seg_map_path'):
        raise DatasetError(f'make_pseudo_masks --eval scores the masks against the ground-truth masks of '
                           f'split "{split}", but its dataset has no mask paths (with_gt_masks=False, or no '
                           "data_prefix['seg_map_path']). " + _NO_GT_FIX)
    return dataloader


def make_pseudo_masks(cfg: Config, checkpoint: Optional[str], out_dir: str, protocol: CAMProtocol,
                      split: str = 'train', device: Optional[str] = None, evaluate: bool = False,
                      overwrite: bool = False, show_progress: bool = True, workers: int = 0,
                      loader_workers: Optional[int] = None, split_name: Optional[str] = None) -> Dict:
    """Write the pseudo masks of ``split`` of ``cfg`` with ``protocol`` into ``out_dir``.

    Args:
        cfg (Config): The stage-1 (or CAM baseline, or training-free) config; its default scope is
            initialised here.
        checkpoint (str, optional): Checkpoint file; None for a training-free model.
        out_dir (str): Directory for ``<img_id>.png`` masks and ``protocol.json``.
        protocol (CAMProtocol): Scales, flip, refinement, background and ignore rules.
        split (str): ``train`` (``cam_dataloader`` if the config has one, else
            ``train_dataloader``), ``val`` or ``test``. Defaults to 'train'.
        device (str, optional): Device of the model. Defaults to CUDA if available.
        evaluate (bool): Score the masks against the GT masks (``metrics.json``). Defaults to False.
        overwrite (bool): Rewrite existing masks instead of resuming. Defaults to False.
        show_progress (bool): Show a progress bar. Defaults to True.
        workers (int): Processes that finish the masks (dense CRF, refinement of a CPU model, PNG
            writing) while the model runs; 0: in this process. Defaults to 0.
        loader_workers (int, optional): Data-loader processes that load and decode the images; None
            keeps the config's ``num_workers``. Defaults to None.
        split_name (str, optional): The split the images are of, as logged and recorded in
            ``protocol.json``, where it is not ``split``: a caller that points ``cam_dataloader``
            (``split='train'``) at another split's files, as the demo's training-free rows do for
            ``--split val``. Defaults to ``split``.

    Returns:
        dict: :func:`~mmseg_clip_wsss.cam.generate.generate_pseudo_masks`'s result.

    Raises:
        DatasetError: ``out_dir`` holds masks of another or an unknown protocol (resume refused).
    """
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = build_cam_model(cfg, checkpoint, device)
    dataloader = _build_dataloader(cfg, split, protocol.batch_size, loader_workers, evaluate)
    dataset = dataloader.dataset
    meta = getattr(dataset, 'metainfo', {}) or {}
    split_name = split_name or split
    print_log(f'pseudo masks for {len(dataset)} images of split "{split_name}" -> {out_dir}',
              logger='current')
    record = dict(checkpoint=osp.abspath(checkpoint) if checkpoint else None, split=split_name,
                  **protocol.record(), **model_record(cfg, checkpoint))
    if not overwrite:
        check_protocol(out_dir, record)
    return generate_pseudo_masks(
        model, dataloader, out_dir, protocol,
        background_index=getattr(model, 'background_index', 0),
        skip_existing=not overwrite,
        evaluate=evaluate,
        classes=meta.get('classes'),
        reduce_zero_label=bool(meta.get('reduce_zero_label', False)),
        show_progress=show_progress,
        workers=workers,
        # written (atomically, by every rank alike) when the first mask is: a run refused or failed
        # before any mask leaves the folder's record as it was
        before_first_mask=lambda: write_metrics_json(osp.join(out_dir, PROTOCOL_FILE), record))
