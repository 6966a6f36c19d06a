"""Pseudo-mask generation stage by stage, against its floor (``tools/benchmark.py --pseudo-masks``).

Nothing can make pseudo masks faster than the forward passes their protocol must make: one pass of
the model per scale, on the image and its flip when the protocol flips (the image tower alone, for a
training-free CLIP). For every model (a config with random weights, on generated images of one size)
one run measures, round-robin over ``repeats`` rounds (medians reported):

- **floor**: only those forward passes, on the same preprocessed inputs (``model._forward`` of a
  trained segmentor, ``model.backbone`` of a training-free one), in seconds per image;
- **one process**: :func:`~mmseg_clip_wsss.cam.generate_pseudo_masks` with ``workers=0`` from image
  files to PNGs, with a :class:`~mmseg_clip_wsss.cam.stage_timer.StageTimer`: seconds per image of
  ``decode`` (loading + decoding), ``preprocess``, ``forward`` (the model's passes), ``grad-cam`` and
  ``affinity`` (training-free CLIP-ES), ``cam`` (resizing and merging the CAMs), ``hand over`` (to
  the pool), ``refine``, ``crf``, ``mask`` (original size, labels, confidence) and ``write`` (PNG
  encoding and atomic writes);
- **with workers**: the same run with ``workers`` post-processing processes (the CAM merge of a CPU
  segmentor, the CPU refinement, dense CRF and the PNGs, beside the model), less the one-time start
  of the workers (reported apart; the final wait for the jobs still queued after the last batch is
  counted, and reported too), with the stages of the model's process and of the workers.

Every cost is also a ratio to the floor. :func:`crf_worker_scaling` times the dense-CRF post-processing
alone with 1 and with more workers and checks that they write the same PNGs.
"""
import contextlib
import glob
import json
import os
import os.path as osp
import shutil
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import Compose, pseudo_collate
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from mmseg_clip_wsss.cam import CAMProtocol, build_refiner, generate_pseudo_masks, scaled_size
from mmseg_clip_wsss.cam.postprocess import MaskFinisher, MaskJob
from mmseg_clip_wsss.cam.inference import autocast
from mmseg_clip_wsss.cam.stage_timer import StageTimer
from mmseg_clip_wsss.cam.worker_pool import MaskWriterPool
from mmseg_clip_wsss.models.segmentors import training_free_clip_es
from .report import format_pseudo_mask_markdown
from .runner import machine_info, timed_logger
from .specs import ModelSpec, build_benchmark_model, fill_memory_banks, load_benchmark_config

__all__ = ['PseudoMaskSpec', 'DEFAULT_PSEUDO_MASK_SPECS', 'STAGES', 'write_test_images',
           'image_loader', 'floor_forward', 'floor_seconds', 'forward_probes', 'measure_pseudo_masks',
           'crf_worker_scaling', 'run_pseudo_mask_benchmark']

#: Stages of a one-process run, in pipeline order.
STAGES = ('decode', 'preprocess', 'forward', 'grad-cam', 'affinity', 'cam', 'hand over', 'refine',
          'crf', 'mask', 'write')


@dataclass
class PseudoMaskSpec:
    """A model whose pseudo-mask protocol (its config's ``cam_cfg``) is measured.

    Args:
        name (str): Short name for the tables.
        config (str): Config file (random weights, see :func:`load_benchmark_config`).
        size (tuple[int, int]): (H, W) of the generated images.
        description (str): What it is, for the tables.
        images (int, optional): Images to measure on; None takes the run's number.
        cfg_options (dict): Overrides merged into the config.
        reference (str, optional): Name of another model of the same run, size and image count
            (the same generated images) whose masks this one's are compared with
            (``reference_mask_agreement``: pixels with its label). Defaults to None.
    """
    name: str
    config: str
    size: Tuple[int, int]
    description: str = ''
    images: Optional[int] = None
    cfg_options: Dict = field(default_factory=dict)
    reference: Optional[str] = None


