"""Arguments shared by ``train`` and ``test``: mmseg's own (``--work-dir``, ``--cfg-options``,
``--launcher``), so an mmseg user needs nothing new; and the ``--cfg-options`` merge of every tool.

mmseg's tools merge ``--cfg-options`` with mmengine's ``Config.merge_from_dict``, which adds a key the
config does not have without a word: a misspelt ``model.backbone.pretraned=...`` ends in a
``TypeError`` deep in the build, a misspelt ``trian_cfg.max_iters=4`` in a full training.
:func:`merge_cfg_options` refuses, before any work, a key one of whose parts is not in the config but
is one typo (a letter missing, added or changed, or two letters swapped) away from a key that is
there; any other new key is added, as mmengine adds it, with a warning naming the config's closest
keys. :func:`naming_cfg_options` turns a build's ``TypeError`` into an error naming the option.
"""
import argparse
import difflib
import inspect
import logging
import os
import os.path as osp
import re
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import print_log

from mmseg_clip_wsss.apis.config_options import parse_option_value
from mmseg_clip_wsss.apis.preflight import ConfigMismatchError, MissingAssetError, read_config
from mmseg_clip_wsss.datasets.errors import DatasetError
from mmseg_clip_wsss.registry import DATASETS, MODELS, TRANSFORMS

#: Errors whose message is complete already (file or option, and the fix): passed on unchanged.
_COMPLETE_ERRORS = (ConfigMismatchError, MissingAssetError, DatasetError)

__all__ = ['add_runner_args', 'add_local_rank_arg', 'load_runner_config', 'merge_cfg_options', 'naming_cfg_options',
           'one_typo_apart', 'CfgOptionsAction', 'naming_clip_download', 'add_cfg_options_arg',
           'CFG_OPTIONS_HELP']

