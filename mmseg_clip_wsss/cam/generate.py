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
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.dist import (all_gather_object, barrier, broadcast_object_list, get_world_size,
                           is_main_process)
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from mmseg.models.utils import resize
from torch import Tensor

from mmseg_clip_wsss.datasets.errors import DatasetError
from mmseg_clip_wsss.datasets.image_labels import background_mismatch, check_class_list
from mmseg_clip_wsss.datasets.label_mask import check_label_mask, image_size
from mmseg_clip_wsss.datasets.confidence_map import (CONFIDENCE_DIR, confidence_path,
                                                     write_confidence_png)
from mmseg_clip_wsss.datasets.palette import write_palette_png
from mmseg_clip_wsss.models.data_preprocessor import denormalise_images
from mmseg_clip_wsss.structures import IMAGE_LABELS, stack_image_labels
from .evaluate import evaluate_pseudo_masks, read_label_png, write_metrics_json
from .inference import multi_scale_flip_cams
from .protocol import CAMProtocol
from .pseudo_mask import (cams_to_pseudo_mask, fill_background, is_valid_png,
                          pseudo_mask_confidence)
from .refine import DenseCRFRefiner, PixelAdaptiveRefiner, build_refiner

__all__ = ['generate_pseudo_masks', 'pseudo_masks_of_batch', 'sample_image_id']


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


def _to_original(maps: Tensor, data_sample) -> Tensor:
    """One image's maps (K, h, w) on the unpadded network input -> (K, H0, W0) at ``ori_shape``,
    undoing a pipeline flip as mmseg's ``postprocess_result`` does, resized with mmseg's ``resize``."""
    meta = data_sample.metainfo
    if meta.get('flip', False):
        horizontal = meta.get('flip_direction', 'horizontal') == 'horizontal'
        maps = maps.flip(-1) if horizontal else maps.flip(-2)
    size = _ori_shape(data_sample)
    if tuple(maps.shape[-2:]) != size:
        maps = resize(maps[None].float(), size=size, mode='bilinear', align_corners=False,
                      warning=False)[0]
    return maps


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


def pseudo_masks_of_batch(model, inputs: Tensor, data_samples: Sequence, protocol: CAMProtocol,
                          refiner: Refiner, background_index: Optional[int]) -> List[Tensor]:
    """Pseudo masks of one preprocessed batch.

    Multi-scale + flip CAMs of the unpadded images, refinement (pixel-adaptive on the network input,
    or dense CRF on the filled scores), back to the original size, :func:`cams_to_pseudo_mask`.

    Args:
        model: Segmentor with ``compute_cams`` and ``data_preprocessor``.
        inputs (Tensor): (B, 3, H, W) normalised (and possibly padded) images.
        data_samples (Sequence[SegDataSample]): With ``gt_image_labels`` and the metainfo
            ``ori_shape`` (and the preprocessor's padding).
        protocol (CAMProtocol): The CAM -> mask options.
        refiner: Built refiner or None.
        background_index (int, optional): Background channel; None without background class.

    Returns:
        list[tuple[Tensor, Tensor]]: Per image, the (H0, W0) uint8 mask and its (H0, W0) float
        confidence in [0, 1] (:func:`~mmseg_clip_wsss.cam.pseudo_mask_confidence`).
    """
    inputs = _crop_padding(inputs, data_samples)  # (B, 3, h, w)
    labels = stack_image_labels(data_samples).to(inputs.device)  # (B, K)
    cams = multi_scale_flip_cams(model, inputs, labels, scales=protocol.scales, flip=protocol.flip,
                                 size_divisor=protocol.size_divisor,
                                 normalise=protocol.normalise)  # (B, K, h, w)
    bg_mode = protocol.bg_mode
    if isinstance(refiner, DenseCRFRefiner):
        power = protocol.bg_power if refiner.bg_power is None else refiner.bg_power
        scores = fill_background(cams, labels, bg_mode, protocol.bg_threshold, background_index, power)
        keep = (labels > 0).clone()  # (B, K)
        if background_index is not None:
            keep[:, background_index] = True
        cams = refiner(scores, denormalise_images(inputs, model.data_preprocessor), keep)
        bg_mode = 'prompt'  # the marginals include the background
    elif refiner is not None:
        cams = refiner(cams, inputs)
    results = []
    for j, sample in enumerate(data_samples):
        scores = _to_original(cams[j], sample)[None]  # (1, K, H0, W0)
        mask = cams_to_pseudo_mask(scores, labels[j:j + 1], bg_mode=bg_mode,
                                   bg_threshold=protocol.bg_threshold,
                                   ignore_band=protocol.ignore_band,
                                   ignore_margin=protocol.ignore_margin,
                                   background_index=background_index,
                                   bg_power=protocol.bg_power)  # (1, H0, W0)
        confidence = pseudo_mask_confidence(scores, labels[j:j + 1], mask, bg_mode=bg_mode,
                                            bg_threshold=protocol.bg_threshold,
                                            background_index=background_index,
                                            bg_power=protocol.bg_power)
        results.append((mask[0], confidence[0]))
    return results


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


