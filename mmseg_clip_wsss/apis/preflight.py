"""Checks run before a runner is built, so a missing dataset or weight file fails at once.

Without them a missing VOC directory surfaces only after the model (and its pretrained weights) has
been built, as an error deep inside a dataloader. :func:`check_config_assets` names the missing path,
the config key that points to it and the documentation that prepares it.
"""
import os
import os.path as osp
import re
from typing import Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import DATASETS as ENGINE_DATASETS

from mmseg_clip_wsss.cam.protocol import CAMProtocol
from mmseg_clip_wsss.datasets.class_lists import dataset_classes
from mmseg_clip_wsss.datasets.class_names import class_name_key
from mmseg_clip_wsss.datasets.errors import DatasetError
from mmseg_clip_wsss.datasets.image_labels import background_mismatch, check_class_list
from mmseg_clip_wsss.models.text.vocabularies import readable_name, resolve_class_prompts
from mmseg_clip_wsss.registry import DATASETS

__all__ = ['MissingAssetError', 'ConfigMismatchError', 'read_config', 'check_config_assets',
           'check_config_classes']

_DATA_DOCS = 'docs/datasets.md (README: "Datasets")'
_WEIGHT_DOCS = 'README: "Pretrained weights"'
_WEIGHT_SUFFIXES = ('.pth', '.pt', '.bin', '.ckpt', '.safetensors')


class MissingAssetError(FileNotFoundError):
    """A dataset directory or weight file named by the config does not exist."""


class ConfigMismatchError(ValueError):
    """Parts of a config disagree (class counts of the model, the vocabulary, the prompts, the data)."""


def read_config(path: str, what: str = 'config', example: str = 'configs/demo/clip_wsss_clip-rn_demo.py'
                ) -> Config:
    """``Config.fromfile(path)``, a path that is no file refused naming it and the fix (mmengine's
    reader ended in a bare ``[Errno 2] No such file or directory``).

    Args:
        path (str): The config file.
        what (str): What the message calls it (``'config'``, ``'combination config'``...).
        example (str): A config of that kind, named in the fix.

    Raises:
        MissingAssetError: ``path`` does not exist (or is a folder).
    """
    if osp.isdir(path):
        raise MissingAssetError(f'{what} {path} is a folder, not a config file: give the path of a config '
                                f'file, e.g. {example}.')
    if not osp.isfile(path):
        where = '' if osp.isabs(path) else f' (relative to the working directory {os.getcwd()})'
        raise MissingAssetError(f'{what} {path} does not exist{where}: give the path of a config file, '
                                f'e.g. {example} (the configs/ folder of the source checkout).')
    return Config.fromfile(path)


def _datasets(cfg: Config, loaders: Tuple[str, ...]) -> Iterator[Tuple[str, dict]]:
    for key in loaders:
        loader = cfg.get(key)
        if not loader:
            continue
        dataset = loader.get('dataset', {})
        while 'dataset' in dataset:  # dataset wrappers (RepeatDataset, ...)
            dataset = dataset['dataset']
        for i, ds in enumerate(dataset.get('datasets', [dataset])):  # ConcatDataset
            yield (f'{key}.dataset' if 'datasets' not in dataset else f'{key}.dataset.datasets[{i}]',
                   ds)


def _local_weight_files(cfg: Config) -> Iterator[Tuple[str, str]]:
    model = cfg.get('model', {})
    text = model.get('text_encoder') or {}
    verifier = (model.get('test_cfg') or {}).get('verify_classes')
    verifier = verifier if isinstance(verifier, dict) else {}  # other values: the model names them
    for key, pretrained in (('model.text_encoder.pretrained', text.get('pretrained')),
                            ('model.test_cfg.verify_classes.clip_pretrained', verifier.get('clip_pretrained'))):
        if isinstance(pretrained, str) and pretrained.endswith(_WEIGHT_SUFFIXES):
            yield key, pretrained
    for part in ('backbone', 'neck', 'decode_head'):
        init_cfg = (model.get(part) or {}).get('init_cfg') or {}
        ckpt = init_cfg.get('checkpoint') if isinstance(init_cfg, dict) else None
        if isinstance(ckpt, str) and '://' not in ckpt and not ckpt.startswith(('torchvision', 'open-mmlab')):
            yield f'model.{part}.init_cfg.checkpoint', ckpt


