"""The per-image end of pseudo-mask generation, on the CPU: the refinement that runs there (dense CRF;
the pixel-adaptive refinement when the model is on the CPU), back to the original size, labels and
confidence, and the two PNGs, written atomically.

:func:`~mmseg_clip_wsss.cam.generate_pseudo_masks` turns every image of a batch into a
:class:`MaskJob` (the CAMs of the classes its mask can hold, what the refinement reads, where the files
go) and hands it to a :class:`MaskFinisher`, in its own process or in worker processes
(:class:`~mmseg_clip_wsss.cam.worker_pool.MaskWriterPool`). A job holds plain numpy arrays, so it
pickles cheaply, and the finisher runs the same functions in either place, so the PNGs are the same.
Only the rows of the classes an image can hold travel, get resized and decide the labels
(:func:`cams_to_pseudo_mask` on those rows, mapped back to the K classes): the other classes are absent
from the image, so the mask is the one all K rows give.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from mmseg_clip_wsss.datasets.confidence_map import confidence_path, write_confidence_png
from mmseg_clip_wsss.datasets.palette import write_palette_png
from mmseg_clip_wsss.models.utils import resize_rows
from .protocol import IGNORE_INDEX, CAMProtocol
from .inference import label_rows, merge_scale_cams
from .pseudo_mask import cams_to_pseudo_mask, fill_background, pseudo_mask_confidence
from .refine import DenseCRFRefiner, PixelAdaptiveRefiner, build_refiner
from .stage_timer import NULL_TIMER, StageTimer

__all__ = ['MaskJob', 'MaskFinisher', 'to_original']

Refiner = Union[None, PixelAdaptiveRefiner, DenseCRFRefiner]


@dataclass
class MaskJob:
    """What is left to do for one image.

    Args:
        mask_path (str): The mask PNG; its confidence map goes to
            :func:`~mmseg_clip_wsss.datasets.confidence_map.confidence_path` of it.
        scores (np.ndarray, optional): (K', h, w) float32 CAMs of ``channels`` at the network input
            size; None when ``scale_scores`` are given instead.
        channels (tuple[int]): The class of every row: the image's labels and the background.
        labels (np.ndarray): (K, ) float32 multi-hot image-level labels.
        ori_shape (tuple[int, int]): (H0, W0) of the mask.
        flip (str, optional): ``'horizontal'`` / ``'vertical'`` when the loading pipeline flipped the
            image (undone here, as mmseg's ``postprocess_result`` does); None otherwise.
        image (np.ndarray, optional): What a refinement here reads: the (3, h, w) float32 normalised
            network input for the pixel-adaptive refinement, the (h, w, 3) uint8 RGB image for dense
            CRF; None when nothing is refined here.
        scale_scores (list[np.ndarray], optional): The model's raw score maps of every scale of the
            protocol, (2, K, h_s', w_s') with the flipped image second (or (1, ...) without flip):
            the CAMs are made from them here (:meth:`MaskFinisher.cams`).
        scale_sizes (list[tuple[int, int]], optional): The network input size of every scale.
        input_size (tuple[int, int], optional): (h, w) of the unpadded network input, the size the
            CAMs of ``scale_scores`` are merged at.
        channels_last (bool): The model gave its scores in channels-last layout (kept, so the CAMs
            are computed as in the model's process).
    """
    mask_path: str
    scores: Optional[np.ndarray]
    channels: Tuple[int, ...]
    labels: np.ndarray
    ori_shape: Tuple[int, int]
    flip: Optional[str] = None
    image: Optional[np.ndarray] = None
    scale_scores: Optional[List[np.ndarray]] = None
    scale_sizes: Optional[List[Tuple[int, int]]] = None
    input_size: Optional[Tuple[int, int]] = None
    channels_last: bool = False


def to_original(maps: Tensor, ori_shape: Sequence[int], flip: Optional[str] = None) -> Tensor:
    """One image's maps (K, h, w) on the unpadded network input -> (K, H0, W0) at ``ori_shape``,
    undoing a pipeline flip, resized bilinearly (:func:`~mmseg_clip_wsss.models.utils.resize_rows`)."""
    if flip is not None:
        maps = maps.flip(-1) if flip == 'horizontal' else maps.flip(-2)
    size = (int(ori_shape[0]), int(ori_shape[1]))
    if tuple(maps.shape[-2:]) != size:
        maps = resize_rows(maps[None].float(), size)[0]
    return maps


def _full_rows(rows: Tensor, channels: Sequence[int], num_classes: int) -> Tensor:
    """(K', H, W) rows of ``channels`` -> (1, K, H, W), zero elsewhere."""
    full = rows.new_zeros(1, num_classes, *rows.shape[-2:])
    full[0, list(channels)] = rows
    return full


class MaskFinisher:
    """Finishes :class:`MaskJob` s: CPU refinement, original size, labels, confidence, PNGs.

    Picklable: a built dense-CRF refiner is left behind and built again from ``refine_cfg`` in the
    process that unpickles it.

    Args:
        protocol (CAMProtocol): ``bg_mode``, ``bg_threshold``, ``bg_power``, ``ignore_band``,
            ``ignore_margin``, ``normalise``, ``flip``.
        background_index (int, optional): Background class; None without one.
        palette (Sequence, optional): Class colours of the mask PNGs (VOC colour map by default).
        refiner (PixelAdaptiveRefiner | DenseCRFRefiner, optional): The refinement that runs here;
            None when none runs here (none at all, or it ran on the model's device).
        refine_cfg (str | dict, optional): The config ``refiner`` was built from (a dense CRF is
            built again from it in the process that unpickles the finisher).
        scores_to_cams (callable, optional): The model's ``scores_to_cams(scores, image_labels,
            size)``, for jobs that carry ``scale_scores``.
    """

    def __init__(self, protocol: CAMProtocol, background_index: Optional[int],
                 palette: Optional[Sequence[Sequence[int]]] = None, refiner: Refiner = None,
                 refine_cfg: Union[None, str, dict] = None,
                 scores_to_cams: Optional[Callable[..., Tensor]] = None):
        self.bg_mode = protocol.bg_mode
        self.bg_threshold = protocol.bg_threshold
        self.bg_power = protocol.bg_power
        self.normalise = protocol.normalise
        self.ignore_band = protocol.ignore_band
        self.ignore_margin = protocol.ignore_margin
        self.background_index = background_index
        self.palette = palette
        self.refine_cfg = refine_cfg
        self._refiner = refiner
        self.scores_to_cams = scores_to_cams
        self.flip = protocol.flip

    def __getstate__(self) -> dict:
        state = dict(vars(self))
        if isinstance(self._refiner, DenseCRFRefiner):
            if self.refine_cfg is None:
                raise TypeError('pseudo masks: worker processes build the dense CRF from its config; '
                                "give cam_cfg.refine as 'crf' or dict(type='crf', ...), not a built "
                                'DenseCRFRefiner (or use workers=0).')
            state['_refiner'] = None  # holds the pydensecrf module: built again where unpickled
        return state

    @property
    def refiner(self) -> Refiner:
        """The refiner that runs here (a dense CRF is built from ``refine_cfg`` after unpickling)."""
        if self._refiner is None and self.refine_cfg is not None:
            self._refiner = build_refiner(self.refine_cfg)
        return self._refiner

    def cams(self, job: MaskJob) -> Tensor:
        """The job's (K', h, w) CAMs of ``channels``: ``scores``, or made from ``scale_scores`` with
        the model's ``scores_to_cams`` and merged as
        :func:`~mmseg_clip_wsss.cam.multi_scale_flip_cams` merges them."""
        if job.scale_scores is None:
            return torch.from_numpy(job.scores)
        labels = torch.from_numpy(job.labels)[None]  # (1, K)
        rows = label_rows(labels)
        scale_cams = []
        for raw, size in zip(job.scale_scores, job.scale_sizes):
            raw = torch.from_numpy(raw)  # (1 or 2, K, h', w')
            if job.channels_last:
                raw = raw.contiguous(memory_format=torch.channels_last)
            scale_cams.append(self.scores_to_cams(raw, labels.expand(raw.shape[0], -1), size)[:, rows])
        merged = merge_scale_cams(scale_cams, labels, rows, job.input_size, self.flip,
                                  self.normalise)
        return merged[0, list(job.channels)]

    def masks(self, job: MaskJob, timer: StageTimer = NULL_TIMER) -> Tuple[Tensor, Tensor]:
        """The (H0, W0) uint8 mask and float confidence of ``job`` (stages ``cam`` for jobs with
        ``scale_scores``, ``refine`` or ``crf``, then ``mask``)."""
        with timer.stage('cam'):
            rows = self.cams(job)  # (K', h, w)
        bg_mode = self.bg_mode
        refiner = self.refiner
        if isinstance(refiner, DenseCRFRefiner):
            with timer.stage('crf'):
                rows = self._crf(refiner, job, rows)
            bg_mode = 'prompt'  # the marginals include the background
        elif refiner is not None:
            with timer.stage('refine'):
                rows = refiner(rows[None], torch.from_numpy(job.image)[None])[0]
        with timer.stage('mask'):
            return self._mask(job, rows, bg_mode)

    def __call__(self, job: MaskJob, timer: StageTimer = NULL_TIMER) -> str:
        """Finish ``job``: :meth:`masks`, then its confidence map and its mask are written (in this
        order, so a valid mask always has its confidence map; stage ``write``).

        Returns:
            str: The mask path.
        """
        mask, confidence = self.masks(job, timer)
        with timer.stage('write'):
            write_confidence_png(confidence_path(job.mask_path), confidence)
            write_palette_png(job.mask_path, mask, self.palette)
        return job.mask_path

    def _crf(self, refiner: DenseCRFRefiner, job: MaskJob, rows: Tensor) -> Tensor:
        """CRF marginals (K', h, w) of the job's classes, from its CAM rows with the background
        filled (:func:`fill_background`), through the refiner's (B, K, ...) interface."""
        labels = torch.from_numpy(job.labels)[None]  # (1, K)
        power = self.bg_power if refiner.bg_power is None else refiner.bg_power
        scores = fill_background(_full_rows(rows, job.channels, labels.shape[1]), labels, self.bg_mode,
                                 self.bg_threshold, self.background_index, power)  # (1, K, h, w)
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[0, list(job.channels)] = True
        image = torch.from_numpy(job.image)[None]  # (1, h, w, 3) uint8
        return refiner(scores, image, keep)[0, list(job.channels)]

    def _mask(self, job: MaskJob, rows: Tensor, bg_mode: str) -> Tuple[Tensor, Tensor]:
        """The (H0, W0) uint8 mask and float confidence of the job's rows. They are decided on the
        K' rows alone and their labels mapped back to the K classes: the classes outside
        ``channels`` are absent, so they never win, and the mask is the one all K rows give."""
        channels = list(job.channels)
        if self.background_index is not None and self.background_index not in channels:
            raise ValueError(f'MaskJob {job.mask_path}: its channels {channels} must hold the '
                             f'background class {self.background_index}.')
        background = None if self.background_index is None else channels.index(self.background_index)
        labels = torch.from_numpy(job.labels)[None][:, channels]  # (1, K')
        scores = to_original(rows, job.ori_shape, job.flip)[None]  # (1, K', H0, W0)
        local = cams_to_pseudo_mask(scores, labels, bg_mode=bg_mode, bg_threshold=self.bg_threshold,
                                    ignore_band=self.ignore_band, ignore_margin=self.ignore_margin,
                                    background_index=background, bg_power=self.bg_power)[0]
        confidence = pseudo_mask_confidence(scores, labels, local[None], bg_mode=bg_mode,
                                            bg_threshold=self.bg_threshold, background_index=background,
                                            bg_power=self.bg_power)[0]
        to_class = torch.full((256, ), IGNORE_INDEX, dtype=torch.uint8)  # K' row -> class, 255 stays
        to_class[:len(channels)] = torch.tensor(channels, dtype=torch.uint8)
        return to_class[local.long()], confidence
