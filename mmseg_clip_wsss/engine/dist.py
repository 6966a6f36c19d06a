"""Distributed helpers: gathering rows of different counts per rank, and CPU (gloo) process groups.

mmengine's launchers assume one GPU per process (``torch.cuda.set_device(local_rank)``) and its
runtime configs ask for the ``nccl`` backend, so ``tools/dist_train.sh`` fails on a machine without
CUDA. :func:`setup_cpu_distributed` starts the process group with ``gloo`` first (the runner then
finds it initialised and keeps it) and :func:`adapt_config_to_cpu_distributed` makes the config
match: ``gloo`` backend, a DDP wrapper without ``device_ids``.
"""
import logging
import os
import subprocess
from datetime import timedelta
from typing import List

import torch
import torch.distributed as torch_dist
import torch.distributed.nn.functional as torch_dist_nn
from mmengine.config import Config
from mmengine.dist import all_gather, get_world_size, is_distributed
from mmengine.logging import print_log
from torch import Tensor

__all__ = ['all_gather_rows', 'cpu_distributed', 'setup_cpu_distributed',
           'adapt_config_to_cpu_distributed']


def all_gather_rows(tensor: Tensor, differentiable: bool = False) -> Tensor:
    """Concatenate ``tensor`` (N_r, ...) of every rank along dim 0, in rank order.

    The ranks may hold different N_r (e.g. the last, smaller batch of an epoch): the counts are
    gathered first and every rank pads to the largest. Without a process group (or with one
    process) the input is returned as is. Every rank must call it (a collective).

    Args:
        tensor (Tensor): (N_r, ...) rows of this rank; the trailing shape and dtype must agree.
        differentiable (bool): Gather through ``torch.distributed.nn``, whose backward sums the
            gradients of every rank into this rank's rows: a loss that every rank computes alike on
            the gathered rows then trains as in one process holding all of them (DDP averages the
            ranks' gradients). Defaults to False.

    Returns:
        Tensor: (sum_r N_r, ...) on the device of ``tensor``, identical on every rank.
    """
    if not is_distributed() or get_world_size() == 1:
        return tensor
    count = torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device)
    counts = [int(c.item()) for c in all_gather(count)]
    longest = max(counts)
    padded = tensor
    if tensor.shape[0] < longest:
        pad = tensor.new_zeros((longest - tensor.shape[0], ) + tuple(tensor.shape[1:]))
        padded = torch.cat([tensor, pad], dim=0)
    if differentiable:
        parts = torch_dist_nn.all_gather(padded.contiguous())
    else:
        parts = all_gather(padded.contiguous())
    return torch.cat([part[:n] for part, n in zip(parts, counts)], dim=0)


def cpu_distributed(launcher: str) -> bool:
    """Whether a distributed ``launcher`` runs on a machine without CUDA (gloo on CPU)."""
    return launcher != 'none' and not torch.cuda.is_available()


def _slurm_env() -> None:
    """Fill the ``torch.distributed`` env variables from SLURM's, as mmengine does for GPUs."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ.get('SLURM_NODELIST', '127.0.0.1')
        try:
            first = subprocess.run(['scontrol', 'show', 'hostnames', nodes], capture_output=True,
                                   text=True, check=True).stdout.split()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            first = nodes.split(',')[0]
        os.environ['MASTER_ADDR'] = first
    os.environ.setdefault('MASTER_PORT', '29500')


def setup_cpu_distributed(launcher: str, timeout_s: int = 1800) -> None:
    """Start a ``gloo`` process group for ``launcher`` ('pytorch' or 'slurm') on a CPU machine.

    A no-op when a process group already exists.

    Args:
        launcher (str): ``'pytorch'`` (torchrun env variables) or ``'slurm'`` (srun).
        timeout_s (int): Collective timeout in seconds. Defaults to 1800.
    """
    if torch_dist.is_initialized():
        return
    if launcher == 'slurm':
        _slurm_env()
    elif launcher != 'pytorch':
        raise ValueError(f'launcher={launcher!r} on a machine without CUDA: use --launcher pytorch '
                         '(tools/dist_train.sh, torchrun) or --launcher slurm (tools/slurm_train.sh).')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher {launcher} needs the environment variables {missing}; start '
                           'the job with tools/dist_train.sh (torchrun) or tools/slurm_train.sh.')
    torch_dist.init_process_group(backend='gloo', init_method='env://',
                                  timeout=timedelta(seconds=timeout_s))


def adapt_config_to_cpu_distributed(cfg: Config) -> List[str]:
    """Make a config's distributed settings work with gloo on CPU (in place).

    ``env_cfg.dist_cfg.backend`` becomes ``'gloo'`` and the DDP wrapper gets ``device_ids=None``
    (DDP rejects device ids for CPU modules). SyncBN has no CPU implementation: a model config
    asking for it is left alone and a warning names it.

    Args:
        cfg (Config): The final config.

    Returns:
        list[str]: What was changed, for the log.
    """
    changes = []
    env_cfg = dict(cfg.get('env_cfg') or {})
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    if dist_cfg.get('backend', 'nccl') != 'gloo':
        changes.append(f"env_cfg.dist_cfg.backend: {dist_cfg.get('backend', 'nccl')!r} -> 'gloo'")
        dist_cfg['backend'] = 'gloo'
    env_cfg['dist_cfg'] = dist_cfg
    cfg.env_cfg = env_cfg
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        # what mmengine's runner builds without a model_wrapper_cfg, minus the GPU device ids
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        changes.append('model_wrapper_cfg.device_ids -> None (DDP on CPU)')
    elif wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel' and \
            wrapper.get('device_ids', 'unset') is not None:
        wrapper['device_ids'] = None
        changes.append('model_wrapper_cfg.device_ids -> None (DDP on CPU)')
    if 'SyncBN' in str(cfg.get('model', '')):
        print_log('the model config uses SyncBN, which torch only implements for GPUs: set '
                  "norm_cfg=dict(type='BN', requires_grad=True) for distributed training on CPU.",
                  logger='current', level=logging.WARNING)
    return changes
