"""mIoU of pseudo masks against ground truth, through mmseg's :class:`IoUMetric`.

Ground-truth masks are read here only, for evaluation. Pixels a pseudo mask marks as ignore (255)
count as errors for the ground-truth class (they leave that class's union, not its intersection), so
a wide ignore band cannot inflate the score; ``ignored_ratio`` reports how many pixels were ignored.
"""
import logging
from itertools import tee
from typing import Dict, Iterable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import MMLogger
from mmseg.evaluation import IoUMetric
from torch import Tensor

from mmseg_clip_wsss.datasets.atomic_files import write_json_atomically
from mmseg_clip_wsss.datasets.errors import DatasetError
from mmseg_clip_wsss.datasets.image_io import read_image
from mmseg_clip_wsss.datasets.label_mask import check_label_mask
from .protocol import IGNORE_INDEX

__all__ = ['compute_miou', 'mean_class_iou', 'evaluate_pseudo_masks', 'read_label_png', 'write_metrics_json']

ArrayLike = Union[np.ndarray, Tensor]


def read_label_png(path: str, reduce_zero_label: bool = False) -> np.ndarray:
    """Read a label PNG (palette or grey) as its raw indices (H, W) uint8.

    Args:
        path (str): PNG file (e.g. VOC ``SegmentationClass/<id>.png``).
        reduce_zero_label (bool): mmseg's convention: 0 -> 255, others - 1. Defaults to False.

    Returns:
        np.ndarray: (H, W) uint8 class indices.

    Raises:
        FileNotFoundError, CorruptImageError, ImageTooLargeError: naming the file and the fix
            (:func:`~mmseg_clip_wsss.datasets.image_io.read_image`).
        DatasetError: a colour mask (:func:`~mmseg_clip_wsss.datasets.label_mask.check_label_mask`).
    """
    label = read_image(path, 'label mask', 'restore it, or point to the right mask directory')
    label = check_label_mask(label, path)  # (H, W); colour masks are refused
    label = label.astype(np.uint8)
    if reduce_zero_label:
        label = label.astype(np.int64)
        label[label == 0] = 256
        label = (label - 1).clip(0, 255).astype(np.uint8)
    return label


def _as_long(x: ArrayLike) -> Tensor:
    return (x if isinstance(x, Tensor) else torch.from_numpy(np.asarray(x))).long().cpu()


def compute_miou(preds: Iterable[ArrayLike], gts: Iterable[ArrayLike], classes: Sequence[str],
                 ignore_index: int = IGNORE_INDEX, with_per_class: bool = True,
                 log_table: bool = True) -> Dict:
    """mIoU (%) of label maps vs ground truth with mmseg's ``IoUMetric``.

    Args:
        preds (Iterable[np.ndarray | Tensor]): (H, W) predicted labels (255 = ignore).
        gts (Iterable[np.ndarray | Tensor]): (H, W) ground truths (``ignore_index`` pixels skipped).
        classes (Sequence[str]): Class names (K).
        ignore_index (int): Ground-truth ignore value. Defaults to 255.
        with_per_class (bool): Add ``per_class_iou`` (class -> IoU %). Defaults to True.
        log_table (bool): Let IoUMetric log its per-class table. Defaults to True.

    Returns:
        dict: ``aAcc``, ``mIoU``, ``mAcc`` (%, as IoUMetric reports them), ``num_images``,
        ``ignored_ratio`` (fraction of predicted pixels that are 255 where the ground truth is
        valid) and optionally ``per_class_iou``.
    """
    metric = IoUMetric(ignore_index=ignore_index, iou_metrics=['mIoU'], prefix='pseudo_mask')
    metric.dataset_meta = dict(classes=tuple(classes))
    ignored = 0
    valid = 0
    n = 0
    for pred, gt in zip(preds, gts):
        pred, gt = _as_long(pred), _as_long(gt)
        if pred.shape != gt.shape:
            raise ValueError(f'compute_miou: prediction {tuple(pred.shape)} and ground truth '
                             f'{tuple(gt.shape)} differ in shape (image #{n}).')
        sample = dict(pred_sem_seg=dict(data=pred[None]), gt_sem_seg=dict(data=gt[None]))
        metric.process({}, [sample])
        keep = gt != ignore_index
        ignored += int(((pred == IGNORE_INDEX) & keep).sum())
        valid += int(keep.sum())
        n += 1
    if n == 0:
        raise ValueError('compute_miou: no images to evaluate.')
    logger = MMLogger.get_current_instance()
    level = logger.level
    if not log_table:
        logger.setLevel(logging.WARNING)
    try:
        summary = metric.compute_metrics(metric.results)
    finally:
        logger.setLevel(level)
    metrics = {key: float(val) for key, val in summary.items()}
    metrics['num_images'] = n
    metrics['ignored_ratio'] = round(ignored / max(valid, 1), 4)
    if with_per_class:
        inter, union = (torch.stack(r).sum(0) for r in list(zip(*metric.results))[:2])
        iou = (inter / union.clamp(min=1)).numpy() * 100
        metrics['per_class_iou'] = {
            name: (round(float(v), 2) if u > 0 else None)
            for name, v, u in zip(classes, iou, union.numpy())
        }
    return metrics


