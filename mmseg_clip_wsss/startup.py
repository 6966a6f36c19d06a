"""Ctrl-C while a command line is still starting (importing torch, mmengine, mmseg: the first seconds).

A KeyboardInterrupt raised inside those imports ended ``python tools/make_pseudo_masks.py ...`` with a
long traceback through the import machinery, before :func:`mmseg_clip_wsss.cli.run_tool` (which turns
Ctrl-C into one line) was reached. :func:`guard_startup`, called first by ``import mmseg_clip_wsss``,
installs a SIGINT handler for that phase that prints one line, ``interrupted while starting; nothing
was written``, and exits with status 130 (as a shell reports SIGINT); ``run_tool`` ends the phase with
:func:`end_startup_guard`, giving Ctrl-C back to its own handling (what was finished, how to resume).

Only a process started as one of the project's command lines is guarded
(``python -m mmseg_clip_wsss.cli.<tool>`` or a script under the checkout's ``tools/``), so importing
the package in a program or a notebook leaves its Ctrl-C as it is. With the environment variable
``MMSEG_CLIP_WSSS_TRACEBACK=1`` nothing is guarded (the traceback shows where the start hung).

This module imports the standard library only: it must be loaded before anything slow.
"""
import os
import os.path as osp
import signal
import sys
from typing import Optional, Sequence

__all__ = ['STARTING_LINE', 'is_tool_command', 'guard_startup', 'end_startup_guard']

#: The line printed when Ctrl-C comes while a command line is starting.
STARTING_LINE = 'interrupted while starting; nothing was written'
_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
_previous: list = []  # the SIGINT handler before the guard, while the guard is installed


def is_tool_command(orig_argv: Sequence[str], script: Optional[str], repo: str = _REPO) -> bool:
    """Whether the process runs a command line of the project.

    Args:
        orig_argv (Sequence[str]): The interpreter's command line (``sys.orig_argv``).
        script (str, optional): The script run (``sys.argv[0]``: ``'-m'`` while ``python -m``
            imports the module's packages).
        repo (str): The source checkout whose ``tools/`` holds the command-line scripts.

    Returns:
        bool: ``-m mmseg_clip_wsss.cli.<tool>``, or a script under ``<repo>/tools/`` that the
        interpreter runs (not a worker spawned by one, whose ``sys.argv`` is the tool's).
    """
    argv = list(orig_argv)
    if script == '-m':  # `python -m MODULE` while it imports MODULE's packages
        return '-m' in argv[:-1] and argv[argv.index('-m') + 1].startswith('mmseg_clip_wsss.cli.')
    # the script must be the interpreter's own: a spawned worker of a tool gets the tool's sys.argv, but
    # its interpreter runs `-c "from multiprocessing.spawn import spawn_main ..."`, and keeps its own rules
    return (bool(script) and script in argv and
            osp.abspath(script).startswith(osp.join(repo, 'tools') + os.sep))


def _interrupted_while_starting(signum, frame) -> None:
    """The SIGINT handler of the start: one line, exit status 130, nothing of the imports unwound
    (no output exists yet)."""
    try:
        sys.stdout.flush()
        sys.stderr.write(f'\n{STARTING_LINE}\n')
        sys.stderr.flush()
    finally:
        os._exit(130)


def guard_startup() -> bool:
    """Install the start's SIGINT handler if this process is a command line of the project (see the
    module docstring); returns whether it was installed."""
    if _previous or os.environ.get('MMSEG_CLIP_WSSS_TRACEBACK'):
        return False
    if not is_tool_command(getattr(sys, 'orig_argv', sys.argv), sys.argv[0] if sys.argv else None):
        return False
    try:
        _previous.append(signal.signal(signal.SIGINT, _interrupted_while_starting))
    except ValueError:  # not the main thread: signals are the main thread's
        return False
    return True


def end_startup_guard() -> None:
    """Give SIGINT back to the handler it had before :func:`guard_startup` (Python's: Ctrl-C raises
    ``KeyboardInterrupt``); nothing when no guard is installed."""
    if _previous:
        signal.signal(signal.SIGINT, _previous.pop())
