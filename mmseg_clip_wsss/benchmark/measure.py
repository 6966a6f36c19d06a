"""Measurements of one model: parameters, FLOPs, timed inference / training step, profiles.

Inference is the model's own inference path, ``encode_decode(inputs, img_metas)`` (backbone, neck,
head, score maps resized to the input; the class text embeddings come from the text encoder's cache),
under ``torch.no_grad()`` in eval mode. A training step is ``loss`` + backward + the optimiser step of
the config's ``optim_wrapper`` (``OptimWrapper.update_params``). Timings of several models are taken
round-robin (:func:`interleaved_times`), so slow drifts of a shared machine hit all of them alike.
"""
import contextlib
import dataclasses
import logging
import math
import statistics
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.analysis import get_model_complexity_info
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper as build_mmengine_optim_wrapper
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch.profiler import ProfilerActivity, profile, record_function

from mmseg_clip_wsss.cam import CAMProtocol, build_refiner, cams_to_pseudo_mask, multi_scale_flip_cams
from mmseg_clip_wsss.structures import set_image_labels

__all__ = [
    'count_parameters', 'complexity_gflops', 'text_encoder_cost', 'ForwardCounter', 'component_ranges',
    'make_inputs', 'make_train_batch', 'make_infer_fn', 'make_train_fn', 'interleaved_times',
    'median', 'profile_inference', 'pseudo_mask_settings', 'make_pseudo_mask_fn', 'COMPONENTS',
    'text_tower_of', 'build_optim_wrapper', 'num_classes_of', 'ratio'
]

#: Sub-modules of a segmentor timed separately in the profiles.
COMPONENTS = ('backbone', 'neck', 'decode_head', 'auxiliary_head', 'text_encoder')


def _sync(device: str) -> None:
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# ----------------------------------------------------------------------------- size
def _frozen_text_tower_params(model: nn.Module) -> int:
    text_encoder = getattr(model, 'text_encoder', None)
    tower = getattr(text_encoder, 'text_tower', None)
    if tower is None:
        return 0
    return sum(p.numel() for p in tower.parameters() if not p.requires_grad)


