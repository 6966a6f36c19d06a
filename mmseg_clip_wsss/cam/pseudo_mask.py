"""From CAMs to pseudo masks, and the check that a pseudo-mask file is complete.

Labels are in ``{0..K-1}`` plus ``255`` (ignore) for uncertain pixels; a class absent from an image's
labels can never appear in its mask. The files are VOC palette PNGs written atomically by
:func:`~mmseg_clip_wsss.datasets.write_palette_png`, so an interrupted run never leaves a half-written
PNG, and :func:`is_valid_png` lets a resumed run skip the masks that are already complete.
"""
import os.path as osp
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from mmseg_clip_wsss.datasets.image_io import ImageTooLargeError, open_image
from .protocol import BG_MODES, DEFAULT_PROTOCOL, IGNORE_INDEX, check_ignore_band

__all__ = ['fill_background', 'cams_to_pseudo_mask', 'pseudo_mask_confidence', 'is_valid_png']


def _present_mask(image_labels: Tensor, num_classes: int, background_index: Optional[int]) -> Tensor:
    if image_labels.dim() != 2 or image_labels.shape[1] != num_classes:
        raise ValueError(f'image_labels must be (B, K) with K = {num_classes} (the CAM channels), got '
                         f'{tuple(image_labels.shape)}.')
    present = image_labels > 0  # (B, K)
    if background_index is not None:
        present = present.clone()
        present[:, background_index] = True
    return present


def fill_background(cams: Tensor, image_labels: Tensor, bg_mode: str = DEFAULT_PROTOCOL.bg_mode,
                    bg_threshold: float = DEFAULT_PROTOCOL.bg_threshold,
                    background_index: Optional[int] = 0,
                    bg_power: float = DEFAULT_PROTOCOL.bg_power) -> Tensor:
    """Scores with the background channel set: the constant ``bg_threshold``, the model's own, or
    ``(1 - max CAM) ** bg_power``.

    Args:
        cams (Tensor): (B, K, H, W) CAMs.
        image_labels (Tensor): (B, K) multi-hot labels.
        bg_mode (str): ``'threshold'`` (background score = ``bg_threshold``), ``'prompt'`` (the
            background channel already holds the background score, e.g. from background prompts) or
            ``'complement'`` (``(1 - max of the present classes' CAMs) ** bg_power``, CLIP-ES).
        bg_threshold (float): Background score in ``'threshold'`` mode.
        background_index (int, optional): Background channel; None when there is none.
        bg_power (float): Power of the complement. Defaults to 2.

    Returns:
        Tensor: (B, K, H, W) float scores, absent classes 0.
    """
    if bg_mode not in BG_MODES:
        raise ValueError(f'bg_mode={bg_mode!r} must be one of {BG_MODES}.')
    scores = _present_class_scores(cams, image_labels, bg_mode, bg_threshold, background_index,
                                   bg_power)
    return scores.masked_fill(torch.isneginf(scores), 0.)


def _present_class_scores(cams: Tensor, image_labels: Tensor, bg_mode: str, bg_threshold: float,
                          background_index: Optional[int], bg_power: float = 2.0) -> Tensor:
    """(B, K, H, W) scores a pseudo mask is decided on: the background channel set
    (``bg_threshold`` in threshold mode, ``(1 - max) ** bg_power`` in complement mode), classes
    absent from an image ``-inf``."""
    present = _present_mask(image_labels.to(cams.device), cams.shape[1], background_index)  # (B, K)
    scores = cams.float().clone()
    if bg_mode == 'complement':
        if background_index is None:
            raise ValueError("bg_mode='complement' writes the background channel: it needs a "
                             "background class (background_index), or use bg_mode='threshold'.")
        objects = present.clone()
        objects[:, background_index] = False
        strongest = scores.clamp(min=0).mul(objects[:, :, None, None]).amax(dim=1)  # (B, H, W)
        scores[:, background_index] = (1 - strongest).clamp(min=0).pow(float(bg_power))
    elif bg_mode == 'threshold' and background_index is not None:
        scores[:, background_index] = float(bg_threshold)
    return scores.masked_fill(~present[:, :, None, None], float('-inf'))  # (B, K, H, W)


