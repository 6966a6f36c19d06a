"""Files written atomically: a temporary file beside the target, renamed into place, so that a run
that is interrupted (Ctrl-C) or killed never leaves a half-written file under the target's name."""
import json
import os
import os.path as osp
import secrets
from contextlib import contextmanager
from typing import IO, Iterator

__all__ = ['atomic_file', 'write_json_atomically']


@contextmanager
def atomic_file(path: str, mode: str = 'w', **open_kwargs) -> Iterator[IO]:
    """Open a temporary file ``.<name>.<random>.tmp`` beside ``path`` (parent folders made) and
    rename it to ``path`` (:func:`os.replace`) when the block ends; an error or interruption in the
    block removes it and leaves ``path`` as it was.

    Args:
        path (str): The file to write.
        mode (str): ``'w'`` (text) or ``'wb'`` (bytes). Defaults to ``'w'``.
        **open_kwargs: More arguments of :func:`open` (``encoding``, ``newline``).

    Yields:
        file: The open temporary file.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = osp.join(directory, f'.{osp.basename(path)}.{secrets.token_hex(4)}.tmp')
    try:
        with open(tmp, mode.replace('w', 'x'), **open_kwargs) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomically(path: str, data, indent: int = 2) -> str:
    """Write ``data`` as JSON (a trailing newline) through :func:`atomic_file`; returns ``path``."""
    with atomic_file(path) as f:
        json.dump(data, f, indent=indent)
        f.write('\n')
    return path
