"""Pseudo-mask generation over a dataloader: CAMs -> refinement -> labels -> VOC palette PNGs.

:func:`generate_pseudo_masks` is what ``tools/make_pseudo_masks.py`` runs; scripts and tests call it
directly with a built model and any iterable of mmseg-style batches
(``dict(inputs=[(3, H, W) uint8], data_samples=[SegDataSample with gt_image_labels])``).

Distributed (a process group is initialised and the dataloader's sampler shards the images, e.g.
``DefaultSampler(shuffle=False, round_up=False)``): every rank writes the PNGs of its shard, the counts
and file lists are combined over the ranks and rank 0 evaluates all images. Temporary files left by a
killed run are removed first (by rank 0, before any rank writes).
"""
import glob
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dist import (all_gather_object, barrier, broadcast_object_list, get_world_size,
                           is_main_process)
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from torch import Tensor

from mmseg_clip_wsss.datasets.errors import DatasetError
from mmseg_clip_wsss.datasets.image_labels import background_mismatch, check_class_list
from mmseg_clip_wsss.datasets.label_mask import check_label_mask, image_size
from mmseg_clip_wsss.datasets.confidence_map import CONFIDENCE_DIR, confidence_path
from mmseg_clip_wsss.models.data_preprocessor import denormalise_images
from mmseg_clip_wsss.models.segmentors import WSSSEncoderDecoder
from mmseg_clip_wsss.structures import IMAGE_LABELS, stack_image_labels
from .evaluate import evaluate_pseudo_masks, read_label_png, write_metrics_json
from .inference import autocast, multi_scale_flip_cams, scale_inputs
from .protocol import CAMProtocol
from .postprocess import MaskFinisher, MaskJob
from .pseudo_mask import is_valid_png
from .refine import DenseCRFRefiner, PixelAdaptiveRefiner, build_refiner
from .stage_timer import NULL_TIMER, StageTimer, timer_or_null
from .worker_pool import MaskWriterPool

__all__ = ['generate_pseudo_masks', 'mask_jobs_of_batch', 'pseudo_masks_of_batch', 'sample_image_id']


def sample_image_id(data_sample) -> str:
    """Image id of a data sample: the file name of ``img_path`` without extension."""
    img_path = data_sample.metainfo.get('img_path')
    if not img_path:
        raise KeyError('generate_pseudo_masks: a data sample has no `img_path` in its metainfo; keep '
                       "'img_path' in the meta_keys of the packing transform.")
    return osp.splitext(osp.basename(img_path))[0]


def _ori_shape(data_sample) -> Tuple[int, int]:
    meta = data_sample.metainfo
    shape = meta.get('ori_shape', meta.get('img_shape'))
    if shape is None:
        raise KeyError('generate_pseudo_masks: a data sample has neither `ori_shape` nor `img_shape` '
                       'in its metainfo; keep them in the meta_keys of the packing transform.')
    return int(shape[0]), int(shape[1])


def _padding(data_sample) -> Tuple[int, int, int, int]:
    """(left, right, top, bottom) pixels the data preprocessor padded (mmseg's metainfo keys)."""
    meta = data_sample.metainfo
    return tuple(int(v) for v in meta.get('img_padding_size', meta.get('padding_size', (0, 0, 0, 0))))


def _crop_padding(inputs: Tensor, data_samples: Sequence) -> Tensor:
    """The valid image of a padded batch (B, 3, H, W): CAMs are normalised and refined over the
    image only, never over the padding.

    Raises:
        ValueError: when the images of the batch were padded differently (mmseg's preprocessor pads
            a test batch of equal-size images alike).
    """
    paddings = {_padding(s) for s in data_samples}
    if len(paddings) != 1:
        raise ValueError(f'generate_pseudo_masks: the images of a batch were padded differently '
                         f'({sorted(paddings)}); use images of one size per batch (batch_size=1).')
    left, right, top, bottom = paddings.pop()
    h, w = inputs.shape[-2:]
    return inputs[..., top:h - bottom, left:w - right]


def _flip(data_sample) -> Optional[str]:
    """The direction of a flip the loading pipeline made (undone on the masks), or None."""
    meta = data_sample.metainfo
    if not meta.get('flip', False):
        return None
    return 'horizontal' if meta.get('flip_direction', 'horizontal') == 'horizontal' else 'vertical'


