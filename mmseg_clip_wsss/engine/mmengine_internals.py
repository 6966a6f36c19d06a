"""The private mmengine internals that exact ``--resume`` relies on, in one place.

:class:`~mmseg_clip_wsss.engine.RNGStateHook` needs three things mmengine does not promise to keep:

- ``Runner._train_loop``: the train loop without building it (the public ``runner.train_loop``
  builds a loop from its config as a side effect);
- ``InfiniteSampler._indices_of_rank()``: the sampler's index generator, made once at ``__init__``,
  has to be made again after the sampler's ``seed`` changes;
- ``IterBasedTrainLoop.dataloader_iterator``: the loop's iterator over the dataloader (an
  ``_InfiniteDataloaderIterator``, rebuilt from ``loop.dataloader``) that the hook wraps and
  replaces.

They were verified on mmengine :data:`VERIFIED_MMENGINE` (``requirements/runtime.txt`` pins the same
version; ``tests/test_robustness.py`` checks both, and :func:`check_mmengine_internals` names the
internal that changed). Each accessor below raises :class:`MMEngineInternalsError` naming the
internal instead of silently skipping a step of the resume.
"""
import inspect
from typing import List

import mmengine
from mmengine.dataset import InfiniteSampler
from mmengine.runner import BaseLoop, IterBasedTrainLoop, Runner

__all__ = ['VERIFIED_MMENGINE', 'MMEngineInternalsError', 'check_mmengine_internals',
           'train_loop_of', 'rebuild_sampler_indices', 'restart_data_iterator']

#: The mmengine version the internals below were verified on.
VERIFIED_MMENGINE = '0.10.7'


class MMEngineInternalsError(RuntimeError):
    """A private mmengine internal that exact resume relies on is gone or changed."""


def _error(internal: str, what: str) -> MMEngineInternalsError:
    return MMEngineInternalsError(
        f'mmengine internal `{internal}` {what} (mmengine {mmengine.__version__}; exact resume was '
        f'verified on {VERIFIED_MMENGINE}): install mmengine=={VERIFIED_MMENGINE} '
        '(requirements/runtime.txt) or adapt mmseg_clip_wsss/engine/mmengine_internals.py.')


def train_loop_of(runner):
    """``runner._train_loop`` when it is a built loop, else None (not built, or no training)."""
    if not hasattr(runner, '_train_loop'):
        raise _error('Runner._train_loop', 'does not exist')
    loop = runner._train_loop
    return loop if isinstance(loop, BaseLoop) else None


def rebuild_sampler_indices(sampler) -> None:
    """Make a sampler's index generator again after its ``seed`` changed.

    mmengine's ``InfiniteSampler`` draws its indices from a generator made at ``__init__``
    (``sampler.indices = sampler._indices_of_rank()``); samplers that draw them in ``__iter__``
    (``DefaultSampler``: no ``indices`` attribute) need nothing.
    """
    if not hasattr(sampler, 'indices'):
        return
    if not callable(getattr(sampler, '_indices_of_rank', None)):
        raise _error(f'{type(sampler).__name__}._indices_of_rank', 'does not exist')
    sampler.indices = sampler._indices_of_rank()


def restart_data_iterator(loop) -> None:
    """Rebuild ``loop.dataloader_iterator`` (an ``IterBasedTrainLoop``) from ``loop.dataloader``, so
    it draws indices of the sampler's current seed. Loops without one (epoch-based) are left alone."""
    if not hasattr(loop, 'dataloader_iterator'):
        return
    iterator_type = type(loop.dataloader_iterator)
    try:
        loop.dataloader_iterator = iterator_type(loop.dataloader)
    except TypeError as err:
        raise _error(f'{iterator_type.__name__}(dataloader)',
                     f'can no longer be built from the dataloader alone ({err})') from err


def check_mmengine_internals() -> List[str]:
    """Check every internal on the installed mmengine.

    Returns:
        list[str]: The internals checked.

    Raises:
        MMEngineInternalsError: naming the first internal that is gone or changed.
    """
    # a private name: imported here, so that its absence is reported by the check, not at import
    from mmengine.runner.loops import _InfiniteDataloaderIterator

    if '_train_loop' not in inspect.getsource(Runner.__init__):
        raise _error('Runner._train_loop', 'is no longer set by Runner.__init__')
    if not callable(getattr(InfiniteSampler, '_indices_of_rank', None)):
        raise _error('InfiniteSampler._indices_of_rank', 'does not exist')
    if 'self._indices_of_rank()' not in inspect.getsource(InfiniteSampler.__init__):
        raise _error('InfiniteSampler.indices', 'is no longer made by _indices_of_rank() in __init__')
    if 'self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)' not in \
            inspect.getsource(IterBasedTrainLoop.__init__):
        raise _error('IterBasedTrainLoop.dataloader_iterator',
                     'is no longer an _InfiniteDataloaderIterator of loop.dataloader')
    if list(inspect.signature(_InfiniteDataloaderIterator).parameters) != ['dataloader']:
        raise _error('_InfiniteDataloaderIterator(dataloader)', 'takes other arguments')
    return ['Runner._train_loop', 'InfiniteSampler._indices_of_rank', 'InfiniteSampler.indices',
            'IterBasedTrainLoop.dataloader_iterator', '_InfiniteDataloaderIterator(dataloader)']
