"""Peak memory of one model, measured in a fresh process of its own.

A process's RSS high-water mark (``ru_maxrss``) only ever grows, so in a process that holds several
models it cannot be attributed to one of them. :func:`measure_peak_memory` therefore starts
``python -m mmseg_clip_wsss.cli.benchmark_memory`` per model, which:

1. imports the libraries and reads its resident set size (``rss_import_mb``);
2. builds the model (``rss_model_mb``: weights and buffers on top);
3. runs 2 inferences (``encode_decode``, ``no_grad``) -> high-water mark ``infer_hwm_mb``;
4. runs 2 training steps (batch ``train_batch``, the config's optimiser) -> ``train_hwm_mb``.

``peak_mem_mb`` = ``train_hwm_mb - rss_import_mb`` (what the model, its activations, gradients and
optimiser state add to an idle process); ``infer_peak_mem_mb`` likewise for inference. On CUDA the
numbers are ``torch.cuda.max_memory_allocated`` of each phase instead (weights included).
"""
import json
import os
import resource
import subprocess
import sys
from typing import Dict, Optional

import torch

import mmseg_clip_wsss  # noqa: F401  registers the models the specs name
from .measure import (build_optim_wrapper, make_infer_fn, make_inputs, make_train_batch, make_train_fn,
                      num_classes_of)
from .specs import ModelSpec, build_benchmark_model, fill_memory_banks, load_benchmark_config

MARKER = 'BENCHMARK_MEMORY_JSON:'

__all__ = ['measure_peak_memory', 'measure', 'current_rss_mb', 'hwm_rss_mb', 'MARKER']


def current_rss_mb() -> float:
    """Resident set size of this process now (MB), from /proc (the high-water mark elsewhere)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return hwm_rss_mb()


def hwm_rss_mb() -> float:
    """High-water mark of this process's resident set size (MB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == 'darwin' else peak / 1024


def measure_peak_memory(spec: dict, input_size, batch_size: int = 1, train_batch_size: int = 2,
                        device: str = 'cpu', threads: Optional[int] = None, seed: int = 0,
                        num_classes: Optional[int] = None, timeout: float = 900) -> Dict:
    """Run the measurement of one model (a :class:`ModelSpec` as dict) in a subprocess.

    Returns:
        dict: ``peak_mem_mb``, ``infer_peak_mem_mb`` and the raw readings, or ``{'error': ...}``.
    """
    cmd = [sys.executable, '-m', 'mmseg_clip_wsss.cli.benchmark_memory', '--spec', json.dumps(spec),
           '--input-size', *[str(s) for s in input_size], '--batch-size', str(batch_size),
           '--train-batch-size', str(train_batch_size), '--device', device, '--seed', str(seed)]
    if threads:
        cmd += ['--threads', str(threads)]
    if num_classes is not None:
        cmd += ['--num-classes', str(num_classes)]
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(error=f'memory measurement timed out after {timeout} s')
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return dict(error=f'memory measurement failed (exit {proc.returncode}): ' + ' | '.join(tail))


def measure(args) -> Dict:
    """Peak memory of one model in this process: the steps of the module docstring with the options
    of ``python -m mmseg_clip_wsss.cli.benchmark_memory``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith('cuda')
    size = tuple(args.input_size) if len(args.input_size) == 2 else (args.input_size[0], ) * 2
    spec = ModelSpec(**json.loads(args.spec))
    rss_import = current_rss_mb()
    cfg = load_benchmark_config(spec, args.num_classes)
    model = build_benchmark_model(cfg, args.device)
    fill_memory_banks(model, args.seed)
    rss_model = current_rss_mb()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    inputs, metas = make_inputs(args.batch_size, size, args.device, args.seed)
    infer = make_infer_fn(model, inputs, metas)
    for _ in range(2):
        infer()
    infer_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else hwm_rss_mb()
    del inputs, metas, infer

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg, args.device)
    train_inputs, samples = make_train_batch(args.train_batch_size, size, num_classes_of(model),
                                             args.device, args.seed)
    step = make_train_fn(model, optim_wrapper, train_inputs, samples)
    for _ in range(2):
        step()
    train_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else hwm_rss_mb()
    if cuda:
        return dict(method='torch.cuda.max_memory_allocated per phase (fresh process)',
                    infer_peak_mem_mb=infer_peak, peak_mem_mb=train_peak)
    return dict(method='RSS high-water mark minus RSS after imports (fresh process per model)',
                rss_import_mb=rss_import, rss_model_mb=rss_model, infer_hwm_mb=infer_peak,
                train_hwm_mb=train_peak, infer_peak_mem_mb=infer_peak - rss_import,
                peak_mem_mb=train_peak - rss_import)