def count_parameters(model: nn.Module) -> Dict[str, float]:
    """Parameter counts in millions.

    Returns:
        dict: ``params_m`` (everything except a frozen CLIP text tower: it runs once per class list,
        its output is cached, and checkpoints leave it out), ``params_total_m`` (all),
        ``text_tower_params_m`` (the frozen tower), ``trainable_params_m``.
    """
    total = sum(p.numel() for p in model.parameters())
    tower = _frozen_text_tower_params(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return dict(params_m=(total - tower) / 1e6, params_total_m=total / 1e6,
                text_tower_params_m=tower / 1e6, trainable_params_m=trainable / 1e6)


@contextlib.contextmanager
def _quiet_analysis():
    """Silence mmengine's logger (the FLOP counter's per-op warnings, the optimiser builder's
    per-parameter lines) for a while."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
        logger.setLevel(level)


def complexity_gflops(model: nn.Module, inputs: torch.Tensor) -> float:
    """GFLOPs of ``model(inputs)`` (``mode='tensor'``: raw score maps) by mmengine's analysis.

    mmengine counts one multiply-add as one FLOP (the convention of the OpenMMLab model zoos).
    Counted under ``torch.no_grad()``: a text encoder that caches its embeddings returns the cached
    tensor (call the model once before), so the text tower is not counted per image.
    """
    with torch.no_grad(), _quiet_analysis(), _tracing_warnings_off():
        info = get_model_complexity_info(model, inputs=(inputs, ), show_table=False, show_arch=False)
    return float(info['flops']) / 1e9


@contextlib.contextmanager
def _tracing_warnings_off():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        yield


class _TextOnce(nn.Module):
    """Wraps a text encoder: ``forward(dummy)`` computes the class embeddings once, uncached."""

    def __init__(self, text_encoder: nn.Module):
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, dummy: torch.Tensor) -> torch.Tensor:
        encode = getattr(self.text_encoder, '_encode', None)
        out = encode() if encode is not None else self.text_encoder()
        return out + 0 * dummy.sum()


def text_encoder_cost(model: nn.Module, device: str = 'cpu') -> Dict[str, Optional[float]]:
    """What computing the class text embeddings once costs (GFLOPs, seconds), or Nones."""
    text_encoder = getattr(model, 'text_encoder', None)
    if text_encoder is None:
        return dict(text_encoder_gflops_once=None, text_encoder_once_s=None)
    wrapper = _TextOnce(text_encoder)
    dummy = torch.zeros(1, device=device)
    with torch.no_grad():
        _sync(device)
        start = time.perf_counter()
        wrapper(dummy)
        _sync(device)
        seconds = time.perf_counter() - start
    with torch.no_grad(), _quiet_analysis(), _tracing_warnings_off():
        flops = get_model_complexity_info(wrapper, inputs=(dummy, ), show_table=False,
                                          show_arch=False)['flops']
    return dict(text_encoder_gflops_once=float(flops) / 1e9, text_encoder_once_s=seconds)


# -------------------------------------------------------------------- instrumenting
def _patch_forward(module: nn.Module, make: Callable[[Callable], Callable]) -> Callable[[], None]:
    """Replace ``module.forward`` by ``make(original)`` (an instance attribute, so ``__call__`` and
    direct ``forward`` calls both see it); returns the function that restores the original."""
    had_own = 'forward' in module.__dict__
    previous = module.__dict__.get('forward')
    module.forward = make(module.forward)

    def restore() -> None:
        if had_own:
            module.forward = previous
        else:
            del module.forward

    return restore


class ForwardCounter:
    """Counts the calls of ``module.forward`` (through ``__call__`` or directly) while active.

    Args:
        module (nn.Module, optional): The module; None counts nothing (``count`` stays None).
    """

    def __init__(self, module: Optional[nn.Module]):
        self.module = module
        self.count: Optional[int] = None if module is None else 0
        self._restore: Optional[Callable[[], None]] = None

    def __enter__(self) -> 'ForwardCounter':
        if self.module is not None:

            def make(original):

                def counted(*args, **kwargs):
                    self.count += 1
                    return original(*args, **kwargs)

                return counted

            self._restore = _patch_forward(self.module, make)
        return self

    def __exit__(self, *exc) -> None:
        if self._restore is not None:
            self._restore()
            self._restore = None


def text_tower_of(model: nn.Module) -> Optional[nn.Module]:
    """The CLIP text tower of a text-guided model (None without one)."""
    text_encoder = getattr(model, 'text_encoder', None)
    if text_encoder is None:
        return None
    return getattr(text_encoder, 'text_tower', text_encoder)


@contextlib.contextmanager
def component_ranges(model: nn.Module, components: Sequence[str] = COMPONENTS):
    """Wrap the ``forward`` of the model's components in profiler ranges ``module::<name>``."""
    restores = []
    for name in components:
        module = getattr(model, name, None)
        if not isinstance(module, nn.Module):
            continue

        def make(original, _name=name):

            def ranged(*args, **kwargs):
                with record_function(f'module::{_name}'):
                    return original(*args, **kwargs)

            return ranged

        restores.append(_patch_forward(module, make))
    try:
        yield
    finally:
        for restore in reversed(restores):
            restore()


# ------------------------------------------------------------------------ inputs
def make_inputs(batch: int, size: Tuple[int, int], device: str = 'cpu',
                seed: int = 0) -> Tuple[torch.Tensor, List[dict]]:
    """Normalised random images (B, 3, H, W) and their image metas."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, *size, generator=gen).to(device)
    metas = [dict(img_shape=tuple(size), ori_shape=tuple(size), pad_shape=tuple(size))
             for _ in range(batch)]
    return inputs, metas


def make_train_batch(batch: int, size: Tuple[int, int], num_classes: int, device: str = 'cpu',
                     seed: int = 0) -> Tuple[torch.Tensor, list]:
    """Random images with masks (``gt_sem_seg``) and the image-level labels the masks imply
    (``gt_image_labels``): weakly supervised models read the labels, mmseg models the masks."""

    gen = torch.Generator().manual_seed(seed + 1)
    inputs, metas = make_inputs(batch, size, device, seed)
    h, w = size
    samples = []
    for meta in metas:
        mask = torch.zeros(h, w, dtype=torch.long)
        for _ in range(2):  # two rectangles of random foreground classes
            cls = int(torch.randint(1, max(2, num_classes), (1, ), generator=gen))
            y0, x0 = (int(v) for v in torch.randint(0, max(1, h // 2), (2, ), generator=gen))
            mask[y0:y0 + h // 2, x0:x0 + w // 2] = min(cls, num_classes - 1)
        labels = torch.zeros(num_classes)
        labels[mask.unique()] = 1
        labels[0] = 1
        sample = SegDataSample(metainfo=meta)
        sample.gt_sem_seg = PixelData(data=mask[None].to(device))
        set_image_labels(sample, labels)
        sample.gt_image_labels = sample.gt_image_labels.to(device)
        samples.append(sample)
    return inputs, samples


def num_classes_of(model: nn.Module) -> int:
    return int(model.decode_head.num_classes)


# ------------------------------------------------------------------------- steps
def make_infer_fn(model: nn.Module, inputs: torch.Tensor, metas: List[dict]) -> Callable[[], None]:
    """One inference of the batch: ``model.encode_decode`` under ``no_grad``."""

    def infer() -> None:
        with torch.no_grad():
            model.encode_decode(inputs, metas)

    return infer


def build_optim_wrapper(model: nn.Module, cfg, device: str = 'cpu'):
    """The config's optimiser wrapper (AdamW if the config has none); AMP only on CUDA."""
    optim_cfg = cfg.get('optim_wrapper', None)
    if optim_cfg is None:
        optim_cfg = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4))
    optim_cfg = dict(optim_cfg)
    if optim_cfg.get('type') == 'AmpOptimWrapper' and not str(device).startswith('cuda'):
        optim_cfg['type'] = 'OptimWrapper'
        optim_cfg.pop('loss_scale', None)
    with _quiet_analysis():  # one INFO line per parameter group otherwise
        return build_mmengine_optim_wrapper(model, optim_cfg)