def _check_cams(cams: Tensor, bg_mode: str) -> None:
    """Raise a ValueError for CAMs that are not (B, K, H, W), an unknown mode or too many classes."""
    if cams.dim() != 4:
        raise ValueError(f'cams_to_pseudo_mask: cams must be (B, K, H, W), got {tuple(cams.shape)}.')
    if bg_mode not in BG_MODES:
        raise ValueError(f'cams_to_pseudo_mask: bg_mode={bg_mode!r} must be one of {BG_MODES}.')
    if cams.shape[1] > IGNORE_INDEX:
        raise ValueError(f'cams_to_pseudo_mask: {cams.shape[1]} classes do not fit a uint8 mask with '
                         f'ignore value {IGNORE_INDEX}.')


def _best_foreground(scores: Tensor, background_index: Optional[int]) -> Tensor:
    """(B, H, W) highest score over the foreground classes of (B, K, H, W) ``scores``."""
    fg = scores
    if background_index is not None:
        fg = scores.clone()
        fg[:, background_index] = float('-inf')
    return fg.amax(dim=1)  # (B, H, W)


def cams_to_pseudo_mask(cams: Tensor,
                        image_labels: Tensor,
                        bg_mode: str = DEFAULT_PROTOCOL.bg_mode,
                        bg_threshold: float = DEFAULT_PROTOCOL.bg_threshold,
                        ignore_band: Optional[Tuple[float, float]] = DEFAULT_PROTOCOL.ignore_band,
                        ignore_margin: Optional[float] = DEFAULT_PROTOCOL.ignore_margin,
                        background_index: Optional[int] = 0,
                        bg_power: float = DEFAULT_PROTOCOL.bg_power) -> Tensor:
    """Turn CAMs into pseudo masks.

    Every pixel takes the arg-max over the classes present in its image (background always counts as
    present; on a tie the lower class index wins, the background first). The background score is
    ``bg_threshold`` (``bg_mode='threshold'``), the background channel of ``cams`` (``'prompt'``: the
    model's background-prompt score, or refined scores that already include it) or
    ``(1 - max CAM) ** bg_power`` (``'complement'``, CLIP-ES). Uncertain pixels get ``255``:

    - ``ignore_band=(low, high)`` (threshold mode, ``low <= bg_threshold <= high``): the uncertain
      zone around the threshold -- pixels whose strongest foreground CAM lies in ``[low, high)`` are
      ignored; the others keep the threshold rule's label (see
      :func:`~mmseg_clip_wsss.cam.protocol.check_ignore_band`).
    - ``ignore_margin=m`` (any mode): ignore where the best present class beats the second by less
      than ``m``.

    Args:
        cams (Tensor): (B, K, H, W) CAMs (or refined scores).
        image_labels (Tensor): (B, K) multi-hot labels.
        bg_mode (str): One of :data:`~mmseg_clip_wsss.cam.protocol.BG_MODES`. Defaults to
            ``'threshold'``.
        bg_threshold (float): Background score in threshold mode. Defaults to 0.35.
        ignore_band (tuple[float, float], optional): (low, high). Defaults to None.
        ignore_margin (float, optional): Minimum top-1 vs top-2 margin. Defaults to None.
        background_index (int, optional): Background channel; None when the classes have no
            background (pixels below the threshold are then ignored). Defaults to 0.
        bg_power (float): Power of the complement mode. Defaults to 2.

    Returns:
        Tensor: (B, H, W) uint8 in ``{0..K-1, 255}``.
    """
    _check_cams(cams, bg_mode)
    band = check_ignore_band(ignore_band, bg_threshold, bg_mode)
    k = cams.shape[1]
    scores = _present_class_scores(cams, image_labels, bg_mode, bg_threshold, background_index,
                                   bg_power)

    top2 = scores.topk(min(2, k), dim=1)
    best, label = top2.values[:, 0], scores.argmax(dim=1)  # (B, H, W); argmax: ties to the first
    label = label.masked_fill(torch.isinf(best) & (best < 0), IGNORE_INDEX)
    if bg_mode == 'threshold' and background_index is None:
        label = label.masked_fill(best < float(bg_threshold), IGNORE_INDEX)  # no background class
    if band is not None:
        fg_best = _best_foreground(scores, background_index)
        label = label.masked_fill((fg_best >= band[0]) & (fg_best < band[1]), IGNORE_INDEX)
    if ignore_margin is not None and k > 1:
        second = top2.values[:, 1]
        uncertain = (best - second) < float(ignore_margin)
        uncertain &= ~torch.isinf(second)  # a single present class is never uncertain by margin
        label = label.masked_fill(uncertain, IGNORE_INDEX)
    return label.to(torch.uint8)


