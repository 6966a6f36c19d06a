"""Post-processing of pseudo masks (dense CRF, CPU refinement, PNG writing) in worker processes.

:class:`MaskWriterPool` runs a :class:`~mmseg_clip_wsss.cam.postprocess.MaskFinisher` on the
:class:`~mmseg_clip_wsss.cam.postprocess.MaskJob` s that the model's process submits: in that process
(``workers=0``, one image after the other, as before) or in ``workers`` processes while the model goes
on with the next batch. Each worker runs one torch thread. At most ``2 * workers`` jobs wait, so memory
stays bounded when the workers are slower than the model.

Nothing is lost on an interruption: every PNG is written to a temporary name and renamed; when the
model's process stops (an error, Ctrl-C), the jobs not started are cancelled and those running finish
their files; workers ignore SIGINT, so Ctrl-C never stops them half-way. A worker that dies (killed,
out of memory) ends the run with an error; the masks already written are complete, and a rerun
resumes with the rest.
"""
import collections
import multiprocessing
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Deque, Dict, Optional, Tuple

import torch

from .postprocess import MaskFinisher, MaskJob
from .stage_timer import NULL_TIMER, StageTimer

__all__ = ['MaskWriterPool', 'WorkerError']

_FINISHER: Optional[MaskFinisher] = None


class WorkerError(RuntimeError):
    """A worker process failed or died while finishing a pseudo mask."""


def _init_worker(finisher: MaskFinisher, threads: int) -> None:
    """Runs once in every worker: one finisher per process, ``threads`` torch threads, no SIGINT."""
    global _FINISHER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _FINISHER = finisher


def _finish(job: MaskJob) -> Dict[str, float]:
    """Finish one job in a worker; returns the seconds of its stages."""
    timer = StageTimer()
    _FINISHER(job, timer)
    return timer.seconds


def _start_method() -> multiprocessing.context.BaseContext:
    """``fork`` where the platform has it (workers start at once, without importing the package
    again: as torch's DataLoader workers do); ``spawn`` elsewhere."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context('fork' if 'fork' in methods else 'spawn')


class MaskWriterPool:
    """Finish pseudo-mask jobs in this process or in worker processes (a context manager).

    Args:
        finisher (MaskFinisher): What to run on every job (pickled once to every worker).
        workers (int): Worker processes; 0 finishes every job in this process at once.
            Defaults to 0.
        timer (StageTimer): Receives the stage times of every job: in this process under their own
            names; from the workers as ``'worker <stage>'`` (summed over the workers, in parallel
            with this process), with this process's ``'start workers'``, ``'wait for workers'`` (the queue is full) and
            ``'finish queued jobs'`` (at the end).
        threads (int): Torch threads of every worker. Defaults to 1.

    Raises:
        ValueError: for a negative ``workers`` or ``threads < 1``.
    """

    def __init__(self, finisher: MaskFinisher, workers: int = 0, timer: StageTimer = NULL_TIMER,
                 threads: int = 1):
        if int(workers) < 0:
            raise ValueError(f'pseudo masks: workers must be >= 0 (0: in this process), got {workers}.')
        if int(threads) < 1:
            raise ValueError(f'pseudo masks: worker threads must be >= 1, got {threads}.')
        self.finisher = finisher
        self.workers = int(workers)
        self.timer = timer
        self.threads = int(threads)
        self._executor: Optional[ProcessPoolExecutor] = None
        self._pending: Deque[Tuple[Future, str]] = collections.deque()

    def __enter__(self) -> 'MaskWriterPool':
        if self.workers:
            with self.timer.stage('start workers'):
                self._executor = ProcessPoolExecutor(self.workers, mp_context=_start_method(),
                                                     initializer=_init_worker,
                                                     initargs=(self.finisher, self.threads))
                # every worker starts now, before the caller's data loader starts threads of its own
                self._executor.submit(int, 0).result()
        return self

    def submit(self, job: MaskJob) -> None:
        """Finish ``job`` now (no workers) or queue it; waits while ``2 * workers`` jobs are queued.

        Raises:
            WorkerError: when an earlier job failed in a worker (naming its mask) or a worker died.
        """
        if self._executor is None:
            self.finisher(job, self.timer)
            return
        while len(self._pending) >= 2 * self.workers:
            with self.timer.stage('wait for workers'):
                self._collect_oldest()
        try:
            future = self._executor.submit(_finish, job)
        except BrokenProcessPool as err:
            raise self._died(job.mask_path) from err
        self._pending.append((future, job.mask_path))

    def _collect_oldest(self) -> None:
        future, path = self._pending.popleft()
        try:
            seconds = future.result()
        except BrokenProcessPool as err:
            raise self._died(path) from err
        except Exception as err:
            raise WorkerError(f'pseudo masks: finishing {path} failed in a worker process: '
                              f'{type(err).__name__}: {err}') from err
        for name, value in seconds.items():
            self.timer.add(f'worker {name}', value)

    @staticmethod
    def _died(path: str) -> WorkerError:
        return WorkerError(f'pseudo masks: a worker process died (killed, or out of memory?) while '
                           f'{path} or a mask before it was being finished. The PNGs already there '
                           'are complete; run again to resume with the rest (or use fewer --workers).')

    def close(self) -> None:
        """Wait for every queued job (raising the first failure) and stop the workers."""
        try:
            with self.timer.stage('finish queued jobs'):
                while self._pending:
                    self._collect_oldest()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        """Cancel the jobs not started, let the running ones finish their files, stop the workers."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._pending.clear()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._shutdown()
