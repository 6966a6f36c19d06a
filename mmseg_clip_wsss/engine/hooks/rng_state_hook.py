"""Random number generator states in checkpoints, so that ``--resume`` continues exactly.

mmengine's ``--resume`` restores the weights, the optimizer, the schedulers and the iteration, and
an ``IterBasedTrainLoop`` re-reads the batches it has already trained on so that the sampler is at
the same position. The random number generators are not saved: after a resume the data
augmentation (numpy / python ``random``), dropout and drop-path (torch) draw other numbers than the
uninterrupted run would have, and re-reading the skipped batches consumes yet more of them.

:class:`RNGStateHook` closes the gap:

- before a checkpoint is written it stores the python, numpy, torch (and CUDA) generator states of
  every rank and the train sampler's seed in ``checkpoint['rng_state']``;
- on resume it puts them back right before the first batch that is trained again (after mmengine's
  re-reading of the skipped batches), so the resumed run draws the same numbers as the
  uninterrupted one;
- a validation run inside training leaves the generators as it found them, so the random stream of
  training does not depend on when (or whether) validation runs.

With ``num_workers > 0`` the augmentation runs in the dataloader workers, which mmengine seeds
from the run's seed; re-reading the skipped batches then replays their generators as well.

The private mmengine internals this needs are reached through
:mod:`mmseg_clip_wsss.engine.mmengine_internals` (verified on one pinned mmengine version).
"""
import logging
import random
from typing import Callable, Iterator, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_distributed
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from mmseg_clip_wsss.registry import register_hook_seg_and_det
from ..mmengine_internals import rebuild_sampler_indices, restart_data_iterator, train_loop_of

__all__ = ['RNGStateHook', 'capture_rng_state', 'restore_rng_state', 'CHECKPOINT_KEY']

#: Key of the generator states in an mmengine checkpoint dict.
CHECKPOINT_KEY = 'rng_state'


def capture_rng_state() -> dict:
    """The states of python's ``random``, numpy's global generator, torch's CPU (and CUDA) ones.

    Returns:
        dict: Plain python values and uint8 tensors only, so ``torch.load(weights_only=True)``
        reads a checkpoint holding it.
    """
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = dict(
        python=(version, list(internal), gauss_next),
        numpy=dict(name=str(name), keys=[int(k) for k in keys], pos=int(pos),
                   has_gauss=int(has_gauss), cached_gaussian=float(cached)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict) -> None:
    """Put back the generator states of :func:`capture_rng_state`.

    Args:
        state (dict): As returned by :func:`capture_rng_state`.
    """
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))
    n = state['numpy']
    np.random.set_state((n['name'], np.asarray(n['keys'], dtype=np.uint32), n['pos'],
                         n['has_gauss'], n['cached_gaussian']))
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda')
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class _RestoreBeforeFetch:
    """Wraps a train-loop data iterator: after ``skip`` batches, call ``restore`` once, then fetch."""

    def __init__(self, iterator: Iterator, skip: int, restore: Callable[[], None]):
        self.iterator = iterator
        self.skip = skip
        self.restore: Optional[Callable[[], None]] = restore

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip > 0:
            self.skip -= 1
        elif self.restore is not None:
            self.restore()
            self.restore = None
        return next(self.iterator)


def _train_sampler(runner):
    """The train dataloader's sampler that has a ``seed`` (mmengine's samplers), or None."""
    loop = train_loop_of(runner)
    loader = getattr(loop, 'dataloader', None)
    if loader is None:
        return None
    sampler = getattr(loader, 'sampler', None)
    batch_sampler = getattr(loader, 'batch_sampler', None)
    if sampler is not None and hasattr(sampler, 'seed'):
        return sampler
    inner = getattr(batch_sampler, 'sampler', None)
    return inner if inner is not None and hasattr(inner, 'seed') else None