def make_train_fn(model: nn.Module, optim_wrapper, inputs: torch.Tensor,
                  samples: list) -> Callable[[], None]:
    """One training step: losses, backward, optimiser step (``OptimWrapper.update_params``).

    The model must be in train mode when it is called.
    """

    def step() -> None:
        losses = model(inputs, samples, mode='loss')
        loss, _ = model.parse_losses(losses)
        if not torch.isfinite(loss):
            raise FloatingPointError(f'benchmark: non-finite training loss {float(loss)} of '
                                     f'{type(model).__name__}.')
        optim_wrapper.update_params(loss)

    return step


def interleaved_times(fns: Dict[str, Callable[[], None]], warmup: int, repeats: int,
                      device: str = 'cpu', log: Optional[Callable[[str], None]] = None
                      ) -> Dict[str, List[float]]:
    """Seconds of every call of every function, taken round-robin.

    Each round calls every function once (the order rotates from round to round); the first
    ``warmup`` rounds are not recorded.

    Returns:
        dict[str, list[float]]: ``repeats`` timings per name.
    """
    names = list(fns)
    times: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            _sync(device)
            start = time.perf_counter()
            fns[name]()
            _sync(device)
            seconds = time.perf_counter() - start
            if r >= warmup:
                times[name].append(seconds)
        if log is not None:
            tag = 'warm-up' if r < warmup else f'repeat {r - warmup + 1}/{repeats}'
            log(f'  round {r + 1}/{warmup + repeats} ({tag}) done')
    return times


