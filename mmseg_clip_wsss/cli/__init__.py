"""Command lines: the one home of every ``argparse`` parser of the project.

Each tool is a module ``mmseg_clip_wsss.cli.<tool>`` with ``parse_args(argv)``, ``main(argv)`` (the
parsed run; returns its result and raises on bad input, so tests drive it in-process) and ``run()``
(``main`` with the errors that carry a complete message printed as ``error: ...``, exit status 1,
instead of a traceback). ``tools/<tool>.py`` and ``python -m mmseg_clip_wsss.cli.<tool>`` call
``run()``; the work itself lives in the library layers below (``apis``, ``cam``, ``clip_pretrain``,
``datasets``, ``demo``, ``benchmark``).
"""
import json
import os
import os.path as osp
import sys
from typing import Callable, Dict, Optional, Tuple

from mmseg_clip_wsss.apis.preflight import ConfigMismatchError, MissingAssetError
from mmseg_clip_wsss.datasets.errors import DatasetError
from mmseg_clip_wsss.datasets.transforms.loading import CorruptImageError
from mmseg_clip_wsss.engine.checkpoint_check import CheckpointMismatchError
from mmseg_clip_wsss.engine.hooks import NonFiniteLossError

__all__ = ['USER_ERRORS', 'INPUT_ERRORS', 'run_tool', 'report_json']

#: Errors of the tools that carry a complete message (file and fix): printed without a traceback.
USER_ERRORS = (MissingAssetError, ConfigMismatchError, CheckpointMismatchError, NonFiniteLossError,
               DatasetError, CorruptImageError)

#: Errors of the data and CLIP tools whose messages name the file and the fix.
INPUT_ERRORS = (FileNotFoundError, FileExistsError, ValueError)


def report_json(result: Dict, out: Optional[str] = None) -> Dict:
    """Print ``result`` as JSON and, with ``out``, write it there too (its folder made); returns it."""
    if out:
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return result


def run_tool(main: Callable[[], object], also: Tuple[type, ...] = ()) -> None:
    """Run a command-line tool's ``main``; a :data:`USER_ERRORS` error (or one of ``also``, e.g.
    :data:`INPUT_ERRORS`) ends it with its message (``error: ...``, exit status 1) instead of a
    traceback. With the environment variable ``MMSEG_CLIP_WSSS_TRACEBACK=1`` the traceback is shown
    (to debug the tool itself)."""
    try:
        main()
    except USER_ERRORS + tuple(also) as err:
        if os.environ.get('MMSEG_CLIP_WSSS_TRACEBACK'):
            raise
        sys.exit(f'error: {err}')