def _process_batch(model, data_batch: dict, out_dir: str, protocol: CAMProtocol, refiner: Refiner,
                   background_index: Optional[int], palette, skip_existing: bool, evaluate: bool,
                   tally: _Tally) -> None:
    """Write the masks of one loader batch that are not done yet; record every file."""
    samples = data_batch['data_samples']
    paths = [osp.join(out_dir, f'{sample_image_id(s)}.png') for s in samples]
    todo = [i for i, (s, p) in enumerate(zip(samples, paths))
            if not (skip_existing and _is_done(p, _ori_shape(s)))]
    tally.skipped += len(samples) - len(todo)
    tally.files.extend(paths)
    if evaluate:
        for s, p in zip(samples, paths):
            gt_path = s.metainfo.get('seg_map_path')
            if not gt_path:
                raise KeyError(f'generate_pseudo_masks: evaluate=True but {sample_image_id(s)} '
                               'has no `seg_map_path` (ground-truth mask) in its metainfo.')
            if osp.isfile(gt_path) and image_size(gt_path) != _ori_shape(s):  # header only
                check_label_mask(  # refuses, naming the mask, its image and the fix
                    read_label_png(gt_path), gt_path, s.metainfo.get('img_path'), _ori_shape(s))
            tally.pairs.append((p, gt_path))
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
        data = model.data_preprocessor(sub_batch, False)
        masks = pseudo_masks_of_batch(model, data['inputs'], data['data_samples'], protocol, refiner,
                                      background_index)
    for i, (mask, confidence) in zip(todo, masks):
        write_confidence_png(confidence_path(paths[i]), confidence)  # before the mask: see _is_done
        write_palette_png(paths[i], mask, palette)
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


def _write_all(model, dataloader, out_dir: str, protocol: CAMProtocol, refiner, background_index,
               palette, skip_existing: bool, evaluate: bool, show_progress: bool) -> _Tally:
    """Write the masks of this rank's batches (after rank 0 removed a killed run's leftovers)."""
    if is_main_process() and osp.isdir(out_dir):
        _remove_stale_temporaries(out_dir)
    if get_world_size() > 1:
        barrier()  # no rank writes while rank 0 removes the leftovers of a killed run
    model.eval()
    bar = _progress_bar(dataloader, show_progress)
    tally = _Tally()
    for data_batch in dataloader:
        _process_batch(model, data_batch, out_dir, protocol, refiner, background_index, palette,
                       skip_existing, evaluate, tally)
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
                          **protocol_options) -> Dict:
    """Write one pseudo-mask PNG ``<out_dir>/<img_id>.png`` per image of ``dataloader``, and its
    confidence map ``<out_dir>/confidence/<img_id>.png`` (8-bit grayscale, ``v / 255`` = confidence;
    see :mod:`mmseg_clip_wsss.datasets.confidence_map`).

    Per batch: the images already done (valid mask and confidence PNGs of the right size) are
    skipped; the rest go through the model's data preprocessor and :func:`pseudo_masks_of_batch`, and
    are written atomically. Distributed runs: see the module docstring.

    Args:
        model: Segmentor with ``compute_cams`` and ``data_preprocessor``.
        dataloader (Iterable[dict]): mmseg-style batches whose data samples carry
            ``gt_image_labels`` and the metainfo ``img_path``, ``ori_shape`` (and ``seg_map_path`` for
            ``evaluate``).
        out_dir (str): Output directory (created).
        protocol (CAMProtocol | dict, optional): The CAM -> mask options (a ``cam_cfg`` dict or a
            :class:`CAMProtocol`); ``protocol_options`` (its field names: ``scales``, ``refine``,
            ``bg_threshold``, ...) override single fields. Defaults to :data:`DEFAULT_PROTOCOL`.
        background_index (int, optional): Background channel; None when the classes have none (it
            must agree with ``classes``: see
            :func:`~mmseg_clip_wsss.datasets.image_labels.background_mismatch`).
        palette (Sequence, optional): Class colours; VOC colour map by default.
        skip_existing (bool): Skip images whose PNG is already valid (resume). Defaults to True.
        evaluate (bool): Compute mIoU vs the ground truth (``seg_map_path``) with mmseg's IoUMetric and
            write ``<out_dir>/metrics.json``. Defaults to False.
        classes (Sequence[str], optional): Class names; default ``dataloader.dataset.metainfo``.
        reduce_zero_label (bool): Ground-truth convention for ``evaluate``. Defaults to False.
        show_progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: ``written``, ``skipped`` (counts over all ranks), ``written_per_rank``, ``files``
        (list of PNG paths in loader order, rank after rank when distributed), ``seconds``, and
        ``metrics`` (dict, with ``evaluate``).
    """
    if not hasattr(model, 'compute_cams'):
        raise TypeError(f'generate_pseudo_masks: {type(model).__name__} has no `compute_cams` method.')
    protocol = CAMProtocol.from_cfg(protocol, **protocol_options)
    refiner = _build_refiner(protocol, model)
    classes = _checked_classes(classes, dataloader, evaluate, background_index)
    rule = protocol.background_rule(background_index)  # refuses a protocol that needs a background
    if background_index is None:
        print_log(f'pseudo masks: {rule}.', logger='current')
    start = time.time()
    tally = _write_all(model, dataloader, out_dir, protocol, refiner, background_index, palette,
                       skip_existing, evaluate, show_progress)
    tally, result = _summary(tally, out_dir, start)
    if evaluate:
        result['metrics'] = _evaluate_on_rank0(tally.pairs, classes, out_dir, reduce_zero_label)
    return result
