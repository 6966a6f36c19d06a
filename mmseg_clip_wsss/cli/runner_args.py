"""Arguments shared by ``train`` and ``test``: mmseg's own (``--work-dir``, ``--cfg-options``,
``--launcher``), so an mmseg user needs nothing new; and the ``--cfg-options`` merge of every tool.

mmseg's tools merge ``--cfg-options`` with mmengine's ``Config.merge_from_dict``, which adds a key the
config does not have without a word: a misspelt ``model.backbone.pretraned=...`` ends in a
``TypeError`` deep in the build. :func:`merge_cfg_options` warns of each added key (with the config's
keys it is closest to) and :func:`naming_cfg_options` turns that ``TypeError`` into an error naming
the option.
"""
import argparse
import difflib
import logging
import os
import os.path as osp
import re
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import print_log

from mmseg_clip_wsss.apis.preflight import ConfigMismatchError

__all__ = ['add_runner_args', 'load_runner_config', 'merge_cfg_options', 'naming_cfg_options']


def _parent_keys(cfg: Config, key: str) -> Optional[List[str]]:
    """The keys beside ``key``'s last part in ``cfg`` (None: ``key`` is there, or its parent is not a
    dict of the config, e.g. a list index or a new section)."""
    node = cfg
    parts = key.split('.')
    for part in parts[:-1]:
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, (dict, Config, ConfigDict)) and part in node:
            node = node[part]
        else:
            return []
    if not isinstance(node, (dict, Config, ConfigDict)):
        return None
    return None if parts[-1] in node else [str(k) for k in node.keys()]


def merge_cfg_options(cfg: Config, options: Optional[Dict]) -> List[str]:
    """Merge ``--cfg-options`` into ``cfg`` as mmseg's tools do (``Config.merge_from_dict``), with a
    warning for each key the config does not have (it is added), naming the closest keys beside it.

    Args:
        cfg (Config): The config, changed in place.
        options (dict, optional): The parsed ``--cfg-options`` (None: nothing to merge).

    Returns:
        list[str]: The keys that the config did not have.
    """
    if not options:
        return []
    added = []
    for key in options:
        beside = _parent_keys(cfg, key)
        if beside is None:
            continue
        added.append(key)
        close = difflib.get_close_matches(key.split('.')[-1], beside, n=3)
        print_log(f'--cfg-options {key}: the config has no such key; it is added'
                  + (f' (the config has {", ".join(close)} there: a misspelling?)' if close else ''),
                  logger='current', level=logging.WARNING)
    cfg.merge_from_dict(options)
    return added


@contextmanager
def naming_cfg_options(options: Optional[Dict]) -> Iterator[None]:
    """Run the block; a ``TypeError`` of an unexpected keyword argument that is the last part of a
    ``--cfg-options`` key (a key the built class does not take) is re-raised naming that option.

    Raises:
        ConfigMismatchError: naming the option, the class's error and the fix.
    """
    try:
        yield
    except TypeError as err:
        found = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        keys = [k for k in (options or {}) if found and k.split('.')[-1] == found.group(1)]
        if not keys:
            raise
        raise ConfigMismatchError(
            f'--cfg-options {keys[0]}: {found.group(1)!r} is no argument of what the config builds there '
            f'({err}); check the key against the config (its spelling, and where it goes), e.g. with '
            '`python -c "from mmengine import Config; print(Config.fromfile(CONFIG).pretty_text)"`.') from err


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--work-dir``, ``--cfg-options``, ``--launcher`` and ``--local-rank`` to ``parser``."""
    parser.add_argument('--work-dir', help='the dir to save logs, checkpoints and metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, as key=value pairs (mmengine DictAction syntax), '
        'e.g. train_cfg.max_iters=100 "model.backbone.init_cfg=None"')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    # torch.distributed launchers pass --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_runner_config(args: argparse.Namespace) -> Config:
    """``args.config`` with ``--cfg-options``, the launcher and the work dir (command line > config >
    ``./work_dirs/<config name>``) applied."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