def _remove_stale_temporaries(out_dir: str) -> int:
    """Delete the temporary files a killed run left (``.<name>.png.<random>.tmp``, beside the masks
    and the confidence maps); returns the count."""
    stale = [path for directory in (out_dir, osp.join(out_dir, CONFIDENCE_DIR))
             for path in glob.glob(osp.join(glob.escape(directory), '.*.png.*.tmp'))]
    for path in stale:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
    return len(stale)


Refiner = Union[None, PixelAdaptiveRefiner, DenseCRFRefiner]


def _build_refiner(protocol: CAMProtocol, model) -> Refiner:
    """The protocol's refiner, on the model's device."""
    refiner = protocol.refine
    if not isinstance(refiner, (PixelAdaptiveRefiner, DenseCRFRefiner)):
        refiner = build_refiner(refiner)
    if isinstance(refiner, DenseCRFRefiner) and protocol.ignore_band is not None:
        raise ValueError('generate_pseudo_masks: ignore_band applies to CAM scores, not to CRF '
                         'marginals; with refine=crf use ignore_margin.')
    param = next(iter(model.parameters()), None)
    if isinstance(refiner, PixelAdaptiveRefiner) and param is not None:
        refiner = refiner.to(param.device)
    return refiner


def _where_refiners_run(refiner: Refiner, model) -> Tuple[Refiner, Refiner]:
    """(the refiner that runs on the model's device, the one that runs per image on the CPU): the
    pixel-adaptive refinement runs on the device when that is a GPU; dense CRF (C++) and a CPU
    model's refinement run per image, in this process or in the workers."""
    if isinstance(refiner, PixelAdaptiveRefiner) and not _on_cpu(model):
        return refiner, None
    return None, refiner


def _on_cpu(model) -> bool:
    param = next(iter(model.parameters()), None)
    return param is None or param.device.type == 'cpu'


def _defers_cams(model) -> bool:
    """Whether the CAMs are made per image from the model's raw score maps, where the masks are
    finished (in the workers, when there are workers): for a WSSSEncoderDecoder on the CPU, whose
    ``compute_cams`` is ``_forward`` + ``scores_to_cams``. Its process then only runs the forward
    passes."""
    return _on_cpu(model) and getattr(type(model), 'compute_cams', None) is \
        WSSSEncoderDecoder.compute_cams


def _scale_scores(model, inputs: Tensor, protocol: CAMProtocol) -> Tuple[List[Tensor], List]:
    """The raw score maps (B or 2B, K, h', w') of every scale of ``protocol`` and the input sizes."""
    xs = scale_inputs(inputs, protocol.scales, protocol.flip, protocol.size_divisor)
    with autocast(inputs.device, protocol.amp):
        scores = [model._forward(x).float() for x in xs]
    return scores, [tuple(x.shape[-2:]) for x in xs]


def _image_scores(scale_scores: List[Tensor], j: int, flip: bool) -> Tuple[List[np.ndarray], bool]:
    """Image ``j``'s rows of every scale's raw scores (its flip second), and whether the model gave
    them channels-last."""
    b = scale_scores[0].shape[0] // (2 if flip else 1)
    rows = [j, b + j] if flip else [j]
    channels_last = not scale_scores[0].is_contiguous() and \
        scale_scores[0].is_contiguous(memory_format=torch.channels_last)
    return [np.ascontiguousarray(raw[rows].float().cpu().numpy()) for raw in scale_scores], \
        channels_last


def _refinement_images(on_cpu: Refiner, inputs: Tensor, model) -> Optional[np.ndarray]:
    """What a refinement on the CPU reads: (B, h, w, 3) uint8 RGB for dense CRF, (B, 3, h, w)
    normalised inputs for the pixel-adaptive refinement; None without one."""
    if isinstance(on_cpu, DenseCRFRefiner):
        return denormalise_images(inputs, model.data_preprocessor).cpu().numpy()
    if on_cpu is not None:
        return inputs.float().cpu().numpy()
    return None