#: The stage-1 configs (their own protocols) and the training-free CLIP-ES configs.
DEFAULT_PSEUDO_MASK_SPECS = (
    PseudoMaskSpec('demo_swin', 'configs/demo/clip_wsss_swin_demo.py', (128, 128),
                   'demo stage 1 (conv-stem Swin, RSC-A, text head), its protocol', 48),
    PseudoMaskSpec('demo_clip-rn', 'configs/demo/clip_wsss_clip-rn_demo.py', (128, 128),
                   'demo stage 1 on the demo CLIP image tower, its protocol', 48),
    PseudoMaskSpec('voc_swin', 'configs/clip_wsss_swin_voc.py', (256, 256),
                   'VOC stage 1 (Swin-T, RSC-A, text head), its protocol, small input', 4),
    PseudoMaskSpec('clip-es_vit-b16', 'configs/clip_es/clip-es_vit-b16_voc.py', (448, 448),
                   'training-free CLIP-ES, ViT-B/16, its protocol (dense CRF)', 4),
    PseudoMaskSpec('clip-es_demo', 'configs/clip_es/clip-es_demo-clip_demo.py', (128, 128),
                   'training-free CLIP-ES on the demo CLIP (ModifiedResNet), its protocol', 48),
    PseudoMaskSpec('clip-es_vit-b16_no-crf', 'configs/clip_es/clip-es_vit-b16_voc.py', (448, 448),
                   'training-free CLIP-ES, ViT-B/16: CAMs, affinity and masks, no CRF', 4,
                   {'cam_cfg.refine': None}),
    PseudoMaskSpec('clip-es_vit-b16_no-crf_bf16', 'configs/clip_es/clip-es_vit-b16_voc.py', (448, 448),
                   'the same, its Grad-CAM in bfloat16 (model.grad_cam_dtype)', 4,
                   {'cam_cfg.refine': None, 'model.grad_cam_dtype': 'bfloat16'}, 'clip-es_vit-b16_no-crf'),
)


