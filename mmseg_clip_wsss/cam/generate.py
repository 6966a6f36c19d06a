"""Pseudo-mask generation over a dataloader: CAMs -> refinement -> labels -> VOC palette PNGs.

:func:`generate_pseudo_masks` is what ``tools/make_pseudo_masks.py`` runs; scripts and tests call it
directly with a built model and any iterable of mmseg-style batches
(``dict(inputs=[(3, H, W) uint8], data_samples=[SegDataSample with gt_image_labels])``).
"""
import glob
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.dist import (all_gather_object, barrier, broadcast_object_list, get_world_size,
                           is_main_process)
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from torch import Tensor

from mmseg_clip_wsss.structures import stack_image_labels
from .evaluate import evaluate_pseudo_masks, write_metrics_json
from .inference import multi_scale_flip_cams
from .pseudo_mask import (BG_MODES, cams_to_pseudo_mask, fill_background, is_valid_png,
                          write_palette_png)
from .refine import DenseCRFRefiner, PixelAdaptiveRefiner, build_refiner

__all__ = ['generate_pseudo_masks', 'restore_to_original', 'sample_image_id', 'denormalise_images']


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


def restore_to_original(maps: Tensor, data_sample, mode: str = 'bilinear') -> Tensor:
    """Bring one image's maps from the network input frame back to the original image.

    Removes the test-time padding (``padding_size`` / ``img_padding_size`` = left, right, top,
    bottom), undoes a pipeline flip (``flip``/``flip_direction``) and resizes to ``ori_shape``, like
    mmseg's ``postprocess_result``.

    Args:
        maps (Tensor): (K, H, W) maps of one image.
        data_sample (SegDataSample): Its data sample.
        mode (str): Interpolation mode. Defaults to 'bilinear'.

    Returns:
        Tensor: (K, H0, W0) at ``ori_shape``.
    """
    meta = data_sample.metainfo
    h, w = maps.shape[-2:]
    left, right, top, bottom = meta.get('img_padding_size', meta.get('padding_size', [0, 0, 0, 0]))
    maps = maps[:, top:h - bottom, left:w - right]
    if meta.get('flip', False):
        horizontal = meta.get('flip_direction', 'horizontal') == 'horizontal'
        maps = maps.flip(-1) if horizontal else maps.flip(-2)
    size = _ori_shape(data_sample)
    if tuple(maps.shape[-2:]) != size:
        kwargs = dict(align_corners=False) if mode in ('bilinear', 'bicubic') else {}
        maps = F.interpolate(maps[None].float(), size=size, mode=mode, **kwargs)[0]
    return maps


def denormalise_images(inputs: Tensor, data_preprocessor) -> Tensor:
    """Normalised (B, 3, H, W) inputs back to (B, H, W, 3) uint8 (for dense CRF)."""
    mean = getattr(data_preprocessor, 'mean', None)
    std = getattr(data_preprocessor, 'std', None)
    x = inputs.float()
    if mean is not None and std is not None and getattr(data_preprocessor, '_enable_normalize', True):
        x = x * std.view(1, -1, 1, 1).to(x) + mean.view(1, -1, 1, 1).to(x)
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _dataset_of(dataloader):
    return getattr(dataloader, 'dataset', None)


def _remove_stale_temporaries(out_dir: str) -> int:
    """Delete the temporary files a killed run left (``.<name>.png.<random>.tmp``); returns the count."""
    stale = glob.glob(osp.join(glob.escape(out_dir), '.*.png.*.tmp'))
    for path in stale:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
    return len(stale)