def mask_jobs_of_batch(model, inputs: Tensor, data_samples: Sequence, protocol: CAMProtocol,
                       refiner: Refiner, background_index: Optional[int], mask_paths: Sequence[str],
                       timer: StageTimer = NULL_TIMER) -> List[MaskJob]:
    """The CAMs of one preprocessed batch, as one :class:`MaskJob` per image.

    The CAMs of the unpadded images (stage ``cam``): multi-scale + flip CAMs, refined on the device
    when it is a GPU (stage ``refine``); for a trained segmentor on the CPU only its forward passes
    run here and every job carries its raw score maps (:func:`_defers_cams`). A job also carries
    what a refinement on the CPU reads (:func:`_refinement_images`) and the rows of the classes its
    mask can hold (the image's labels and the background).

    Args:
        model: Segmentor with ``compute_cams`` and ``data_preprocessor``.
        inputs (Tensor): (B, 3, H, W) normalised (and possibly padded) images.
        data_samples (Sequence[SegDataSample]): With ``gt_image_labels`` and the metainfo
            ``ori_shape`` (and the preprocessor's padding).
        protocol (CAMProtocol): The CAM -> mask options.
        refiner: The built refiner of the protocol, or None.
        background_index (int, optional): Background channel; None without background class.
        mask_paths (Sequence[str]): The mask PNG of every image.
        timer (StageTimer): Receives the stage times. Defaults to none.

    Returns:
        list[MaskJob]: One per image, in batch order.
    """
    inputs = _crop_padding(inputs, data_samples)  # (B, 3, h, w)
    labels = stack_image_labels(data_samples).to(inputs.device)  # (B, K)
    on_device, on_cpu = _where_refiners_run(refiner, model)
    cams = scale_scores = None
    with timer.stage('cam'):
        if _defers_cams(model):
            scale_scores, sizes = _scale_scores(model, inputs, protocol)
        else:
            cams = multi_scale_flip_cams(model, inputs, labels, scales=protocol.scales,
                                         flip=protocol.flip, size_divisor=protocol.size_divisor,
                                         normalise=protocol.normalise, amp=protocol.amp)
    if on_device is not None:
        with timer.stage('refine'):
            cams = on_device(cams, inputs)
    images = _refinement_images(on_cpu, inputs, model)
    present = labels > 0  # (B, K): the classes a mask can hold
    if background_index is not None:
        present[:, background_index] = True
    labels, present = labels.float().cpu().numpy(), present.cpu()
    jobs = []
    for j, sample in enumerate(data_samples):
        channels = tuple(torch.nonzero(present[j]).flatten().tolist())
        job = MaskJob(mask_paths[j], None, channels, labels[j], _ori_shape(sample), _flip(sample),
                      None if images is None else images[j], input_size=tuple(inputs.shape[-2:]))
        if cams is None:
            job.scale_scores, job.channels_last = _image_scores(scale_scores, j, protocol.flip)
            job.scale_sizes = sizes
        else:
            job.scores = np.ascontiguousarray(cams[j, list(channels)].float().cpu().numpy())
        jobs.append(job)
    return jobs


def _finisher(model, protocol: CAMProtocol, refiner: Refiner, background_index: Optional[int],
              palette=None) -> MaskFinisher:
    """The finisher of a run: the CPU refinement (rebuilt from its config in spawned workers) and,
    for deferred CAMs, the model's ``scores_to_cams``."""
    on_cpu = _where_refiners_run(refiner, model)[1]
    refine_cfg = protocol.refine if isinstance(protocol.refine, (str, dict)) else None
    return MaskFinisher(protocol, background_index, palette, on_cpu, refine_cfg,
                        model.scores_to_cams if _defers_cams(model) else None)


def pseudo_masks_of_batch(model, inputs: Tensor, data_samples: Sequence, protocol: CAMProtocol,
                          refiner: Refiner, background_index: Optional[int]) -> List[Tuple[Tensor, Tensor]]:
    """Pseudo masks of one preprocessed batch, without files: :func:`mask_jobs_of_batch` and
    :meth:`MaskFinisher.masks` in this process.

    Args:
        model, inputs, data_samples, protocol, refiner, background_index: As for
            :func:`mask_jobs_of_batch`.

    Returns:
        list[tuple[Tensor, Tensor]]: Per image, the (H0, W0) uint8 mask and its (H0, W0) float
        confidence in [0, 1] (:func:`~mmseg_clip_wsss.cam.pseudo_mask_confidence`).
    """
    finisher = _finisher(model, protocol, refiner, background_index)
    jobs = mask_jobs_of_batch(model, inputs, data_samples, protocol, refiner, background_index,
                              [sample_image_id(s) for s in data_samples])
    return [finisher.masks(job) for job in jobs]