def mean_class_iou(per_class_iou: Dict[str, Optional[float]], names: Sequence[str]) -> Optional[float]:
    """Mean IoU (%) of ``names`` in a ``per_class_iou`` of :func:`compute_miou`, rounded to 0.01.

    A class that is neither in the ground truth nor predicted (IoU None) is left out, as mmseg's mIoU
    leaves it out; None when every class of ``names`` is.
    """
    values = [per_class_iou[n] for n in names if per_class_iou[n] is not None]
    return round(float(np.mean(values)), 2) if values else None


def evaluate_pseudo_masks(pairs: Iterable[Tuple[str, str]], classes: Sequence[str],
                          ignore_index: int = IGNORE_INDEX, reduce_zero_label: bool = False,
                          log_table: bool = True) -> Dict:
    """mIoU of pseudo-mask PNGs vs ground-truth PNGs.

    Args:
        pairs (Iterable[tuple[str, str]]): (pseudo-mask path, ground-truth path) per image.
        classes (Sequence[str]): Class names.
        ignore_index (int): Ground-truth ignore value. Defaults to 255.
        reduce_zero_label (bool): Apply mmseg's ``reduce_zero_label`` to the ground truth.
        log_table (bool): Log IoUMetric's per-class table. Defaults to True.

    Returns:
        dict: See :func:`compute_miou`.

    Raises:
        DatasetError: naming both files when a pair differs in size (or a mask is no label map).
    """
    preds, gts = tee(_read_pairs(pairs, reduce_zero_label))  # read in step: one pair at a time
    return compute_miou((p for p, _ in preds), (g for _, g in gts), classes,
                        ignore_index=ignore_index, log_table=log_table)


def _read_pairs(pairs: Iterable[Tuple[str, str]],
                reduce_zero_label: bool) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """(pseudo mask, ground truth) label maps of each pair of files, refused unless of one size."""
    for pred_path, gt_path in pairs:
        pred, gt = read_label_png(pred_path), read_label_png(gt_path, reduce_zero_label)
        if pred.shape != gt.shape:
            raise DatasetError(
                f'pseudo mask {pred_path} is {pred.shape[0]}x{pred.shape[1]} (HxW) but its '
                f'ground-truth mask {gt_path} is {gt.shape[0]}x{gt.shape[1]}: both must be at the '
                "size of their image as loaded (EXIF orientation applied): check that they belong "
                'to the same image, or make the pseudo masks again (make_pseudo_masks --overwrite).')
        yield pred, gt


def write_metrics_json(path: str, metrics: Dict, extra: Optional[Dict] = None) -> str:
    """Write ``metrics`` (plus ``extra``) as indented JSON, atomically."""
    data = dict(metrics)
    if extra:
        data.update(extra)
    return write_json_atomically(path, data)