def generate_pseudo_masks(model,
                          dataloader,
                          out_dir: str,
                          scales: Sequence[float] = (1.0, 0.5, 1.5),
                          flip: bool = True,
                          bg_mode: str = 'threshold',
                          bg_threshold: float = 0.35,
                          ignore_band: Optional[Tuple[float, float]] = None,
                          ignore_margin: Optional[float] = None,
                          refine: Union[None, str, dict, PixelAdaptiveRefiner, DenseCRFRefiner] = 'par',
                          background_index: Optional[int] = 0,
                          size_divisor: Optional[int] = None,
                          palette: Optional[Sequence[Sequence[int]]] = None,
                          skip_existing: bool = True,
                          evaluate: bool = False,
                          classes: Optional[Sequence[str]] = None,
                          reduce_zero_label: bool = False,
                          show_progress: bool = True) -> Dict:
    """Write one pseudo-mask PNG ``<out_dir>/<img_id>.png`` per image of ``dataloader``.

    Per batch: the images already done (valid PNG of the right size) are skipped; the rest go through
    the model's data preprocessor, :func:`multi_scale_flip_cams` (restricted to each image's labels),
    the refinement (pixel-adaptive on the network input, or dense CRF on the filled scores), back to
    the original size, :func:`cams_to_pseudo_mask`, and :func:`write_palette_png` (atomic).

    Args:
        model: Segmentor with ``compute_cams`` and ``data_preprocessor``.
        dataloader (Iterable[dict]): mmseg-style batches whose data samples carry
            ``gt_image_labels`` and the metainfo ``img_path``, ``ori_shape`` (and ``seg_map_path`` for
            ``evaluate``).
        out_dir (str): Output directory (created).
        scales, flip, size_divisor: See :func:`multi_scale_flip_cams`.
        bg_mode, bg_threshold, ignore_band, ignore_margin, background_index: See
            :func:`cams_to_pseudo_mask`.
        refine (None | str | dict | refiner): ``'par'`` (default settings), ``'crf'``, ``'none'``/None,
            ``dict(type='par', num_iters=..., dilations=..., colour_sigma=...)``, or a built refiner.
        palette (Sequence, optional): Class colours; VOC colour map by default.
        skip_existing (bool): Skip images whose PNG is already valid (resume). Defaults to True.
        evaluate (bool): Compute mIoU vs the ground truth (``seg_map_path``) with mmseg's IoUMetric and
            write ``<out_dir>/metrics.json``. Defaults to False.
        classes (Sequence[str], optional): Class names; default ``dataloader.dataset.metainfo``.
        reduce_zero_label (bool): Ground-truth convention for ``evaluate``. Defaults to False.
        show_progress (bool): Show a progress bar. Defaults to True.

    Distributed (a process group is initialised and the dataloader's sampler shards the images,
    e.g. ``DefaultSampler(shuffle=False, round_up=False)``): every rank writes the PNGs of its
    shard, the counts and file lists are combined over the ranks and rank 0 evaluates all images.
    Temporary files left by a killed run are removed first (by rank 0, before any rank writes).

    Returns:
        dict: ``written``, ``skipped`` (counts over all ranks), ``written_per_rank``, ``files``
        (list of PNG paths in loader order, rank after rank when distributed), ``seconds``, and
        ``metrics`` (dict, with ``evaluate``).
    """
    if not hasattr(model, 'compute_cams'):
        raise TypeError(f'generate_pseudo_masks: {type(model).__name__} has no `compute_cams` method.')
    if bg_mode not in BG_MODES:
        raise ValueError(f'generate_pseudo_masks: bg_mode={bg_mode!r} must be one of {BG_MODES}.')
    built = isinstance(refine, (PixelAdaptiveRefiner, DenseCRFRefiner))
    refiner = refine if built else build_refiner(refine)
    use_crf = isinstance(refiner, DenseCRFRefiner)
    if use_crf and ignore_band is not None:
        raise ValueError('generate_pseudo_masks: ignore_band applies to CAM scores, not to CRF '
                         'marginals; with refine=crf use ignore_margin.')
    dataset = _dataset_of(dataloader)
    if classes is None:
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    if evaluate and not classes:
        raise ValueError('generate_pseudo_masks: evaluate=True needs the class names (pass `classes` '
                         'or use a dataset with metainfo["classes"]).')

    start = time.time()
    world_size = get_world_size()
    if is_main_process() and osp.isdir(out_dir):
        _remove_stale_temporaries(out_dir)
    if world_size > 1:
        barrier()  # no rank writes while rank 0 removes the leftovers of a killed run
    model.eval()
    param = next(iter(model.parameters()), None)
    if isinstance(refiner, PixelAdaptiveRefiner) and param is not None:
        refiner = refiner.to(param.device)
    if world_size > 1:  # this rank's shard
        sampler = getattr(dataloader, 'sampler', None)
        total = len(sampler) if sampler is not None and hasattr(sampler, '__len__') else 0
    else:
        total = len(dataset) if dataset is not None and hasattr(dataset, '__len__') else 0
    bar = ProgressBar(total) if show_progress and total and is_main_process() else None
    files: List[str] = []
    pairs: List[Tuple[str, str]] = []
    written = skipped = 0

    for data_batch in dataloader:
        samples = data_batch['data_samples']
        paths = [osp.join(out_dir, f'{sample_image_id(s)}.png') for s in samples]
        todo = [i for i, (s, p) in enumerate(zip(samples, paths))
                if not (skip_existing and is_valid_png(p, _ori_shape(s)))]
        skipped += len(samples) - len(todo)
        if evaluate:
            for s, p in zip(samples, paths):
                gt_path = s.metainfo.get('seg_map_path')
                if not gt_path:
                    raise KeyError(f'generate_pseudo_masks: evaluate=True but {sample_image_id(s)} '
                                   'has no `seg_map_path` (ground-truth mask) in its metainfo.')
                pairs.append((p, gt_path))
        files.extend(paths)
        if todo:
            sub_batch = dict(inputs=[data_batch['inputs'][i] for i in todo],
                             data_samples=[samples[i] for i in todo])
            with torch.no_grad():
                data = model.data_preprocessor(sub_batch, False)
                inputs, sub_samples = data['inputs'], data['data_samples']  # (b, 3, H, W)
                labels = stack_image_labels(sub_samples).to(inputs.device)  # (b, K)
                cams = multi_scale_flip_cams(model, inputs, labels, scales=scales, flip=flip,
                                             size_divisor=size_divisor)  # (b, K, H, W)
                mask_bg_mode = bg_mode
                if use_crf:
                    scores = fill_background(cams, labels, bg_mode, bg_threshold, background_index)
                    keep = (labels > 0).clone()  # (b, K)
                    if background_index is not None:
                        keep[:, background_index] = True
                    cams = refiner(scores, denormalise_images(inputs, model.data_preprocessor), keep)
                    mask_bg_mode = 'prompt'  # the marginals include the background
                elif refiner is not None:
                    cams = refiner(cams, inputs)
                for j, (sample, i) in enumerate(zip(sub_samples, todo)):
                    cam = restore_to_original(cams[j], sample)  # (K, H0, W0)
                    mask = cams_to_pseudo_mask(
                        cam[None], labels[j:j + 1], bg_mode=mask_bg_mode, bg_threshold=bg_threshold,
                        ignore_band=ignore_band, ignore_margin=ignore_margin,
                        background_index=background_index)[0]  # (H0, W0)
                    write_palette_png(paths[i], mask, palette)
                    written += 1
        if bar is not None:
            bar.update(len(samples))
    if bar is not None:
        bar.file.write('\n')

    written_per_rank = [written]
    if world_size > 1:  # every rank wrote its own shard: combine the counts and lists
        shards = all_gather_object(dict(written=written, skipped=skipped, files=files, pairs=pairs))
        written_per_rank = [shard['written'] for shard in shards]
        written = sum(written_per_rank)
        skipped = sum(shard['skipped'] for shard in shards)
        files = [f for shard in shards for f in shard['files']]
        pairs = [p for shard in shards for p in shard['pairs']]
    result = dict(written=written, skipped=skipped, files=files, out_dir=out_dir,
                  seconds=round(time.time() - start, 2), written_per_rank=written_per_rank)
    per_rank = f' (per rank: {", ".join(map(str, written_per_rank))})' if world_size > 1 else ''
    print_log(f'pseudo masks: {written} written{per_rank}, {skipped} already there, in {out_dir}',
              logger='current')
    if evaluate:
        metrics = [None]
        if is_main_process():
            metrics[0] = evaluate_pseudo_masks(pairs, classes, reduce_zero_label=reduce_zero_label)
            write_metrics_json(osp.join(out_dir, 'metrics.json'), metrics[0])
        if world_size > 1:
            broadcast_object_list(metrics)
        metrics = metrics[0]
        print_log(f'pseudo masks vs ground truth: mIoU {metrics["mIoU"]:.2f} '
                  f'(aAcc {metrics["aAcc"]:.2f}, ignored {100 * metrics["ignored_ratio"]:.1f}% of '
                  f'pixels, {metrics["num_images"]} images)', logger='current')
        result['metrics'] = metrics
    return result