def _is_done(mask_path: str, size: Tuple[int, int]) -> bool:
    """Whether the mask and its confidence map are complete PNGs of ``size``; the confidence map
    is written first, so a valid mask of this writer always has its confidence map."""
    return is_valid_png(mask_path, size) and \
        is_valid_png(confidence_path(mask_path), size, expected_mode='L')


@dataclass
class _Tally:
    """What a rank did: its files (loader order), (mask, GT) pairs and counts."""
    files: List[str] = field(default_factory=list)
    pairs: List[Tuple[str, str]] = field(default_factory=list)
    written: int = 0
    skipped: int = 0


@dataclass
class _Run:
    """What every batch of a run needs."""
    model: object
    out_dir: str
    protocol: CAMProtocol
    refiner: Refiner
    background_index: Optional[int]
    skip_existing: bool
    evaluate: bool
    pool: MaskWriterPool
    timer: StageTimer
    before_first_mask: Optional[Callable[[], None]] = None


def _record_ground_truth(samples: Sequence, paths: Sequence[str], tally: _Tally) -> None:
    """Pair every mask with its ground truth for ``evaluate`` (a GT of another size is refused)."""
    for s, p in zip(samples, paths):
        gt_path = s.metainfo.get('seg_map_path')
        if not gt_path:
            raise KeyError(f'generate_pseudo_masks: evaluate=True but {sample_image_id(s)} '
                           'has no `seg_map_path` (ground-truth mask) in its metainfo.')
        if osp.isfile(gt_path) and image_size(gt_path) != _ori_shape(s):  # header only
            check_label_mask(  # refuses, naming the mask, its image and the fix
                read_label_png(gt_path), gt_path, s.metainfo.get('img_path'), _ori_shape(s))
        tally.pairs.append((p, gt_path))


def _process_batch(run: _Run, data_batch: dict, tally: _Tally) -> None:
    """Queue the masks of one loader batch that are not done yet; record every file."""
    samples = data_batch['data_samples']
    paths = [osp.join(run.out_dir, f'{sample_image_id(s)}.png') for s in samples]
    todo = [i for i, (s, p) in enumerate(zip(samples, paths))
            if not (run.skip_existing and _is_done(p, _ori_shape(s)))]
    tally.skipped += len(samples) - len(todo)
    tally.files.extend(paths)
    if run.evaluate:
        _record_ground_truth(samples, paths, tally)
    unlabelled = [sample_image_id(s) for s in samples if IMAGE_LABELS not in s]
    if unlabelled:
        raise DatasetError(f'generate_pseudo_masks: {unlabelled[0]} has no image-level labels: pseudo '
                           'masks are CAMs of the classes an image holds, so its dataset needs a label '
                           'file (for --split val: --cfg-options val_dataloader.dataset.label_file='
                           'ImageLabels/val.txt, or a `cam_dataloader` over that split).')
    if not todo:
        return
    sub_batch = dict(inputs=[data_batch['inputs'][i] for i in todo],
                     data_samples=[samples[i] for i in todo])
    with torch.no_grad():
        with run.timer.stage('preprocess'):
            data = run.model.data_preprocessor(sub_batch, False)
        jobs = mask_jobs_of_batch(run.model, data['inputs'], data['data_samples'], run.protocol,
                                  run.refiner, run.background_index, [paths[i] for i in todo],
                                  run.timer)
    if run.before_first_mask is not None:
        run.before_first_mask()
        run.before_first_mask = None
    with run.timer.stage('hand over'):
        for job in jobs:
            run.pool.submit(job)  # writes the confidence map, then the mask: see _is_done
    run.timer.count_images(len(todo))
    tally.written += len(todo)


def _combine_ranks(tally: _Tally) -> Tuple[_Tally, List[int]]:
    """Every rank wrote its own shard: the tally of all ranks (rank order) and the counts per rank."""
    if get_world_size() == 1:
        return tally, [tally.written]
    shards = all_gather_object(tally)
    combined = _Tally(files=[f for t in shards for f in t.files],
                      pairs=[p for t in shards for p in t.pairs],
                      written=sum(t.written for t in shards), skipped=sum(t.skipped for t in shards))
    return combined, [t.written for t in shards]


