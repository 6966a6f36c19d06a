"""Helpers of the tests that run ``tools/train.py`` (or torchrun) on the tiny generated demo data.

``write_probe_module(dir)`` writes ``wsss_probe_hooks.py``, two hooks the tests add to a run (the
directory goes on ``PYTHONPATH`` and the module into ``custom_imports``):

- ``DumpRankStateHook(out_dir)``: after training, every rank saves its memory bank, prompt
  parameters, text embeddings, all parameters and the images it trained on to
  ``<out_dir>/rank<r>.pt``;
- ``StallAfterIterHook(at_iter, marker)``: after iteration ``at_iter`` (and its checkpoint) writes
  ``marker`` and sleeps, so the test can SIGKILL the process at a known point.
"""
import os
import socket
import sys
from pathlib import Path
from typing import Dict, List, Sequence

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / 'configs' / 'demo' / 'clip_wsss_swin_demo.py'

PROBE_MODULE = '''
import os
import time

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


@HOOKS.register_module()
class DumpRankStateHook(Hook):
    priority = 'LOWEST'

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen.append([s.metainfo['img_path'] for s in data_batch['data_samples']])

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.eval()
        with torch.no_grad():
            text = model.text_encoder().clone()
        state = dict(
            memory_bank=model.neck.memory_bank.prototypes.clone(),
            memory_initialized=model.neck.memory_bank.initialized.clone(),
            prompt={k: v.detach().clone()
                    for k, v in model.text_encoder.prompt_learner.named_parameters()},
            params={k: v.detach().clone() for k, v in model.named_parameters()},
            text_embeds=text, seen=self.seen, iters=runner.iter)
        os.makedirs(self.out_dir, exist_ok=True)
        torch.save(state, os.path.join(self.out_dir, f'rank{get_rank()}.pt'))


@HOOKS.register_module()
class StallAfterIterHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self, at_iter, marker):
        self.at_iter = at_iter
        self.marker = marker

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at_iter:
            with open(self.marker, 'w') as f:
                f.write(str(os.getpid()))
            time.sleep(900)
'''


def write_probe_module(directory: Path) -> Path:
    """Write ``wsss_probe_hooks.py`` into ``directory``; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / 'wsss_probe_hooks.py').write_text(PROBE_MODULE)
    return directory


def write_config(path: Path, custom_hooks: Sequence[str] = ()) -> Path:
    """A config deriving from the demo config, with the default custom hooks plus ``custom_hooks``
    (python source of hook dicts) and the probe module imported."""
    hooks = ["dict(type='RNGStateHook')", "dict(type='NonFiniteLossHook')",
             "dict(type='CheckpointShapeCheckHook')", *custom_hooks]
    path.write_text(
        f'_base_ = [{str(DEMO_CONFIG)!r}]\n'
        "custom_imports = dict(imports=['mmseg_clip_wsss', 'wsss_probe_hooks'], "
        'allow_failed_imports=False)\n'
        f'custom_hooks = [{", ".join(hooks)}]\n')
    return path


def cfg_options(data_root: Path, clip_ckpt: str, max_iters: int = 3, interval: int = 100,
                batch_size: int = 2, **extra) -> List[str]:
    """``--cfg-options`` of a tiny run: data roots, the tiny text tower, few iterations."""
    opts = {
        'train_dataloader.dataset.data_root': str(data_root),
        'val_dataloader.dataset.data_root': str(data_root),
        'test_dataloader.dataset.data_root': str(data_root),
        'cam_dataloader.dataset.data_root': str(data_root),
        'model.text_encoder.pretrained': str(clip_ckpt),
        'train_dataloader.batch_size': str(batch_size),
        'train_cfg.max_iters': str(max_iters),
        'train_cfg.val_interval': str(interval),
        'default_hooks.checkpoint.interval': str(interval),
        'default_hooks.logger.interval': '1',
        'randomness.seed': '0',
        'randomness.deterministic': 'True',
    }
    opts.update({k: str(v) for k, v in extra.items()})
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def run_env(*python_paths: Path) -> Dict[str, str]:
    """Environment of a child run: one thread, the repo and ``python_paths`` importable."""
    paths = [str(p) for p in python_paths] + [str(REPO), os.environ.get('PYTHONPATH', '')]
    return dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHON=sys.executable,
                PYTHONPATH=os.pathsep.join(p for p in paths if p), PORT=str(free_port()))


def free_port() -> int:
    """A TCP port that is free right now (for torchrun's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