def check_config_assets(cfg: Config, loaders: Tuple[str, ...] = ('train_dataloader',
                                                                  'val_dataloader')) -> None:
    """Raise :class:`MissingAssetError` naming every missing data root / local weight file.

    Args:
        cfg (Config): The final config (after ``--cfg-options``).
        loaders (tuple[str]): The dataloader keys that the job will use.
    """
    problems: List[str] = []
    for key, ds in _datasets(cfg, loaders):
        root = ds.get('data_root')
        if root and '://' not in root and not osp.isdir(root):
            problems.append(f'{key}.data_root: directory {osp.abspath(root)} does not exist. '
                            f'Prepare the dataset as {_DATA_DOCS} describes, or point to it with '
                            f'--cfg-options {key}.data_root=/path/to/it')
    for key, path in _local_weight_files(cfg):
        if not osp.isfile(path):
            problems.append(f'{key}: file {osp.abspath(path)} does not exist. Download it as '
                            f'{_WEIGHT_DOCS} describes, or set --cfg-options {key}=/path/to/it')
    if problems:
        raise MissingAssetError('config needs files that are not here:\n  - ' +
                                '\n  - '.join(dict.fromkeys(problems)))


def _dataset_classes(ds: dict):
    """Class names of a dataset config: ``metainfo.classes``, else its type's ``METAINFO``."""
    classes = (ds.get('metainfo') or {}).get('classes')
    if classes is not None:
        return classes  # checked by check_class_list (a string is refused, not split)
    ds_type = ds.get('type')
    if not isinstance(ds_type, str):
        return None
    cls = DATASETS.get(ds_type) or ENGINE_DATASETS.get(ds_type)
    meta = getattr(cls, 'METAINFO', None) or {}
    return list(meta['classes']) if meta.get('classes') is not None else None


def _text_problems(names, prompt, k_head: Optional[int],
                   where: str) -> Tuple[List[str], Optional[List[str]]]:
    """Problems of the class names ``names`` (config key ``where``) and the ``prompt`` config of a
    ``CLIPPromptTextEncoder``, and the class entries as written (None when unusable)."""
    try:
        k_text = len(resolve_class_prompts(names, where))
    except ValueError as err:  # DuplicateClassNameError included: it names both names
        return [str(err) if isinstance(err, DatasetError) else f'{where}={names!r}: {err}'], None
    problems: List[str] = []
    if k_head is not None and k_text != k_head:
        problems.append(
            f'model.decode_head.num_classes={k_head} but the vocabulary '
            f'{where}={names if isinstance(names, str) else "[...]"!r} has {k_text} classes: set '
            f'num_classes={k_text} in decode_head and neck, or give {k_head} class names.')
    prompt = prompt if isinstance(prompt, dict) else {}
    k_prompt = prompt.get('num_classes')
    if k_prompt is not None and k_prompt != k_text:
        problems.append(f'model.text_encoder.prompt.num_classes={k_prompt} disagrees with the '
                        f'{k_text} classes of {where}: drop prompt.num_classes or fix it.')
    ctx_init = prompt.get('ctx_init')
    if isinstance(ctx_init, (list, tuple)) and len(ctx_init) != k_text:
        problems.append(f'model.text_encoder.prompt.ctx_init has {len(ctx_init)} phrases but '
                        f'there are {k_text} classes: give one phrase per class, in class order.')
    return problems, list(dataset_classes(names) if isinstance(names, str) else names)


def _names_agree(data_name: str, text_entry) -> bool:
    """Whether a text-encoder entry (a name or synonyms) names a dataset class: some synonym is the
    same name (:func:`~mmseg_clip_wsss.datasets.class_names.class_name_key` of the readable names,
    ``'tvmonitor'`` is ``'tv monitor'``), or one's words hold the other's (CLIP-ES prompts ``'bird'``
    as ``'bird avian'``)."""
    def spellings(name: str) -> List[frozenset]:  # the words of the name as written and as prompted
        return [frozenset(re.findall(r'[a-z0-9]+', n.casefold())) for n in (name, readable_name(name))]

    data_key, data_words = class_name_key(readable_name(data_name)), spellings(data_name)
    for name in ([text_entry] if isinstance(text_entry, str) else list(text_entry)):
        if class_name_key(readable_name(name)) == data_key or \
                any(a <= b or b <= a for a in data_words for b in spellings(name)):
            return True
    return False


def _list_mismatch(key: str, classes: Sequence[str], entries: Sequence, where: str) -> Optional[str]:
    """Where the classes of a dataset and the text encoder's class list (config key ``where``,
    entries as written) disagree (see :func:`_names_agree`), or None."""
    fix = (f"row k of the text embeddings scores class k of the data: give {where} the dataset's "
           "classes in its order (a vocabulary name such as 'voc', or the same list)")
    if len(classes) != len(entries):
        return f'{key} has {len(classes)} classes but {where} has {len(entries)}: {fix}.'
    for k, (ours, theirs) in enumerate(zip(classes, entries)):
        if not _names_agree(ours, theirs):
            return f'{key} class {k} is {ours!r} but {where}[{k}] is {theirs!r}: {fix}.'
    return None


