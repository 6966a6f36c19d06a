"""Compatibility shims for the modern stack (numpy 2, torch >= 2.6, setuptools >= 77).

Each shim is small, named after what it fixes, applied once at ``import mmseg_clip_wsss`` and covered
by ``tests/test_foundation.py``. Nothing of mmengine/mmseg/mmdet is edited in place.
"""
import copyreg
import pickle
import warnings

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

#: The name under which pickle protocol 2 refers to ``getattr`` (checkpoints written before
#: :func:`pickle_history_buffers_by_value` existed reference HistoryBuffer's methods through it).
_GETATTR_GLOBAL = 'builtins.getattr'


def _history_buffer_method(owner, name: str):
    """What an old checkpoint's ``getattr(HistoryBuffer, <statistics method>)`` stands for.

    Exactly mmengine's statistics methods of :class:`~mmengine.logging.HistoryBuffer` resolve;
    every other ``getattr`` in a pickle is refused, so this is no general-purpose ``getattr``.
    """
    if owner is HistoryBuffer and name in ('min', 'max', 'current', 'mean'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({getattr(owner, "__name__", type(owner).__name__)}, {name!r}) in a '
        'checkpoint: only the statistics methods of mmengine HistoryBuffer are allowed')


def _reduce_history_buffer(buffer):
    """Pickle a HistoryBuffer by its values only: ``HistoryBuffer(logs, counts, max_length)``."""
    logs, counts = buffer.data
    return type(buffer), (logs, counts, buffer.max_length)


def pickle_history_buffers_by_value() -> None:
    """Make mmengine's :class:`~mmengine.logging.HistoryBuffer` pickle without method references.

    A message hub saved in a checkpoint holds HistoryBuffers; pickled the default way, their
    statistics methods travel as ``getattr(HistoryBuffer, 'mean')`` (pickle protocol 2 names nested
    functions through ``getattr``). Reduced to ``HistoryBuffer(logs, counts, max_length)`` -- the
    class and two arrays -- a checkpoint needs nothing but allow-listed types.
    """
    copyreg.pickle(HistoryBuffer, _reduce_history_buffer)


def allow_mmengine_checkpoint_globals() -> None:
    """Let ``torch.load(weights_only=True)`` read checkpoints written by mmengine's runner.

    Since torch 2.6, ``torch.load`` defaults to ``weights_only=True`` and refuses any pickled global
    that is not allow-listed. mmengine's checkpoints hold numpy scalars/arrays in ``meta`` and
    :class:`mmengine.logging.HistoryBuffer` objects in the saved message hub, so ``load_checkpoint``
    and ``--resume`` fail with ``WeightsUnpickler error``. Exactly these types are allow-listed (no
    general-purpose builtin such as ``getattr``: allow-listing it opens a way from the safe loader to
    code execution, pytorch/pytorch#189445), which keeps the safe loader and makes mmengine
    checkpoints load again. Checkpoints written before :func:`pickle_history_buffers_by_value`
    reference HistoryBuffer's methods through ``builtins.getattr``; that name maps to
    :func:`_history_buffer_method`, which resolves those references and refuses every other.
    """
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    safe = [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    # numpy 2 pickles dtypes through their concrete classes (np.dtypes.Float64DType, ...).
    safe += [cls for name, cls in vars(np.dtypes).items() if name.endswith('DType')]
    # Checkpoints written under numpy 1.x name the same functions under ``numpy.core``.
    safe += [(multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
             (multiarray.scalar, 'numpy.core.multiarray.scalar')]
    safe.append((_history_buffer_method, _GETATTR_GLOBAL))
    torch.serialization.add_safe_globals(safe)


#: The warning setuptools 77-80 gives once when a package imports ``pkg_resources`` (mmdet's
#: transforms import ``imagecorruptions``, which does): the user can do nothing about it.
PKG_RESOURCES_WARNING = 'pkg_resources is deprecated as an API'


def silence_pkg_resources_warning() -> None:
    """Ignore :data:`PKG_RESOURCES_WARNING` (that message only; every other warning still shows)."""
    warnings.filterwarnings('ignore', message=PKG_RESOURCES_WARNING, category=UserWarning)


def apply_all() -> None:
    """Apply every shim of this module (idempotent)."""
    silence_pkg_resources_warning()
    pickle_history_buffers_by_value()
    allow_mmengine_checkpoint_globals()