def _evaluate_on_rank0(pairs: List[Tuple[str, str]], classes: Sequence[str], out_dir: str,
                       reduce_zero_label: bool) -> Dict:
    """mIoU of all masks (rank 0 scores them, writes ``metrics.json`` and tells the other ranks)."""
    metrics = [None]
    if is_main_process():
        metrics[0] = evaluate_pseudo_masks(pairs, classes, reduce_zero_label=reduce_zero_label)
        write_metrics_json(osp.join(out_dir, 'metrics.json'), metrics[0])
    if get_world_size() > 1:
        broadcast_object_list(metrics)
    metrics = metrics[0]
    print_log(f'pseudo masks vs ground truth: mIoU {metrics["mIoU"]:.2f} (aAcc {metrics["aAcc"]:.2f}, '
              f'ignored {100 * metrics["ignored_ratio"]:.1f}% of pixels, {metrics["num_images"]} '
              'images)', logger='current')
    return metrics


def _progress_bar(dataloader, show: bool) -> Optional[ProgressBar]:
    """A bar over this rank's images (its sampler's shard when distributed), on rank 0 only."""
    if not show or not is_main_process():
        return None
    source = getattr(dataloader, 'sampler', None) if get_world_size() > 1 else \
        getattr(dataloader, 'dataset', None)
    total = len(source) if source is not None and hasattr(source, '__len__') else 0
    return ProgressBar(total) if total else None


def _checked_classes(classes: Optional[Sequence[str]], dataloader, evaluate: bool,
                     background_index: Optional[int]) -> Optional[Sequence[str]]:
    """The class names (default: the dataset's metainfo), checked against ``background_index``."""
    if classes is None:
        classes = (getattr(getattr(dataloader, 'dataset', None), 'metainfo', None) or {}).get('classes')
    if evaluate and not classes:
        raise ValueError('generate_pseudo_masks: evaluate=True needs the class names (pass `classes` '
                         'or use a dataset with metainfo["classes"]).')
    if classes:
        classes = check_class_list(classes, 'generate_pseudo_masks')
        mismatch = background_mismatch(classes, background_index)
        if mismatch:
            raise DatasetError(f'generate_pseudo_masks: {mismatch}')
    return classes


def _batches(dataloader, timer: StageTimer) -> Iterator[dict]:
    """The loader's batches; the wait for each is stage ``decode`` (loading and decoding the images,
    or waiting for the loader's workers that do it)."""
    batches = iter(dataloader)
    while True:
        with timer.stage('decode'):
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


def _write_all(run: _Run, dataloader, finisher: MaskFinisher, workers: int,
               show_progress: bool) -> _Tally:
    """Write the masks of this rank's batches (after rank 0 removed a killed run's leftovers)."""
    if is_main_process() and osp.isdir(run.out_dir):
        _remove_stale_temporaries(run.out_dir)
    if get_world_size() > 1:
        barrier()  # no rank writes while rank 0 removes the leftovers of a killed run
    run.model.eval()
    bar = _progress_bar(dataloader, show_progress)
    tally = _Tally()
    with MaskWriterPool(finisher, workers, run.timer) as pool:
        run.pool = pool
        for data_batch in _batches(dataloader, run.timer):
            _process_batch(run, data_batch, tally)
            if bar is not None:
                bar.update(len(data_batch['data_samples']))
    if bar is not None:
        bar.file.write('\n')
    return tally


def _summary(tally: _Tally, out_dir: str, start: float) -> Tuple[_Tally, Dict]:
    """The counts and files of all ranks, logged, and the result dict without metrics."""
    tally, written_per_rank = _combine_ranks(tally)
    result = dict(written=tally.written, skipped=tally.skipped, files=tally.files, out_dir=out_dir,
                  seconds=round(time.time() - start, 2), written_per_rank=written_per_rank)
    per_rank = f' (per rank: {", ".join(map(str, written_per_rank))})' if len(written_per_rank) > 1 \
        else ''
    print_log(f'pseudo masks: {tally.written} written{per_rank}, {tally.skipped} already there, in '
              f'{out_dir} ({result["seconds"]:.1f} s)', logger='current')
    return tally, result


def _checked_protocol(model, protocol: Union[None, dict, CAMProtocol], options: dict,
                      background_index: Optional[int]) -> Tuple[CAMProtocol, Refiner]:
    """The protocol with ``options`` and its built refiner; logs the background rule.

    Raises:
        TypeError: for a model without ``compute_cams``.
        ValueError: for a protocol that reads a background channel the classes do not have.
    """
    if not hasattr(model, 'compute_cams'):
        raise TypeError(f'generate_pseudo_masks: {type(model).__name__} has no `compute_cams` method.')
    protocol = CAMProtocol.from_cfg(protocol, **options)
    refiner = _build_refiner(protocol, model)
    rule = protocol.background_rule(background_index)  # refuses a protocol that needs a background
    if background_index is None:
        print_log(f'pseudo masks: {rule}.', logger='current')
    return protocol, refiner