def _model_class_problems(model: dict) -> Tuple[List[str], Optional[List[str]], str, Optional[int]]:
    """Problems of the model's class counts and text encoder, its class names (None: no text
    encoder, or unusable names), the config key of those names and ``decode_head.num_classes``."""
    problems: List[str] = []
    head = model.get('decode_head')
    k_head = head.get('num_classes') if isinstance(head, dict) else None
    text, names = model.get('text_encoder'), None
    # a model that hands its text encoder the class list (TrainingFreeCLIPES) names it itself
    where = 'model.class_names' if 'class_names' in model else 'model.text_encoder.class_names'
    if isinstance(text, dict) and text.get('type') == 'CLIPPromptTextEncoder':
        class_names = model['class_names'] if 'class_names' in model else text.get('class_names', 'voc')
        problems, names = _text_problems(class_names, text.get('prompt'), k_head, where)
    neck = model.get('neck')
    k_neck = neck.get('num_classes') if isinstance(neck, dict) else None
    # without decode_head.num_classes, WSSSEncoderDecoder gives head and neck the text encoder's K
    k_model, source = (k_head, '') if k_head is not None or names is None else \
        (len(names), f' (the {len(names)} classes of {where})')
    if k_neck is not None and k_model is not None and k_neck != k_model:
        problems.insert(0, f'model.neck.num_classes={k_neck} (memory bank rows) but '
                        f'model.decode_head.num_classes={k_model}{source}: set both to the same K.')
    return problems, names, where, k_head


def _class_problems(cfg: Config, loaders: Tuple[str, ...]) -> List[str]:
    problems, text_names, where, k_head = _model_class_problems(cfg.get('model') or {})
    for key, ds in _datasets(cfg, loaders):
        classes = _dataset_classes(ds)
        if classes is None:
            continue
        try:
            classes = check_class_list(classes, f'{key}.metainfo')
        except DatasetError as err:
            problems.append(str(err))
            continue
        if k_head is not None and len(classes) != k_head:
            problems.append(f'{key} has {len(classes)} classes but model.decode_head.num_classes='
                            f'{k_head}: make them agree (decode_head, neck and text encoder '
                            'class_names change together).')
        mismatch = _list_mismatch(key, classes, text_names, where) if text_names is not None else None
        problems += [mismatch] if mismatch else []
        problems += _background_problems(cfg, key, classes)
    return problems


def _background_problems(cfg: Config, key: str, classes: Tuple[str, ...]) -> List[str]:
    """Whether the dataset and a weakly supervised model agree on the background class, and what
    pseudo masks of the config's ``cam_cfg`` hold without one (logged) or why they cannot be made."""
    model = cfg.get('model') or {}
    if model.get('type') != 'WSSSEncoderDecoder':
        return []
    background_index = model.get('background_index', 0)
    mismatch = background_mismatch(classes, background_index)
    if mismatch:
        return [f'{key}: {mismatch}']
    if background_index is None:
        try:
            rule = CAMProtocol.from_cfg(cfg.get('cam_cfg')).background_rule(None)
        except ValueError as err:
            return [f'{key} with cam_cfg: {err}']
        print_log(f'{key}: pseudo masks: {rule}.', logger='current')
    return []


def check_config_classes(cfg: Config, loaders: Tuple[str, ...] = ('train_dataloader',
                                                                   'val_dataloader')) -> None:
    """Raise :class:`ConfigMismatchError` naming the config file when its class lists disagree.

    Checked before anything is built: ``decode_head.num_classes`` against ``neck.num_classes``, the
    text encoder's vocabulary (``class_names``: empty, unknown, of another size, or two names of one
    class, :mod:`~mmseg_clip_wsss.datasets.class_names`), its prompts (``prompt.num_classes``,
    class-specific ``prompt.ctx_init``), the classes of the datasets (a tuple of distinct names, not a
    string), that they are the text encoder's class names in the same order (compared as prompted:
    ``'tvmonitor'`` is ``'tv monitor'``), and whether they and ``model.background_index`` agree on the
    background class. Without one, the log says what pseudo masks of ``cam_cfg`` hold there (the
    ignore value) or the check refuses a ``cam_cfg`` that needs one.

    Args:
        cfg (Config): The final config (after ``--cfg-options``).
        loaders (tuple[str]): The dataloader keys that the job will use.
    """
    problems = _class_problems(cfg, loaders)
    if problems:
        source = getattr(cfg, 'filename', None) or 'the config'
        raise ConfigMismatchError(f'config {source} is inconsistent:\n  - ' +
                                  '\n  - '.join(dict.fromkeys(problems)))
