"""Prompts learned on image-level labels, saved and loaded like a checkpoint.

A learned-prompts file (``.pth``, written by :func:`save_learned_prompts`, e.g. through
``tools/tune_prompts.py``) holds everything needed to prompt a frozen CLIP the way it was tuned:

- ``prompt``: the prompt-learner config (``dict(type='CoOpPromptLearner', n_ctx=..., ...)``);
- ``state_dict``: the learned context vectors of that learner;
- ``rows``: the prompted names of every text row, in order (the foreground classes, then the
  background words), and ``class_names``: the dataset's class list the rows come from;
- ``clip``: the CLIP it was tuned on: ``model_name``, ``pretrained`` and a ``fingerprint`` (a SHA-1 of
  the image- and text-tower weights), since the context only means something to that CLIP;
- ``meta``: how it was tuned (loss, schedule, figures), for the record.

:func:`load_learned_prompts` refuses a file whose rows or CLIP differ from the model's, naming the file,
what differs and the fix (:class:`LearnedPromptsMismatchError`).
"""
import hashlib
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn

__all__ = ['LEARNED_PROMPTS_FORMAT', 'LearnedPromptsMismatchError', 'clip_fingerprint',
           'read_learned_prompts', 'save_learned_prompts', 'load_learned_prompts']

#: Format tag and version stored in every learned-prompts file.
LEARNED_PROMPTS_FORMAT = 'mmseg_clip_wsss.learned_prompts/1'

_TUNE_FIX = ('tune prompts for this model with `python tools/tune_prompts.py CONFIG` (the config of '
             'the model that loads them), or point `prompts=` to the file tuned for it')


class LearnedPromptsMismatchError(ValueError):
    """A learned-prompts file that does not fit the model (other rows or another CLIP)."""


def clip_fingerprint(*modules: nn.Module) -> str:
    """SHA-1 (hex, 16 digits) of the parameters of ``modules`` (names, shapes, dtypes and values).

    Args:
        *modules (nn.Module): The CLIP towers, e.g. the image-tower backbone and the text tower.

    Returns:
        str: The fingerprint; equal for equal weights, whatever device they are on.
    """
    digest = hashlib.sha1()
    for i, module in enumerate(modules):
        for name, param in module.named_parameters():
            value = param.detach().cpu().contiguous()
            digest.update(f'{i}.{name}:{tuple(value.shape)}:{value.dtype}'.encode())
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _plain(obj):
    """Config dicts and tuples as plain dicts and lists (a file that ``weights_only`` loading reads)."""
    return json.loads(json.dumps(obj))


def save_learned_prompts(path: str, prompt_cfg: dict, state_dict: Dict[str, torch.Tensor],
                         rows: Sequence[Sequence[str]], class_names: Sequence, clip: dict,
                         meta: Optional[dict] = None) -> str:
    """Write a learned-prompts file (atomically: a temporary file renamed into place).

    Args:
        path (str): The ``.pth`` file to write (its directory is made).
        prompt_cfg (dict): The prompt-learner config (``type`` and options).
        state_dict (dict): The learner's state dict (the context vectors).
        rows (Sequence[Sequence[str]]): Prompted names of every text row.
        class_names (Sequence): The dataset's class list (entries may be synonym lists).
        clip (dict): ``model_name``, ``pretrained`` and ``fingerprint`` (:func:`clip_fingerprint`).
        meta (dict, optional): Anything else worth keeping (schedule, loss history).

    Returns:
        str: ``path``.
    """
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    record = dict(format=LEARNED_PROMPTS_FORMAT, prompt=_plain(prompt_cfg),
                  state_dict={k: v.detach().cpu().clone() for k, v in state_dict.items()},
                  rows=[list(r) for r in rows], class_names=_plain(class_names),
                  clip=_plain(clip), meta=_plain(meta or {}))
    tmp = path + '.tmp'
    torch.save(record, tmp)
    os.replace(tmp, path)
    return path


def read_learned_prompts(path: str) -> dict:
    """Read and validate a learned-prompts file (no model needed).

    Raises:
        FileNotFoundError: the file does not exist (the message names the command that makes it).
        ValueError: the file is not a learned-prompts file of this format.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'learned prompts {path} do not exist; make them with '
                                '`python tools/tune_prompts.py CONFIG` (it writes the file of the '
                                "config's `model.prompts`) or fix the path.")
    try:
        record = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # a truncated file, a pickle of other objects
        raise ValueError(f'learned prompts {path} cannot be read ({type(err).__name__}: {err}); '
                         'write it again with `python tools/tune_prompts.py CONFIG`.') from err
    keys = ('format', 'prompt', 'state_dict', 'rows', 'class_names', 'clip')
    if not isinstance(record, dict) or record.get('format') != LEARNED_PROMPTS_FORMAT or \
            any(k not in record for k in keys):
        raise ValueError(f'{path} is not a learned-prompts file ({LEARNED_PROMPTS_FORMAT}: keys '
                         f'{keys}); learned prompts are written by `python tools/tune_prompts.py '
                         'CONFIG` -- a model checkpoint goes to make_pseudo_masks as CHECKPOINT instead.')
    return record


def _row_difference(expected: List[List[str]], found: List[List[str]]) -> str:
    if len(expected) != len(found):
        only_file = [r for r in found if r not in expected]
        only_model = [r for r in expected if r not in found]
        return (f'{len(found)} text rows, the model has {len(expected)}; rows only in the file: '
                f'{only_file}, only in the model: {only_model}')
    for i, (a, b) in enumerate(zip(expected, found)):
        if list(a) != list(b):
            return f'row {i} is {list(b)}, the model prompts {list(a)}'
    return ''


def load_learned_prompts(path: str, rows: Sequence[Sequence[str]], fingerprint: str) -> dict:
    """Read a learned-prompts file and check that it fits a model.

    Args:
        path (str): The file.
        rows (Sequence[Sequence[str]]): The model's prompted names of every text row, in order.
        fingerprint (str): :func:`clip_fingerprint` of the model's CLIP towers.

    Returns:
        dict: The record (``prompt``, ``state_dict``, ``rows``, ``class_names``, ``clip``, ``meta``).

    Raises:
        FileNotFoundError, ValueError: see :func:`read_learned_prompts`.
        LearnedPromptsMismatchError: the rows (class list, synonyms, background words) or the CLIP
            differ from the model's; the message names the file, the difference and the fix.
    """
    record = read_learned_prompts(path)
    diff = _row_difference([list(r) for r in rows], record['rows'])
    if diff:
        raise LearnedPromptsMismatchError(
            f'learned prompts {path} were tuned for other text rows (class list, synonyms or background '
            f'words): {diff} (tuned for classes '
            f"{record['class_names']}); {_TUNE_FIX}.")
    clip = record['clip']
    if clip.get('fingerprint') != fingerprint:
        raise LearnedPromptsMismatchError(
            f"learned prompts {path} were tuned on another CLIP ({clip.get('model_name')!r}, "
            f"pretrained={clip.get('pretrained')!r}, fingerprint {clip.get('fingerprint')}); this "
            f'model\'s CLIP has fingerprint {fingerprint}; {_TUNE_FIX}.')
    return record
