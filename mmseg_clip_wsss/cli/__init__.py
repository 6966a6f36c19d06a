"""Command lines: the one home of every ``argparse`` parser of the project.

Each tool is a module ``mmseg_clip_wsss.cli.<tool>`` with ``parse_args(argv)``, ``main(argv)`` (the
parsed run; returns its result and raises on bad input, so tests drive it in-process) and ``run()``
(``main`` with the errors that carry a complete message printed as ``error: ...``, exit status 1,
instead of a traceback, and Ctrl-C as one line, what was finished and how to resume, exit status
130). ``tools/<tool>.py`` and ``python -m mmseg_clip_wsss.cli.<tool>`` call ``run()``; the work
itself lives in the library layers below (``apis``, ``cam``, ``clip_pretrain``, ``datasets``,
``demo``, ``benchmark``).
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
from typing import Callable, Dict, Optional, Tuple

import torch

from mmseg_clip_wsss.apis.preflight import ConfigMismatchError, MissingAssetError
from mmseg_clip_wsss.datasets.atomic_files import write_json_atomically
from mmseg_clip_wsss.datasets.errors import DatasetError
from mmseg_clip_wsss.datasets.transforms.loading import CorruptImageError
from mmseg_clip_wsss.engine.checkpoint_check import CheckpointMismatchError
from mmseg_clip_wsss.engine.hooks import NonFiniteLossError
from mmseg_clip_wsss.engine.weight_files import WeightFileError
from mmseg_clip_wsss.startup import end_startup_guard

__all__ = ['USER_ERRORS', 'INPUT_ERRORS', 'run_tool', 'report_json', 'device_arg',
           'finished_files', 'refuse_existing', 'int_at_least', 'float_between', 'DefaultsHelpFormatter']

#: Errors of the tools that carry a complete message (file and fix): printed without a traceback.
USER_ERRORS = (MissingAssetError, ConfigMismatchError, CheckpointMismatchError, NonFiniteLossError,
               DatasetError, CorruptImageError, WeightFileError)

#: Errors of the data and CLIP tools whose messages name the file and the fix.
INPUT_ERRORS = (FileNotFoundError, FileExistsError, ValueError)


def _device_unavailable(device: torch.device) -> Optional[str]:
    """Why ``device`` cannot be used on this machine (None: it can)."""
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            return ('CUDA is not available on this machine (no GPU, or a CPU-only build of torch: '
                    'torch.cuda.is_available() is False)')
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return f'this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}'
        return None
    if device.type == 'mps':
        return None if torch.backends.mps.is_available() else 'MPS is not available on this machine'
    backend = getattr(torch, device.type, None)
    if device.type != 'cpu' and hasattr(backend, 'is_available') and not backend.is_available():
        return f'{device.type} is not available on this machine'
    return None


def device_arg(value: str) -> str:
    """The ``type`` of every ``--device`` option: the device string, checked before any work.

    Args:
        value (str): ``cpu``, ``cuda``, ``cuda:N``, ... as :class:`torch.device` reads it.

    Returns:
        str: ``value`` unchanged.

    Raises:
        argparse.ArgumentTypeError: ``value`` is no torch device, or one this machine does not have
            (e.g. ``cuda`` without a GPU); argparse prints the message with the option's name and
            exits with status 2.
    """
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError) as err:
        raise argparse.ArgumentTypeError(f'{value!r} is not a device ({err}); use cpu, cuda or cuda:N')
    reason = _device_unavailable(device)
    if reason is not None:
        raise argparse.ArgumentTypeError(
            f'{value!r}: {reason}; use --device cpu (or leave --device out: the GPU if there is one, '
            'else the CPU)')
    return value


def int_at_least(low: int) -> Callable[[str], int]:
    """The argparse ``type`` of a whole-number option whose valid range is ``low`` and up.

    Args:
        low (int): The least valid value (1 for a count or a size, 0 for a number of processes).

    Returns:
        Callable[[str], int]: Parses the option; a value that is no whole number or below ``low``
        raises :class:`argparse.ArgumentTypeError`, which argparse prints with the option's name and
        the valid range (exit status 2).
    """
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{value!r} is not a whole number; valid: {low} or more')
        if number < low:
            raise argparse.ArgumentTypeError(f'{number} is out of range; valid: {low} or more')
        return number

    return parse


def float_between(low: float, high: Optional[float] = None) -> Callable[[str], float]:
    """The argparse ``type`` of a number option whose valid range is ``[low, high]`` (no ``high``:
    ``low`` and up).

    Args:
        low (float): The least valid value.
        high (float, optional): The largest valid value; None: no upper bound.

    Returns:
        Callable[[str], float]: Parses the option; a value that is no number or out of range raises
        :class:`argparse.ArgumentTypeError`, which argparse prints with the option's name and the
        valid range (exit status 2).
    """
    valid = f'{low} or more' if high is None else f'{low} to {high}'

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{value!r} is not a number; valid: {valid}')
        if not (number >= low and (high is None or number <= high)):  # NaN is out of range too
            raise argparse.ArgumentTypeError(f'{number} is out of range; valid: {valid}')
        return number

    return parse


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """The help formatter of the tools that print their options' defaults: ``(default: X)`` is added
    to an option's help unless the help says its default itself or there is none (None, False): argparse's
    own formatter printed ``(default WSSS-Demo-CLIP-RN, the demo CLIP) (default: WSSS-Demo-CLIP-RN)``
    and ``(default: None)`` after a help that named the default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ''
        if 'default' in help_text or action.default in (None, False, argparse.SUPPRESS):
            return help_text
        return super()._get_help_string(action)


