"""Refuse a weight file that is no whole torch file, naming it, what is wrong and the fix.

``torch.load`` (under mmengine's ``_load_checkpoint`` and open_clip's loader) reads an empty file as
``EOFError``, a zip-format file cut short as ``PytorchStreamReader failed reading zip archive``, a
legacy-format file cut short as ``unexpected EOF`` and any other file as an ``UnpicklingError`` or a
stray ``KeyError``: none says which file, nor that downloading or copying it again is the fix.
:func:`check_weight_file` looks at the file's format first (every tool that reads CLIP weights or a
checkpoint calls it, or :func:`load_weight_file` around the load itself).

The formats: torch's zip format (``torch.save`` since 1.6) starts with the local-file signature
``PK\\x03\\x04`` and ends with the zip end-of-central-directory record, which a file cut short lacks;
the legacy format starts with a pickle protocol byte (``\\x80``); a TorchScript archive (OpenAI's
released CLIP files) is a zip too.
"""
import os.path as osp
import pickle
import zipfile
from typing import Callable, Optional, TypeVar

__all__ = ['WeightFileError', 'broken_weight_file', 'check_weight_file', 'load_weight_file']

T = TypeVar('T')

_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTOCOL = b'\x80'
#: Words of torch's read errors of a damaged file (the errors of a sound file are left alone).
_READ_ERROR_WORDS = ('PytorchStreamReader', 'unexpected EOF', 'corrupted', 'zip archive')


class WeightFileError(ValueError):
    """A weight file (CLIP weights, a checkpoint) that is empty, cut short or not a torch file."""


def broken_weight_file(path: str) -> Optional[str]:
    """What is wrong with weight file ``path`` by its format, or None when it looks whole.

    Args:
        path (str): An existing file.

    Returns:
        str | None: ``'is empty (0 bytes)'``, ``'is cut short (N bytes: ...)'`` or ``'is not a torch
        file (...)'``; None for a whole zip-format file or a legacy-format one (whose end is only
        found by reading it: :func:`load_weight_file`).
    """
    size = osp.getsize(path)
    if size == 0:
        return 'is empty (0 bytes)'
    with open(path, 'rb') as f:
        head = f.read(4)
    if head == _ZIP_MAGIC:
        if not zipfile.is_zipfile(path):
            return f'is cut short ({size} bytes: a torch zip file without its end record)'
        return None
    if head[:1] == _PICKLE_PROTOCOL:
        return None
    return f'is not a torch file (it starts with {head!r}, not a torch zip or pickle)'


def _message(path: str, what: str, problem: str, fix: str) -> str:
    return f'{what} {path} {problem}: it is not a whole checkpoint. Fix: {fix}'


def check_weight_file(path: str, fix: str, what: str = 'weight file') -> None:
    """Raise :class:`WeightFileError` when ``path`` is empty, cut short or not a torch file.

    Args:
        path (str): The file (one that does not exist is left to the caller's own message).
        fix (str): What to do, e.g. ``'download or copy it again'``.
        what (str): What the file is, for the message (``'checkpoint'``, ``'CLIP weights'``).

    Raises:
        WeightFileError: naming ``path``, what is wrong and ``fix``.
    """
    if not osp.isfile(path):
        return
    problem = broken_weight_file(path)
    if problem is not None:
        raise WeightFileError(_message(path, what, problem, fix))


def load_weight_file(path: str, load: Callable[[], T], fix: str, what: str = 'weight file') -> T:
    """``load()`` (which reads ``path``) after :func:`check_weight_file`, with the read errors of a
    damaged file (a legacy-format file cut short, a zip member damaged) turned into
    :class:`WeightFileError`.

    Args:
        path (str): The file ``load`` reads.
        load (Callable[[], T]): Reads it, e.g. ``lambda: torch.load(path)``.
        fix (str): What to do, for the message.
        what (str): What the file is, for the message.

    Returns:
        T: What ``load`` returns.

    Raises:
        WeightFileError: the file is damaged, naming it and ``fix``.
    """
    check_weight_file(path, fix, what)
    try:
        return load()
    except (EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise WeightFileError(_message(path, what, f'cannot be read ({type(err).__name__}: {err})',
                                       fix)) from err
    except RuntimeError as err:
        if not any(word in str(err) for word in _READ_ERROR_WORDS):
            raise
        first = str(err).splitlines()[0][:200]
        raise WeightFileError(_message(path, what, f'is cut short or damaged ({first})', fix)) from err