#: The help text of every ``--cfg-options``: what :class:`CfgOptionsAction` does with a value.
CFG_OPTIONS_HELP = ('override settings of the config, as KEY=VALUE pairs; spaces inside a value are '
                    'kept, a comma splits a value into a list as in mmengine (KEY=a,b is [a, b]) unless '
                    'it is inside quotes (KEY="\'a, b\'" is the text a, b; KEY="[\'a, b\', c]"), and '
                    'brackets must pair (KEY="[1, 2]", KEY="(1, 2)")')


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` (``--cfg-options KEY=VALUE ...``), the one ``--cfg-options`` action of
    every tool, with three differences:

    - a value or list element in matching quotes is kept whole, commas included (mmengine splits at
      every comma); a number in quotes is still the number;
    - spaces inside a value are kept: mmengine removes every space of a value before parsing it, so
      ``"model.text_encoder.prompt.templates=a photo of a {}."`` arrived as ``'aphotoofa{}.'``. Lists,
      tuples, numbers, booleans and ``None`` parse as mmengine parses them (``KEY=1,2``,
      ``KEY=[a, b]``, ``KEY=(1, 2)``, ``KEY=0.5``, ``KEY=True``); spaces around an element are dropped,
      those inside a string element are kept;
    - an argument without ``=`` (or without a key), or a value whose brackets do not pair, is refused
      through argparse, naming it and the form, instead of a ``ValueError``/``AssertionError``
      traceback (or mmengine's endless recursion on ``KEY=[1],[2]``).
    """

    def __call__(self, parser, namespace, values, option_string=None):
        option = option_string or '--cfg-options'
        options = dict(getattr(namespace, self.dest, None) or {})
        for item in values or []:
            if '=' not in item or not item.split('=', 1)[0]:
                parser.error(f'argument {option}: {item!r} is no KEY=VALUE pair; '
                             'write each setting as KEY=VALUE, e.g. cam_cfg.bg_threshold=0.4 '
                             'model.backbone.pretrained=FILE')
            key, value = item.split('=', 1)
            if '' in key.split('.'):
                parser.error(f'argument {option}: {item!r}: the key {key!r} has an empty part (a dot '
                             'too many, at its start or its end); write it as the config nests it, '
                             'e.g. model.backbone.pretrained=FILE')
            try:
                options[key] = self._parse_iterable(value)
            except ValueError as err:
                parser.error(f'argument {option}: {item!r}: {err}; pair each ( with ) and each [ with ], '
                             'e.g. KEY=[1,2] or KEY="[(1, 2), (3, 4)]"')
        setattr(namespace, self.dest, options)

    #: The value parser, spaces inside a string kept (:mod:`mmseg_clip_wsss.apis.config_options`).
    _parse_iterable = staticmethod(parse_option_value)


def _missing_part(cfg: Config, key: str) -> Optional[Tuple[str, str, List[str], bool]]:
    """The first part of ``key`` that ``cfg`` lacks: (the key up to it, the part, the keys beside
    it, whether it is an argument of the registered type of the dict it goes into); None when ``key``
    is there or a part leads into no dict of the config (a list index, a value)."""
    node = cfg
    parts = key.split('.')
    for i, part in enumerate(parts):
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, (dict, Config, ConfigDict)) and part in node:
            node = node[part]
        elif isinstance(node, (dict, Config, ConfigDict)):
            known = i + 1 == len(parts) and _takes_argument(node.get('type'), part)
            return '.'.join(parts[:i + 1]), part, [str(k) for k in node.keys()], known
        else:
            return None
    return None


def _takes_argument(type_name, argument: str) -> bool:
    """Whether the class a config's ``type`` names (in the plugin's registries) or one of its bases
    has a constructor argument ``argument`` (a default the config leaves out, e.g. ``grad_cam``)."""
    if not isinstance(type_name, str):
        return False
    for registry in (MODELS, DATASETS, TRANSFORMS):
        cls = registry.get(type_name)
        if isinstance(cls, type):
            return any(argument in inspect.signature(klass.__init__).parameters
                       for klass in cls.__mro__ if '__init__' in vars(klass))
    return False


def one_typo_apart(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by one edit: a letter missing, added or changed, or two
    neighbouring letters swapped (``modle`` / ``model``, ``bg_treshold`` / ``bg_threshold``)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and
                                  a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def merge_cfg_options(cfg: Config, options: Optional[Dict]) -> List[str]:
    """Merge ``--cfg-options`` into ``cfg`` as mmseg's tools do (``Config.merge_from_dict``), after
    refusing misspelt keys; a new key is added with a warning naming the closest keys beside it,
    unless it is a constructor argument of the dict's registered ``type`` (left at its default).

    Args:
        cfg (Config): The config, changed in place.
        options (dict, optional): The parsed ``--cfg-options`` (None: nothing to merge).

    Returns:
        list[str]: The keys that the config did not have and no constructor takes (added).

    Raises:
        ConfigMismatchError: a part of a key is not in the config but one typo away from a key
            beside it (:func:`one_typo_apart`), e.g. ``modle.backbone.pretrained`` (``model``),
            naming the key and the config's key; nothing is merged.
    """
    if not options:
        return []
    if 'model' in options and not isinstance(options['model'], dict):
        raise ConfigMismatchError(
            f'--cfg-options model={options["model"]!r}: the model is a dict the tools build '
            '(type=..., ...), not a value; set a key inside it, e.g. model.backbone.pretrained=FILE. '
            'Nothing was run.')
    added = []
    for key in options:
        missing = _missing_part(cfg, key)
        if missing is None:
            continue
        where, part, beside, known = missing
        if known:  # an argument of the type the config leaves at its default
            continue
        typo = [k for k in beside if one_typo_apart(part, k)]
        if typo:
            raise ConfigMismatchError(
                f'--cfg-options {key}: the config has no {where!r}; it has {typo[0]!r} there (a '
                f'misspelling?). Correct the key (a key one typo away from one of the config\'s is '
                'refused, not added); nothing was run.')
        added.append(key)
        close = difflib.get_close_matches(part, beside, n=3)
        print_log(f'--cfg-options {key}: the config has no such key; it is added'
                  + (f' (the config has {", ".join(close)} there: a misspelling?)' if close else ''),
                  logger='current', level=logging.WARNING)
    cfg.merge_from_dict(options)
    return added


def _raised_while_building(err: BaseException) -> bool:
    """Whether ``err`` passed through a registry build (mmengine's ``build_from_cfg``) on its way up."""
    frame = err.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_name == 'build_from_cfg':
            return True
        frame = frame.tb_next
    return False


@contextmanager
def naming_cfg_options(options: Optional[Dict]) -> Iterator[None]:
    """Run the block (the build of a model, and the run); with ``--cfg-options`` given, a
    ``TypeError`` or ``ValueError`` raised while a registry builds an object from the config
    (mmengine's ``build_from_cfg``: where the config's values become arguments) that carries no
    complete message of its own (one of :data:`~mmseg_clip_wsss.apis.preflight` 's errors, a
    dataset's, or one that names a given option) is re-raised naming the options: an unexpected
    keyword argument names its key, an error that quotes one given value (``invalid literal for
    int() with base 10: 'abc'``) that value's key, any other error (``None`` where a list is needed,
    ...) every key given. An error raised elsewhere (a run's step) goes on as it is: the options are
    not blamed.

    Raises:
        ConfigMismatchError: naming the option(s), the error and the fix.
    """
    try:
        yield
    except (TypeError, ValueError) as err:
        if not options or isinstance(err, _COMPLETE_ERRORS) or any(k in str(err) for k in options) \
                or not _raised_while_building(err):
            raise  # a message that names an option it was given is complete
        found = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        keys = [k for k in options if found and k.split('.')[-1] == found.group(1)]
        if keys:
            raise ConfigMismatchError(
                f'--cfg-options {keys[0]}: {found.group(1)!r} is no argument of what the config builds '
                f'there ({err}); check the key against the config (its spelling, and where it goes), '
                'e.g. with `python -c "from mmengine import Config; '
                'print(Config.fromfile(CONFIG).pretty_text)"`.') from err
        quoted = [k for k, v in options.items() if isinstance(v, str) and repr(v) in str(err)]
        named = quoted if len(quoted) == 1 else list(options)  # the one value the error quotes, else all
        given = ' '.join(f'{k}={options[k]!r}' for k in named)
        raise ConfigMismatchError(
            f'{"TypeError: " if isinstance(err, TypeError) else ""}{err} -- with --cfg-options {given}: check these values against '
            'the config (the type it holds there: a list, a number, a dict ...); '
            'a value with a comma is a list, e.g. KEY=a,b.') from err