def _blob_image(size: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8: a few flat-coloured discs on a flat background, plus noise."""
    h, w = size
    img = np.empty((h, w, 3), np.float32)
    img[:] = rng.random(3) * 255
    yy, xx = np.mgrid[:h, :w]
    for _ in range(4):
        cy, cx, r = rng.random() * h, rng.random() * w, (0.15 + 0.2 * rng.random()) * min(h, w)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2] = rng.random(3) * 255
    img += rng.normal(0, 12, img.shape)
    return img.clip(0, 255).astype(np.uint8)


def write_test_images(directory: str, num: int, size: Tuple[int, int], seed: int = 0) -> List[str]:
    """Write ``num`` generated JPEG images of ``size`` into ``directory``; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(num):
        path = osp.join(directory, f'img{i:04d}.jpg')
        Image.fromarray(_blob_image(size, rng)).save(path, quality=95)
        paths.append(path)
    return paths


class _LabelledImages(Dataset):
    """Image files with fixed image-level labels, through ``LoadImageFromFile`` + ``PackWSSSInputs``."""

    def __init__(self, paths: Sequence[str], labels: np.ndarray):
        self.paths, self.labels = list(paths), labels
        self.pipeline = Compose([dict(type='LoadImageFromFile'), dict(type='PackWSSSInputs')])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        return self.pipeline(dict(img_path=self.paths[i], gt_image_labels=self.labels[i].tolist()))


def image_loader(paths: Sequence[str], num_classes: int, background_index: Optional[int],
                 batch_size: int = 1, num_workers: int = 0, seed: int = 0) -> DataLoader:
    """A loader of ``paths`` whose images hold the background and two random other classes."""
    rng = np.random.default_rng(seed)
    foreground = [k for k in range(num_classes) if k != background_index]
    labels = np.zeros((len(paths), num_classes), np.float32)
    for row in labels:
        row[rng.choice(foreground, size=min(2, len(foreground)), replace=False)] = 1
        if background_index is not None:
            row[background_index] = 1
    return DataLoader(_LabelledImages(paths, labels), batch_size=batch_size, num_workers=num_workers,
                      collate_fn=pseudo_collate, shuffle=False)


# ------------------------------------------------------------------------ the floor
def floor_forward(model) -> Callable[[torch.Tensor], object]:
    """The forward pass a protocol must make once per scale (and flip): the image tower of a
    training-free model to its image embedding (``encode_image``: a ModifiedResNet's attention
    pooling included, which its Grad-CAM explains), the segmentor's ``_forward`` (backbone, neck,
    head) otherwise."""
    if getattr(model, 'training_free', False):
        return model.backbone.encode_image
    return model._forward


def _floor_inputs(inputs: torch.Tensor, protocol: CAMProtocol) -> List[torch.Tensor]:
    """The network inputs of every scale of ``protocol`` (flips in the same batch), as
    :func:`~mmseg_clip_wsss.cam.multi_scale_flip_cams` makes them."""
    h, w = inputs.shape[-2:]
    out = []
    for scale in protocol.scales:
        size = scaled_size((h, w), float(scale), protocol.size_divisor)
        x = inputs if size == (h, w) else F.interpolate(inputs, size=size, mode='bilinear',
                                                        align_corners=False)
        out.append(torch.cat([x, x.flip(-1)]) if protocol.flip else x)
    return out


def floor_seconds(model, batches: Sequence[torch.Tensor], protocol: CAMProtocol,
                  sync: Callable[[], None] = lambda: None) -> float:
    """Seconds of the forward passes of ``protocol`` over preprocessed ``batches`` (B, 3, H, W)
    (under the protocol's autocast)."""
    forward = floor_forward(model)
    inputs = [x for batch in batches for x in _floor_inputs(batch, protocol)]
    with torch.no_grad(), autocast(inputs[0].device, protocol.amp):
        sync()
        start = time.perf_counter()
        for x in inputs:
            forward(x)
        sync()
    return time.perf_counter() - start


def _preprocessed(model, loader: DataLoader) -> List[torch.Tensor]:
    """Every batch of ``loader`` through the model's data preprocessor (inputs only)."""
    with torch.no_grad():
        return [model.data_preprocessor(batch, False)['inputs'] for batch in loader]


# ------------------------------------------------------------------------- the runs
def forward_probes(model) -> List[Tuple[object, str, str]]:
    """``(owner, attribute, stage)`` of the calls timed inside the CAM stage: the model's forward
    passes; for training-free CLIP-ES also its Grad-CAM (with ``grad_cam='closed_form'`` the last
    block's forward pass included) and affinity steps (looked up in the module
    of :class:`~mmseg_clip_wsss.models.segmentors.TrainingFreeCLIPES`; a name it no longer has is
    left out and its time stays in ``forward``)."""
    if not getattr(model, 'training_free', False):
        return [(model, '_forward', 'forward')]
    return [(model, 'compute_cams', 'forward'),
            (training_free_clip_es, 'softmax_grad_cam', 'grad-cam'),
            # the closed form runs the last block's forward pass itself: its time is in grad-cam
            (training_free_clip_es, 'vit_last_block_grad_cam', 'grad-cam'),
            (training_free_clip_es, 'attention_pool_grad_cam', 'grad-cam'),
            (training_free_clip_es, 'sinkhorn_affinity', 'affinity'),
            (training_free_clip_es, 'class_aware_affinity_refine', 'affinity')]


def _generate(model, loader: DataLoader, out_dir: str, protocol: CAMProtocol, workers: int,
              timer: Optional[StageTimer]) -> float:
    """Seconds of one :func:`generate_pseudo_masks` run from the image files to the PNGs."""
    if osp.isdir(out_dir):
        shutil.rmtree(out_dir)
    start = time.perf_counter()
    generate_pseudo_masks(model, loader, out_dir, protocol, skip_existing=False, show_progress=False,
                          background_index=getattr(model, 'background_index', 0), workers=workers,
                          timer=timer)
    return time.perf_counter() - start


def _one_process_run(model, loader, out_dir, protocol, sync_cuda: bool) -> Tuple[float, Dict]:
    """(seconds, per-stage seconds) of a ``workers=0`` run with the forward probes."""
    timer = StageTimer(sync_cuda=sync_cuda)
    with contextlib.ExitStack() as stack:
        for owner, attribute, stage in forward_probes(model):
            stack.enter_context(timer.patch(owner, attribute, stage))
        seconds = _generate(model, loader, out_dir, protocol, 0, timer)
    return seconds, dict(timer.seconds)


def _same_pngs(dir_a: str, dir_b: str) -> bool:
    """Whether two output folders hold the same PNG files, byte for byte."""
    names = sorted(osp.relpath(p, dir_a) for p in glob.glob(osp.join(dir_a, '**', '*.png'),
                                                             recursive=True))
    other = sorted(osp.relpath(p, dir_b) for p in glob.glob(osp.join(dir_b, '**', '*.png'),
                                                             recursive=True))
    if not names or names != other:
        return False
    for name in names:
        with open(osp.join(dir_a, name), 'rb') as fa, open(osp.join(dir_b, name), 'rb') as fb:
            if fa.read() != fb.read():
                return False
    return True


# ------------------------------------------------------------------------ per model
@dataclass
class _Setup:
    """A built model with its protocol, loader and preprocessed inputs."""
    spec: PseudoMaskSpec
    model: object
    protocol: CAMProtocol
    loader: DataLoader
    batches: List[torch.Tensor]
    images: int
    work_dir: str
    times: Dict[str, List[float]] = field(default_factory=lambda: dict(floor=[], one_process=[],
                                                                       workers=[]))
    stages: List[Dict[str, float]] = field(default_factory=list)
    worker_stages: List[Dict[str, float]] = field(default_factory=list)


def _num_classes(model) -> int:
    num = getattr(model, 'num_classes', None)
    return int(num if num is not None else model.decode_head.num_classes)


def _set_up(spec: PseudoMaskSpec, num_images: int, batch_size: int, loader_workers: int, device: str,
            work_dir: str, seed: int, amp: Optional[str] = None) -> _Setup:
    """Build the model (random weights), write its images, build its loader."""
    torch.manual_seed(seed)
    cfg = load_benchmark_config(ModelSpec(spec.name, spec.config, dict(spec.cfg_options)))
    model = build_benchmark_model(cfg, device)
    fill_memory_banks(model, seed)
    protocol = CAMProtocol.from_cfg(cfg.get('cam_cfg'), amp=amp)
    directory = osp.join(work_dir, spec.name)
    num_images = spec.images or num_images
    paths = write_test_images(osp.join(directory, 'images'), num_images, tuple(spec.size), seed)
    loader = image_loader(paths, _num_classes(model), getattr(model, 'background_index', 0),
                          batch_size, loader_workers, seed)
    return _Setup(spec, model, protocol, loader, _preprocessed(model, loader), num_images, directory)


def _one_round(setup: _Setup, workers: int, device: str) -> None:
    """One round of one model: the floor, a one-process run and a run with workers."""
    cuda = str(device).startswith('cuda')
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    setup.times['floor'].append(floor_seconds(setup.model, setup.batches, setup.protocol, sync))
    seconds, stages = _one_process_run(setup.model, setup.loader, osp.join(setup.work_dir, 'one'),
                                       setup.protocol, cuda)
    setup.times['one_process'].append(seconds)
    setup.stages.append(stages)
    timer = StageTimer(sync_cuda=cuda)
    seconds = _generate(setup.model, setup.loader, osp.join(setup.work_dir, 'workers'), setup.protocol,
                        workers, timer)
    start = timer.seconds.get('start workers', 0.0)
    setup.times['workers'].append(seconds - start)  # once per run, not per image: reported apart
    setup.worker_stages.append(dict(timer.seconds))


def _entry(setup: _Setup, workers: int) -> Dict:
    """The figures of one model: medians per image, ratios to the floor, stages of the median run."""
    n = setup.images
    per_img = {k: statistics.median(v) / n for k, v in setup.times.items()}
    totals = setup.times['one_process']
    median_run = sorted(range(len(totals)), key=totals.__getitem__)[(len(totals) - 1) // 2]
    stages = {k: v / n for k, v in setup.stages[median_run].items()}
    protocol = setup.protocol
    refine = protocol.refine.get('type') if isinstance(protocol.refine, dict) else protocol.refine
    return dict(
        name=setup.spec.name, config=setup.spec.config, description=setup.spec.description,
        size=list(setup.spec.size), scales=list(protocol.scales), flip=protocol.flip,
        refine=refine if isinstance(refine, (str, type(None))) else type(refine).__name__,
        images=n, workers=workers, amp=protocol.amp, floor_s_per_img=round(per_img['floor'], 7),
        one_process_s_per_img=round(per_img['one_process'], 7),
        workers_s_per_img=round(per_img['workers'], 7),
        one_process_ratio=round(per_img['one_process'] / per_img['floor'], 3),
        workers_ratio=round(per_img['workers'] / per_img['floor'], 3),
        stages_s_per_img={k: round(stages[k], 7) for k in STAGES if k in stages},
        other_s_per_img=round(totals[median_run] / n - sum(stages.values()), 7),
        staged_run_s_per_img=round(totals[median_run] / n, 7),
        workers_run_stages_s_per_img=_workers_run_stages(setup),
        same_pngs=_same_pngs(osp.join(setup.work_dir, 'one'), osp.join(setup.work_dir, 'workers')),
        times_s={k: [round(t, 4) for t in v] for k, v in setup.times.items()})


def _workers_run_stages(setup: _Setup) -> Dict[str, float]:
    """Seconds per image of the stages of the median run with workers: this process's (``start
    workers`` is once per run, not per image) and the workers' (``worker <stage>``, summed over
    the workers)."""
    totals = setup.times['workers']
    median_run = sorted(range(len(totals)), key=totals.__getitem__)[(len(totals) - 1) // 2]
    stages = setup.worker_stages[median_run]
    once = ('start workers', 'finish queued jobs')
    out = {k: round(v / setup.images, 7) for k, v in stages.items() if k not in once}
    out.update({f'{k} (once)': round(stages.get(k, 0.0), 4) for k in once})
    return out


def measure_pseudo_masks(specs: Sequence[PseudoMaskSpec], work_dir: str, num_images: int = 8,
                         workers: int = 1, loader_workers: int = 0, batch_size: int = 1,
                         repeats: int = 3, device: str = 'cpu', seed: int = 0,
                         amp: Optional[str] = None,
                         say: Callable[[str], None] = print) -> List[Dict]:
    """The floor, the one-process run (by stage) and the run with workers of every model,
    round-robin over ``repeats`` rounds after one untimed warm-up round. With ``amp``, every run
    and the floor use it, and one more fp32 one-process run gives ``fp32_mask_agreement`` (pixels
    with the label of the fp32 masks) and ``fp32_one_process_ratio`` (its time / the amp floor). A
    model with a ``reference`` in the run gets ``reference_mask_agreement``.

    Returns:
        list[dict]: One entry per model (see the module docstring; ``*_ratio`` = cost / floor).
    """
    setups = []
    for spec in specs:
        say(f'pseudo masks: building {spec.name} ({spec.config}) at {spec.size[0]}x{spec.size[1]}')
        setups.append(_set_up(spec, num_images, batch_size, loader_workers, device, work_dir, seed,
                              amp))
    for r in range(repeats + 1):
        shift = r % len(setups)
        for setup in setups[shift:] + setups[:shift]:
            _one_round(setup, workers, device)
            if r == 0:  # warm-up: caches filled, nothing kept
                setup.times = {k: [] for k in setup.times}
                setup.stages.clear()
                setup.worker_stages.clear()
        say(f'  round {r + 1}/{repeats + 1} ({"warm-up" if r == 0 else "timed"}) done')
    entries = [_entry(setup, workers) for setup in setups]
    one_dirs = {setup.spec.name: osp.join(setup.work_dir, 'one') for setup in setups}
    for setup, entry in zip(setups, entries):
        if setup.spec.reference in one_dirs:
            entry['reference'] = setup.spec.reference
            entry['reference_mask_agreement'] = _mask_agreement(one_dirs[setup.spec.name],
                                                                one_dirs[setup.spec.reference])
    if amp is not None:
        for setup, entry in zip(setups, entries):
            fp32 = osp.join(setup.work_dir, 'fp32')
            seconds = _generate(setup.model, setup.loader, fp32, replace(setup.protocol, amp=None), 0,
                                None)  # one run, after the timed rounds
            entry['fp32_one_process_ratio'] = round(seconds / setup.images / entry['floor_s_per_img'], 3)
            entry['fp32_mask_agreement'] = _mask_agreement(osp.join(setup.work_dir, 'one'), fp32)
    return entries


def _mask_agreement(dir_a: str, dir_b: str) -> float:
    """Fraction of the pixels of the masks (``*.png`` directly in the folders) with the same label."""
    same = total = 0
    for path in sorted(glob.glob(osp.join(dir_a, '*.png'))):
        a = np.asarray(Image.open(path))
        b = np.asarray(Image.open(osp.join(dir_b, osp.basename(path))))
        same += int((a == b).sum())
        total += a.size
    return round(same / max(total, 1), 6)


# --------------------------------------------------------------- dense CRF in workers
def _crf_jobs(out_dir: str, num: int, size: Tuple[int, int], num_classes: int,
              seed: int) -> List[MaskJob]:
    """Dense-CRF jobs of generated images: background and two classes, smooth random scores."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    jobs = []
    for i in range(num):
        channels = (0, *sorted(rng.choice(np.arange(1, num_classes), 2, replace=False).tolist()))
        coarse = torch.rand(1, 3, size[0] // 16, size[1] // 16, generator=gen)
        scores = F.interpolate(coarse, size=size, mode='bilinear', align_corners=False)[0]
        labels = np.zeros(num_classes, np.float32)
        labels[list(channels)] = 1
        jobs.append(MaskJob(osp.join(out_dir, f'img{i:04d}.png'), scores.numpy(), channels, labels,
                            tuple(size), image=_blob_image(size, rng)))
    return jobs


def _finish_all(finisher: MaskFinisher, jobs: Sequence[MaskJob], out_dir: str, workers: int) -> float:
    """Seconds to finish ``jobs`` into ``out_dir`` with ``workers`` (the pool's start excluded)."""
    if osp.isdir(out_dir):
        shutil.rmtree(out_dir)
    with MaskWriterPool(finisher, workers) as pool:
        start = time.perf_counter()
        for job in jobs:
            pool.submit(replace(job, mask_path=osp.join(out_dir, osp.basename(job.mask_path))))
        pool.close()
        return time.perf_counter() - start


def crf_worker_scaling(config: str, work_dir: str, size: Tuple[int, int] = (384, 512),
                       num_images: int = 16, workers: Sequence[int] = (1, 2), repeats: int = 3,
                       seed: int = 0, say: Callable[[str], None] = print) -> Dict:
    """Images per second of the dense-CRF post-processing (CRF, labels, confidence, PNGs) with each
    number of ``workers`` (the CRF settings of ``config``'s ``cam_cfg.refine``), round-robin; and
    whether every count wrote the same PNGs as the first.

    Returns:
        dict: ``img_per_s`` and ``times_s`` by worker count, ``speedup`` (last count over the
        first), ``same_pngs``, ``size``, ``images``, ``refine``.
    """
    cfg = load_benchmark_config(ModelSpec('crf', config))
    refine = dict(cfg.cam_cfg.refine)
    protocol = CAMProtocol.from_cfg(cfg.cam_cfg)
    finisher = MaskFinisher(protocol, 0, refiner=build_refiner(refine), refine_cfg=refine)
    jobs = _crf_jobs(osp.join(work_dir, 'crf'), num_images, tuple(size), 21, seed)
    times = {w: [] for w in workers}
    for r in range(repeats + 1):
        for w in list(workers)[r % len(workers):] + list(workers)[:r % len(workers)]:
            seconds = _finish_all(finisher, jobs, osp.join(work_dir, f'crf_workers{w}'), w)
            if r:
                times[w].append(seconds)
        say(f'  dense CRF round {r + 1}/{repeats + 1} ({"warm-up" if r == 0 else "timed"}) done')
    ips = {w: num_images / statistics.median(t) for w, t in times.items()}
    first, last = workers[0], workers[-1]
    return dict(size=list(size), images=num_images, refine=refine,
                img_per_s={str(w): round(v, 3) for w, v in ips.items()},
                speedup=round(ips[last] / ips[first], 3),
                same_pngs=all(_same_pngs(osp.join(work_dir, f'crf_workers{first}'),
                                         osp.join(work_dir, f'crf_workers{w}')) for w in workers),
                times_s={str(w): [round(t, 4) for t in v] for w, v in times.items()})


# ------------------------------------------------------------------------------ run
def run_pseudo_mask_benchmark(specs: Sequence[PseudoMaskSpec] = DEFAULT_PSEUDO_MASK_SPECS,
                              out_dir: str = 'work_dirs/benchmark', num_images: int = 8,
                              workers: int = 1, loader_workers: int = 0, batch_size: int = 1,
                              repeats: int = 3, device: str = 'cpu', seed: int = 0,
                              crf_config: Optional[str] = DEFAULT_PSEUDO_MASK_SPECS[3].config,
                              crf_size: Tuple[int, int] = (384, 512), crf_images: int = 16,
                              crf_workers: Sequence[int] = (1, 2), amp: Optional[str] = None,
                              command: Optional[str] = None,
                              log: Callable[[str], None] = print) -> Dict:
    """Measure every model of ``specs`` (:func:`measure_pseudo_masks`) and the dense-CRF worker
    scaling (:func:`crf_worker_scaling`; skipped when ``crf_config`` is None or ``crf_images`` 0);
    write ``pseudo_masks.json`` and ``pseudo_masks.md`` into ``out_dir``.

    Returns:
        dict: What ``pseudo_masks.json`` holds: ``models``, ``crf_workers``, the settings, the machine
        and its load average (1, 5, 15 min) before and after the run.
    """
    start = time.time()
    say = timed_logger(log, start)
    load_before = [round(v, 2) for v in os.getloadavg()]
    work_dir = osp.join(out_dir, 'pseudo_mask_runs')
    models = measure_pseudo_masks(specs, work_dir, num_images, workers, loader_workers, batch_size,
                                  repeats, device, seed, amp, say) if specs else []
    crf = None
    if crf_config and crf_images:
        say(f'dense CRF with {", ".join(map(str, crf_workers))} worker(s)')
        crf = crf_worker_scaling(crf_config, work_dir, crf_size, crf_images, crf_workers, repeats,
                                 seed, say)
    result = dict(device=device, threads=torch.get_num_threads(), workers=workers, amp=amp,
                  loader_workers=loader_workers, batch_size=batch_size, images=num_images,
                  repeats=repeats, machine=machine_info(device), load_average_before=load_before,
                  load_average_after=[round(v, 2) for v in os.getloadavg()], command=command,
                  models=models, crf_workers=crf, seconds=round(time.time() - start, 1))
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'pseudo_masks.json'), 'w') as f:
        json.dump(result, f, indent=2)
    with open(osp.join(out_dir, 'pseudo_masks.md'), 'w') as f:
        f.write(format_pseudo_mask_markdown(result))
    say(f'wrote {osp.join(out_dir, "pseudo_masks.json")} and pseudo_masks.md')
    return result