def report_json(result: Dict, out: Optional[str] = None) -> Dict:
    """Print ``result`` as JSON and, with ``out``, write it there too (atomically, its folder made);
    returns it."""
    if out:
        write_json_atomically(out, result)
    print(json.dumps(result, indent=2))
    return result


def refuse_existing(path: Optional[str], option: str, overwrite: bool = False) -> None:
    """Refuse, before any work, an output that would replace an existing file or a non-empty folder.

    Args:
        path (str, optional): The output of ``option`` (None: not given, nothing to check).
        option (str): Its command-line option, e.g. ``'--out'``, named in the message.
        overwrite (bool): ``--overwrite`` was given: replacing it is what was asked for.

    Raises:
        FileExistsError: ``path`` exists (a folder: with files in it) and ``overwrite`` is False.
    """
    if not path or overwrite:
        return
    if osp.isfile(path) or (osp.isdir(path) and os.listdir(path)):
        what = 'exists' if osp.isfile(path) else 'is a folder with files in it'
        raise FileExistsError(f'{option} {path} {what}; pass --overwrite to replace it, or give '
                              f'another {option}')


def finished_files(directory: str, pattern: str) -> int:
    """How many files match ``pattern`` (a glob, e.g. ``'*.png'``) directly in ``directory``: the
    finished outputs of a tool whose writes are atomic (the temporary files are hidden, ``.*.tmp``)."""
    return len(glob.glob(osp.join(glob.escape(directory), pattern)))


def _interrupted(interrupted: Optional[Callable[[], str]]) -> None:
    """Print the one line of an interrupted tool (what was finished, how to resume) and exit 130."""
    what = 'stopped before the end; run the same command again'
    if interrupted is not None:
        try:
            what = interrupted()
        except Exception:  # the line must not turn into a traceback itself
            pass
    print(f'interrupted (Ctrl-C): {what}', file=sys.stderr, flush=True)
    sys.exit(130)


def run_tool(main: Callable[[], object], also: Tuple[type, ...] = (),
             interrupted: Optional[Callable[[], str]] = None) -> None:
    """Run a command-line tool's ``main``; a :data:`USER_ERRORS` error (or one of ``also``, e.g.
    :data:`INPUT_ERRORS`) ends it with its message (``error: ...``, exit status 1) instead of a
    traceback, and Ctrl-C (:class:`KeyboardInterrupt`) with one line, ``interrupted (Ctrl-C): ...``
    (what ``interrupted()`` says: what was finished and how to resume), exit status 130 (as a shell
    reports SIGINT). With the environment variable ``MMSEG_CLIP_WSSS_TRACEBACK=1`` the traceback is
    shown (to debug the tool itself). Ctrl-C before this (while the imports start the tool) is the
    one line of :mod:`mmseg_clip_wsss.startup`, whose handler ends here."""
    end_startup_guard()
    try:
        main()
    except KeyboardInterrupt:
        if os.environ.get('MMSEG_CLIP_WSSS_TRACEBACK'):
            raise
        _interrupted(interrupted)
    except USER_ERRORS + tuple(also) as err:
        if os.environ.get('MMSEG_CLIP_WSSS_TRACEBACK'):
            raise
        sys.exit(f'error: {err}')