@register_hook_seg_and_det
class RNGStateHook(Hook):
    """Save the random generators in checkpoints and restore them on ``--resume``.

    See the module docstring for what it does and why. In distributed training the states of all
    ranks are gathered (only) at the iterations/epochs where a :class:`CheckpointHook` saves; a
    resumed rank takes its own state, or rank 0's when the number of processes changed (the run
    then goes on, but is no longer an exact continuation, which is logged).

    Args:
        restore (bool): Restore the states on resume. Defaults to True.
        isolate_validation (bool): Restore the generators after each validation run inside
            training. Defaults to True.
    """

    # after the loggers (BELOW_NORMAL), before CheckpointHook (VERY_LOW) in ``after_train_iter``
    priority = 'LOW'

    def __init__(self, restore: bool = True, isolate_validation: bool = True):
        self.restore = restore
        self.isolate_validation = isolate_validation
        self._gathered = None  # (iteration, [state of every rank]) at a checkpoint iteration
        self._val_state: Optional[dict] = None
        self._loaded: Optional[dict] = None

    # -------------------------------------------------------------- saving
    @staticmethod
    def _checkpoint_due(runner, by_epoch: bool) -> bool:
        """Whether a CheckpointHook of the runner saves at the current iteration / epoch."""
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or bool(hook.by_epoch) != by_epoch:
                continue
            begin = getattr(hook, 'save_begin', 0)
            if by_epoch:
                due = hook.every_n_epochs(runner, hook.interval, begin) or (
                    hook.save_last and hook.is_last_train_epoch(runner))
            else:
                due = hook.every_n_train_iters(runner, hook.interval, begin) or (
                    hook.save_last and hook.is_last_train_iter(runner))
            if due:
                return True
        return False

    def _gather_if_due(self, runner, by_epoch: bool) -> None:
        if is_distributed() and get_world_size() > 1 and self._checkpoint_due(runner, by_epoch):
            self._gathered = (runner.iter, all_gather_object(capture_rng_state()))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._gather_if_due(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_due(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the states of every rank (or of this one) in ``checkpoint['rng_state']``."""
        if self._val_state is not None:  # a best-checkpoint save inside validation
            states = [self._val_state]
        elif self._gathered is not None and self._gathered[0] == runner.iter:
            states = self._gathered[1]
        else:
            states = [capture_rng_state()]
        self._gathered = None
        sampler = _train_sampler(runner)
        checkpoint[CHECKPOINT_KEY] = dict(
            states=states, sampler_seed=getattr(sampler, 'seed', None))

    # ---------------------------------------------------------- validation
    def before_val(self, runner) -> None:
        if self.isolate_validation:
            self._val_state = capture_rng_state()

    def after_val(self, runner) -> None:
        if self._val_state is not None:
            restore_rng_state(self._val_state)
            self._val_state = None

    # ------------------------------------------------------------- resume
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get(CHECKPOINT_KEY)

    def _state_of_this_rank(self, runner, states: List[dict]) -> dict:
        rank, world = get_rank(), get_world_size()
        if len(states) != world:
            print_log(f'RNGStateHook: the checkpoint holds the random states of {len(states)} '
                      f'process(es), this run has {world}: every process takes those of rank 0; the '
                      'run goes on but is not an exact continuation.', logger='current',
                      level=logging.WARNING)
            return states[0]
        return states[rank]

    def _reseed_sampler(self, runner, seed) -> None:
        """Give the train sampler the checkpoint's seed (runs without a fixed ``randomness.seed``)."""
        sampler = _train_sampler(runner)
        if sampler is None or seed is None or getattr(sampler, 'seed', None) == seed:
            return
        print_log(f'RNGStateHook: train sampler seed {sampler.seed} -> {seed} (from the checkpoint)',
                  logger='current')
        sampler.seed = seed
        rebuild_sampler_indices(sampler)
        restart_data_iterator(runner.train_loop)  # it may already hold indices of the old seed

    def before_train(self, runner) -> None:
        loaded, self._loaded = self._loaded, None
        if not self.restore or loaded is None:
            return
        if runner.iter == 0 and runner.epoch == 0:  # `load_from` (fine-tuning), not a resume
            return
        self._reseed_sampler(runner, loaded.get('sampler_seed'))
        state = self._state_of_this_rank(runner, loaded['states'])
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):
            # IterBasedTrainLoop re-reads `runner.iter` batches before training goes on
            loop.dataloader_iterator = _RestoreBeforeFetch(
                loop.dataloader_iterator, runner.iter, lambda: restore_rng_state(state))
        else:  # epoch-based loops resume at an epoch boundary and re-read nothing
            restore_rng_state(state)