@contextmanager
def naming_clip_download(config: str) -> Iterator[None]:
    """Run the block; open_clip's ``RuntimeError`` for weights it could not download (``Failed to
    download weights for tag 'openai'``, e.g. offline) is re-raised naming the tag and the fix.

    Raises:
        MissingAssetError: naming the tag, ``config`` and the ``--cfg-options`` that give local files.
    """
    try:
        yield
    except RuntimeError as err:
        found = re.search(r"Failed to download weights for tag '([^']*)'", str(err))
        if not found:
            raise
        raise MissingAssetError(
            f'{config}: the CLIP weights of pretrained tag {found.group(1)!r} could not be downloaded '
            f'(open_clip: {err}). Without internet, download them elsewhere and give the '
            'file: --cfg-options model.backbone.pretrained=FILE model.text_encoder.pretrained=FILE '
            '(README, "Pretrained weights").') from err


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--work-dir``, ``--cfg-options``, ``--launcher`` and ``--local-rank`` to ``parser``."""
    parser.add_argument('--work-dir', help='the dir to save logs, checkpoints and metrics')
    add_cfg_options_arg(parser, 'train_cfg.max_iters=100 "model.backbone.init_cfg=None"')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    add_local_rank_arg(parser)


def add_cfg_options_arg(parser: argparse.ArgumentParser, example: str = '') -> None:
    """Add ``--cfg-options`` (:class:`CfgOptionsAction`, help :data:`CFG_OPTIONS_HELP`) to ``parser``;
    ``example``: settings the help text shows as an example of the tool (none: no example)."""
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help=CFG_OPTIONS_HELP + (f'; e.g. {example}' if example else ''))


def add_local_rank_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--local-rank`` (also ``--local_rank``), which torch.distributed launchers pass (torch >= 2.0:
    ``--local-rank``) to every process of a distributed run."""
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help='rank of this process on its machine; set by the distributed launcher '
                        '(torch.distributed.launch), not by hand')


def load_runner_config(args: argparse.Namespace) -> Config:
    """``args.config`` with ``--cfg-options``, the launcher and the work dir (command line > config >
    ``./work_dirs/<config name>``) applied."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = read_config(args.config)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