# ----------------------------------------------------------------------- profile
def profile_inference(model: nn.Module, infer: Callable[[], None], iters: int = 2,
                      device: str = 'cpu', row_limit: int = 25) -> Tuple[str, Dict[str, float]]:
    """torch.profiler over ``iters`` inferences, with a ``module::<component>`` range per component.

    Returns:
        tuple[str, dict]: The report text (top ops by total and by self time) and the mean
        milliseconds per inference of every component that ran (under the profiler).
    """
    activities = [ProfilerActivity.CPU]
    cuda = str(device).startswith('cuda')
    if cuda:
        activities.append(ProfilerActivity.CUDA)
    with component_ranges(model):
        infer()  # warm
        _sync(device)
        with profile(activities=activities) as prof:
            for _ in range(iters):
                infer()
            _sync(device)
    averages = prof.key_averages()
    breakdown = {}
    for event in averages:
        if event.key.startswith('module::'):  # host-side time of the range (CUDA: launches)
            breakdown[event.key[len('module::'):]] = round(event.cpu_time_total / 1e3 / iters, 2)
    by_total = 'device_time_total' if cuda else 'cpu_time_total'
    by_self = 'self_device_time_total' if cuda else 'self_cpu_time_total'
    text = (f'# top ops by total time ({iters} inferences)\n'
            f'{averages.table(sort_by=by_total, row_limit=row_limit)}\n'
            f'# top ops by self time\n{averages.table(sort_by=by_self, row_limit=row_limit)}\n')
    return text, breakdown


# ---------------------------------------------------------------- pseudo masks
def pseudo_mask_settings(cam_cfg: Optional[dict]) -> List[dict]:
    """The four CAM -> pseudo-mask settings: single scale or the config's multi-scale + flip, each
    with and without the pixel-adaptive refinement."""
    protocol = CAMProtocol.from_cfg(cam_cfg)
    refine = protocol.refine
    if not (refine == 'par' or (isinstance(refine, dict) and refine.get('type', 'par') == 'par')):
        refine = 'par'  # the torch refiner (dense CRF needs an optional package)
    settings = []
    for multi in (False, True):
        for ref in (None, refine):
            name = ('multi-scale + flip' if multi else 'single scale') + (' + PAR' if ref else '')
            settings.append(dict(setting=name, scales=protocol.scales if multi else (1.0, ),
                                 flip=protocol.flip if multi else False, refine=ref))
    return settings


def make_pseudo_mask_fn(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, setting: dict,
                        cam_cfg: Optional[dict] = None) -> Callable[[], None]:
    """CAMs (:func:`multi_scale_flip_cams`) -> refinement -> pseudo masks of one batch, no files."""
    protocol = dataclasses.replace(CAMProtocol.from_cfg(cam_cfg), scales=setting['scales'],
                                   flip=setting['flip'], refine=setting['refine'])
    refiner = build_refiner(protocol.refine)
    if refiner is not None:
        refiner = refiner.to(inputs.device)
    background_index = getattr(model, 'background_index', 0)

    def run() -> None:
        with torch.no_grad():
            cams = multi_scale_flip_cams(model, inputs, labels, scales=protocol.scales,
                                         flip=protocol.flip, size_divisor=protocol.size_divisor,
                                         normalise=protocol.normalise)
            if refiner is not None:
                cams = refiner(cams, inputs)
            cams_to_pseudo_mask(cams, labels, bg_mode=protocol.bg_mode,
                                bg_threshold=protocol.bg_threshold, ignore_band=protocol.ignore_band,
                                ignore_margin=protocol.ignore_margin,
                                background_index=background_index, bg_power=protocol.bg_power)

    return run


def ratio(value: Optional[float], base: Optional[float]) -> Optional[float]:
    """``value / base`` (None when either is missing or not finite, or the base is 0)."""
    if value is None or base is None or base == 0 or not math.isfinite(base) or \
            not math.isfinite(value):
        return None
    return value / base