def pseudo_mask_confidence(cams: Tensor, image_labels: Tensor, mask: Tensor,
                           bg_mode: str = DEFAULT_PROTOCOL.bg_mode,
                           bg_threshold: float = DEFAULT_PROTOCOL.bg_threshold,
                           background_index: Optional[int] = 0,
                           bg_power: float = DEFAULT_PROTOCOL.bg_power) -> Tensor:
    """Per-pixel confidence of a pseudo mask: the winning class's share of the scores of the classes
    present in the image (scores clipped at 0), ``0`` where the mask is ignore (255).

    Adapted from the confidence map of CLIP-ES (Lin et al., "CLIP is Also an Efficient Segmenter",
    CVPR 2023), which takes a pixel's refined CAM value: the share also rates background pixels (in
    threshold mode the background scores ``bg_threshold``) and is the class probability when the
    scores are CRF marginals. With two classes present it lies in [0.5, 1] for labelled pixels.

    Args:
        cams (Tensor): (B, K, H, W) the CAMs (or refined scores) ``mask`` was made from.
        image_labels (Tensor): (B, K) multi-hot labels.
        mask (Tensor): (B, H, W) the pseudo mask of :func:`cams_to_pseudo_mask`.
        bg_mode, bg_threshold, background_index, bg_power: As for :func:`cams_to_pseudo_mask`.

    Returns:
        Tensor: (B, H, W) float in [0, 1].
    """
    scores = fill_background(cams, image_labels, bg_mode, bg_threshold, background_index, bg_power)
    scores = scores.clamp(min=0)  # (B, K, H, W); absent classes 0
    labelled = mask != IGNORE_INDEX  # (B, H, W)
    label = mask.long().masked_fill(~labelled, 0)[:, None]  # (B, 1, H, W)
    share = scores.gather(1, label)[:, 0] / scores.sum(dim=1).clamp(min=1e-12)  # (B, H, W)
    return (share * labelled).clamp(0, 1)


def is_valid_png(path: str, expected_size: Optional[Sequence[int]] = None,
                 expected_mode: Optional[str] = 'P') -> bool:
    """Whether ``path`` is a complete, readable PNG of the expected size (and mode).

    Args:
        path (str): File to check.
        expected_size (Sequence[int], optional): (H, W) the mask must have (e.g. ``ori_shape``).
        expected_mode (str, optional): PIL mode it must have. Defaults to ``'P'``.

    Returns:
        bool: False for a missing, truncated, corrupt or mismatching file.

    Raises:
        ImageTooLargeError: the file has more pixels than the pixel limit
            (:mod:`~mmseg_clip_wsss.datasets.image_io`); the message names it and how to raise it.
    """
    if not osp.isfile(path):
        return False
    try:
        with open_image(path, 'pseudo mask') as img:
            if img.format != 'PNG' or (expected_mode is not None and img.mode != expected_mode):
                return False
            if expected_size is not None and \
                    (img.height, img.width) != tuple(int(s) for s in expected_size[:2]):
                return False
            img.load()  # decodes every row: a truncated file raises here
    except ImageTooLargeError:
        raise
    except (OSError, SyntaxError, ValueError):  # CorruptImageError is an OSError
        return False
    return True
