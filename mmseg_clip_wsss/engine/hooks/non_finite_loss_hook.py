"""Stop training at the first non-finite loss, naming the iteration, the loss term and the batch."""
import math
import os.path as osp
from typing import List, Optional, Tuple

import torch
from mmengine.dist import all_gather_object, all_reduce, get_rank, get_world_size, is_distributed
from mmengine.hooks import Hook

from mmseg_clip_wsss.registry import register_hook_seg_and_det

__all__ = ['NonFiniteLossHook', 'NonFiniteLossError']


class NonFiniteLossError(FloatingPointError):
    """A loss term of a training iteration is NaN or infinite."""


def _value(value) -> Optional[float]:
    """A float for a scalar loss value (tensor or number), None for anything else."""
    if isinstance(value, torch.Tensor):
        if value.numel() == 0:
            return None
        value = value.detach()
        return float(value.float().sum()) if value.numel() > 1 else float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _batch_files(data_batch, limit: int = 8) -> List[str]:
    """Image paths of a batch (``data_samples[i].img_path``), at most ``limit``."""
    samples = data_batch.get('data_samples', []) if isinstance(data_batch, dict) else []
    files = []
    for sample in samples or []:
        meta = getattr(sample, 'metainfo', {}) or {}
        if meta.get('img_path'):
            files.append(str(meta['img_path']))
    return files[:limit]


@register_hook_seg_and_det
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when a loss term of a training iteration is NaN or inf.

    The check runs on the ``log_vars`` the model returns from ``train_step`` (the total ``loss`` and
    every term such as ``decode.loss_mlc``), before the logger and checkpoint hooks of the
    iteration, so no checkpoint with corrupted weights is written. The message names the iteration,
    the non-finite term(s), the config, the images of the batch and the last checkpoint to resume
    from. In distributed training the ranks agree through one small all-reduce per iteration, so
    every rank stops (no rank waits forever for the others).

    Args:
        check_interval (int): Check every ``check_interval`` iterations. Defaults to 1.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, check_interval: int = 1):
        if check_interval < 1:
            raise ValueError(f'NonFiniteLossHook: check_interval must be >= 1, got {check_interval}.')
        self.check_interval = check_interval

    @staticmethod
    def _bad_terms(outputs) -> List[Tuple[str, float]]:
        bad = []
        for name, value in (outputs or {}).items():
            number = _value(value)
            if number is not None and not math.isfinite(number):
                bad.append((name, number))
        return bad

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.check_interval) and not \
                self.is_last_train_iter(runner):
            return
        bad = self._bad_terms(outputs if isinstance(outputs, dict) else {})
        reports = [(get_rank(), bad, _batch_files(data_batch))] if bad else []
        if is_distributed() and get_world_size() > 1:
            flag = torch.tensor([1.0 if bad else 0.0])
            all_reduce(flag, op='max')
            if flag.item() > 0:
                reports = [r for rank_reports in all_gather_object(reports) for r in rank_reports]
        if not reports:
            return
        raise NonFiniteLossError(self._message(runner, reports))

    @staticmethod
    def _message(runner, reports) -> str:
        rank, bad, files = reports[0]
        terms = ', '.join(f"'{name}' = {value}" for name, value in bad)
        where = f' on rank {rank}' if len(reports) > 1 or rank != 0 else ''
        total = [name for name, _ in bad if name == 'loss']
        culprits = [name for name, _ in bad if name != 'loss'] or total
        cfg_file = getattr(runner.cfg, 'filename', None) or '(the config)'
        lines = [
            f'non-finite loss at iteration {runner.iter + 1} of {runner.max_iters}{where}: {terms} '
            f'(loss term(s) {", ".join(culprits)}); training stopped before this iteration was '
            'logged or checkpointed.',
            f'  config: {cfg_file}',
        ]
        if files:
            lines.append(f'  images of the batch: {", ".join(files)}')
        last = osp.join(runner.work_dir, 'last_checkpoint')
        if osp.isfile(last):
            with open(last) as f:
                lines.append(f'  last (finite) checkpoint: {f.read().strip()}')
        lines.append(
            '  fix: lower the learning rate (optim_wrapper.optimizer.lr) or the warm-up start '
            '(param_scheduler), keep gradient clipping on (optim_wrapper.clip_grad), check the '
            "named images and the loss term's loss_weight, then restart with --resume.")
        return '\n'.join(lines)
