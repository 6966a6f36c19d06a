"""Compatibility shims for the modern stack (numpy 2, torch >= 2.6, setuptools >= 77).

Each shim is small, named after what it fixes, applied once at ``import mmseg_clip_wsss`` and covered
by ``tests/test_compat.py``. Nothing of mmengine/mmseg/mmdet is edited in place.
"""
import numpy as np
import torch


def allow_mmengine_checkpoint_globals() -> None:
    """Let ``torch.load(weights_only=True)`` read checkpoints written by mmengine's runner.

    Since torch 2.6, ``torch.load`` defaults to ``weights_only=True`` and refuses any pickled global
    that is not allow-listed. mmengine's checkpoints hold numpy scalars/arrays in ``meta`` and
    :class:`mmengine.logging.HistoryBuffer` objects in the saved message hub, so ``load_checkpoint``
    and ``--resume`` fail with ``WeightsUnpickler error``. Allow-listing exactly these types keeps
    the safe loader (no arbitrary code) and makes mmengine checkpoints load again.
    """
    from mmengine.logging import HistoryBuffer

    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    safe = [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    # numpy 2 pickles dtypes through their concrete classes (np.dtypes.Float64DType, ...).
    safe += [cls for name, cls in vars(np.dtypes).items() if name.endswith('DType')]
    # Checkpoints written under numpy 1.x name the same functions under ``numpy.core``.
    safe += [(multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
             (multiarray.scalar, 'numpy.core.multiarray.scalar')]
    # HistoryBuffer pickles its statistics methods as ``getattr(HistoryBuffer, 'mean')``. Allowing
    # ``getattr`` is safe here: the unpickler still only *calls* allow-listed callables.
    safe.append(getattr)
    torch.serialization.add_safe_globals(safe)


def apply_all() -> None:
    """Apply every shim of this module (idempotent)."""
    allow_mmengine_checkpoint_globals()
