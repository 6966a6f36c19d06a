"""Seconds spent in each stage of pseudo-mask generation (decode, forward, CAM, refinement, CRF, ...).

:func:`~mmseg_clip_wsss.cam.generate_pseudo_masks` marks its stages on a :class:`StageTimer` when it is
given one (``tools/benchmark.py --pseudo-masks`` does); without one it uses :data:`NULL_TIMER`, which
costs nothing. Stages nest and the time is *exclusive*: a stage opened inside another is subtracted
from the outer one, so the stages of one run add up to its wall time. :meth:`StageTimer.patch` times
any method of an object (e.g. a model's forward pass inside the CAM stage) without changing its code.
"""
import contextlib
import time
from typing import Dict, Iterator, List, Optional

import torch

__all__ = ['StageTimer', 'NULL_TIMER', 'timer_or_null']


class StageTimer:
    """Exclusive wall-clock seconds per named stage.

    Args:
        sync_cuda (bool): Call ``torch.cuda.synchronize()`` at every stage boundary, so the time of
            asynchronous kernels lands in the stage that launched them. Defaults to False.
    """

    def __init__(self, sync_cuda: bool = False):
        self.sync_cuda = bool(sync_cuda)
        self.seconds: Dict[str, float] = {}
        self.images = 0
        self._stack: List[List] = []  # [name, start, seconds of the stages nested in it]

    def _now(self) -> float:
        if self.sync_cuda and torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Count the time of the ``with`` block to ``name``, less the stages opened inside it."""
        frame = [name, self._now(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            total = self._now() - frame[1]
            self.add(name, total - frame[2])
            if self._stack:
                self._stack[-1][2] += total

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to ``name`` (e.g. a stage timed in a worker process)."""
        self.seconds[name] = self.seconds.get(name, 0.0) + float(seconds)

    def count_images(self, n: int) -> None:
        """Images that went through the stages (the denominator of :meth:`per_image`)."""
        self.images += int(n)

    def per_image(self) -> Dict[str, float]:
        """Seconds per image of every stage (empty before any image was counted)."""
        if not self.images:
            return {}
        return {name: s / self.images for name, s in self.seconds.items()}

    def reset(self) -> None:
        """Forget every time and image count."""
        self.seconds.clear()
        self.images = 0

    @contextlib.contextmanager
    def patch(self, owner, attribute: str, name: str) -> Iterator[bool]:
        """Time every call of ``owner.<attribute>`` as stage ``name`` while the block runs.

        ``owner`` may be an object (its method is shadowed by an instance attribute) or a module (its
        function is replaced, so code that looks the name up in that module at call time is timed).

        Yields:
            bool: False (and nothing is patched) when ``owner`` has no such attribute.
        """
        original = getattr(owner, attribute, None)
        if original is None:
            yield False
            return
        own = attribute in vars(owner)
        previous = vars(owner).get(attribute)

        def timed(*args, **kwargs):
            with self.stage(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)
        try:
            yield True
        finally:
            if own:
                setattr(owner, attribute, previous)
            else:
                delattr(owner, attribute)


class _NullTimer(StageTimer):
    """A timer that records nothing (the default of the pipeline)."""

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        yield

    def add(self, name: str, seconds: float) -> None:
        return None

    def count_images(self, n: int) -> None:
        return None


#: Records nothing; what the pipeline uses when no timer is given.
NULL_TIMER: StageTimer = _NullTimer()


def timer_or_null(timer: Optional[StageTimer]) -> StageTimer:
    """``timer``, or :data:`NULL_TIMER` for None."""
    return NULL_TIMER if timer is None else timer