def generate_pseudo_masks(model,
                          dataloader,
                          out_dir: str,
                          protocol: Union[None, dict, CAMProtocol] = None,
                          background_index: Optional[int] = 0,
                          palette: Optional[Sequence[Sequence[int]]] = None,
                          skip_existing: bool = True,
                          evaluate: bool = False,
                          classes: Optional[Sequence[str]] = None,
                          reduce_zero_label: bool = False,
                          show_progress: bool = True,
                          workers: int = 0,
                          timer: Optional[StageTimer] = None, before_first_mask: Optional[Callable] = None,
                          **protocol_options) -> Dict:
    """Write one pseudo-mask PNG ``<out_dir>/<img_id>.png`` per image of ``dataloader``, and its
    confidence map ``<out_dir>/confidence/<img_id>.png`` (8-bit grayscale, ``v / 255`` = confidence;
    see :mod:`mmseg_clip_wsss.datasets.confidence_map`).

    Per batch: the images already done (valid mask and confidence PNGs of the right size) are
    skipped; the rest go through the data preprocessor and :func:`mask_jobs_of_batch`, and a
    :class:`MaskFinisher` writes them atomically, here or in ``workers`` processes while the model
    goes on (the same PNGs). Distributed runs: see the module docstring.

    Args:
        model: Segmentor with ``compute_cams`` and ``data_preprocessor``.
        dataloader (Iterable[dict]): mmseg-style batches whose data samples carry
            ``gt_image_labels`` and the metainfo ``img_path``, ``ori_shape`` (and ``seg_map_path`` for
            ``evaluate``).
        out_dir (str): Output directory (created).
        protocol (CAMProtocol | dict, optional): The CAM -> mask options (a ``cam_cfg`` dict or a
            :class:`CAMProtocol`); ``protocol_options`` (its field names: ``scales``, ``refine``,
            ``bg_threshold``, ...) override single fields. Defaults to :data:`DEFAULT_PROTOCOL`.
        background_index (int, optional): Background channel; None when the classes have none
            (:func:`~mmseg_clip_wsss.datasets.image_labels.background_mismatch` must agree).
        palette (Sequence, optional): Class colours; VOC colour map by default.
        skip_existing (bool): Skip images whose PNG is already valid (resume). Defaults to True.
        evaluate (bool): Compute mIoU vs the ground truth (``seg_map_path``) with mmseg's IoUMetric and
            write ``<out_dir>/metrics.json``. Defaults to False.
        classes (Sequence[str], optional): Class names; default ``dataloader.dataset.metainfo``.
        reduce_zero_label (bool): Ground-truth convention for ``evaluate``. Defaults to False.
        show_progress (bool): Show a progress bar. Defaults to True.
        workers (int): Processes that finish the masks (:class:`MaskWriterPool`); 0: this one.
        timer (StageTimer, optional): Receives the seconds of every stage (``decode``, ``cam``,
            ``refine``, ``crf``, ``mask``, ``write``, ...). Defaults to None (nothing is timed).
        before_first_mask (Callable, optional): Called once, before this process writes its first mask.

    Returns:
        dict: ``written``, ``skipped`` (over all ranks), ``written_per_rank``, ``files`` (PNG paths in
        loader order, rank after rank), ``seconds``, ``metrics`` (dict, with ``evaluate``).
    """
    protocol, refiner = _checked_protocol(model, protocol, protocol_options, background_index)
    classes, start = _checked_classes(classes, dataloader, evaluate, background_index), time.time()
    run = _Run(model, out_dir, protocol, refiner, background_index, skip_existing, evaluate, None,
               timer_or_null(timer), before_first_mask)
    tally = _write_all(run, dataloader, _finisher(model, protocol, refiner, background_index, palette),
                       workers, show_progress)
    tally, result = _summary(tally, out_dir, start)
    if evaluate:
        result['metrics'] = _evaluate_on_rank0(tally.pairs, classes, out_dir, reduce_zero_label)
    return result
