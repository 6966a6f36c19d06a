"""Refuse a checkpoint that does not fit the model, naming the file, the keys and both shapes.

mmengine's ``load_checkpoint`` (``load_from``, ``--resume``, ``tools/test.py``) loads with
``strict=False`` and only *warns* about tensors whose shape differs: the model then runs with
randomly initialised layers wherever the checkpoint came from another config (other
``num_classes``, channels, depths). :func:`check_checkpoint_fits` turns that into an error.
"""
import os.path as osp
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model

from mmseg_clip_wsss.registry import MODELS
from .weight_files import load_weight_file

__all__ = ['CHECKPOINT_FIX', 'CheckpointMismatchError', 'check_checkpoint_fits', 'loadable_shapes',
           'check_checkpoint_for_model', 'build_model_from_checkpoint']


#: What to do about a damaged checkpoint file (empty, cut short, not a torch file).
CHECKPOINT_FIX = ('copy it again from where it was trained, or train again with tools/train.py (a '
                  'checkpoint being written when the training stopped: name an earlier one).')


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's tensors do not fit the model (shape mismatch or missing weights)."""


def loadable_shapes(model: nn.Module) -> Dict[str, Tuple[int, ...]]:
    """Shape of every parameter and persistent buffer ``load_state_dict`` may fill, by key."""
    shapes = {}
    for prefix, module in model.named_modules():
        prefix = f'{prefix}.' if prefix else ''
        for name, param in module._parameters.items():
            if param is not None:
                shapes[prefix + name] = tuple(param.shape)
        for name, buf in module._buffers.items():
            if buf is not None and name not in module._non_persistent_buffers_set:
                shapes[prefix + name] = tuple(buf.shape)
    return shapes


def _revise(keys: Iterable[str], revise_keys: Sequence[Tuple[str, str]]) -> Dict[str, str]:
    out = {}
    for key in keys:
        new = key
        for pattern, repl in revise_keys:
            new = re.sub(pattern, repl, new)
        out[new] = key
    return out


def _rename_legacy(model: nn.Module, keys: Dict[str, str]) -> Dict[str, str]:
    """Apply the ``LEGACY_STATE_DICT_KEYS`` (old -> new local key) of the model's modules, as their
    load hooks do."""
    for prefix, module in model.named_modules():
        prefix = f'{prefix}.' if prefix else ''
        for old, new in getattr(module, 'LEGACY_STATE_DICT_KEYS', {}).items():
            if prefix + old in keys and prefix + new not in keys:
                keys[prefix + new] = keys.pop(prefix + old)
    return keys


def _shown(keys: List[str], limit: int = 10) -> str:
    return ', '.join(keys[:limit]) + (f', ... ({len(keys)} in all)' if len(keys) > limit else '')


def check_checkpoint_fits(model: nn.Module,
                          state_dict: dict,
                          filename: Optional[str] = None,
                          revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.', ''), ),
                          allow_missing: bool = False) -> None:
    """Raise :class:`CheckpointMismatchError` when ``state_dict`` does not fit ``model``.

    Args:
        model (nn.Module): The model (unwrapped).
        state_dict (dict): The checkpoint's state dict (``checkpoint['state_dict']``).
        filename (str, optional): The checkpoint file, for the message.
        revise_keys (Sequence[tuple]): ``(pattern, replacement)`` applied to the checkpoint keys
            first, as mmengine does (``module.`` of DDP checkpoints is dropped). Defaults to
            ``((r'^module\\.', ''),)``. Keys that a module renamed since (its
            ``LEGACY_STATE_DICT_KEYS``) are then mapped as its load hook maps them.
        allow_missing (bool): Accept weights of the model that the checkpoint lacks (a partial
            checkpoint, e.g. of the backbone only). Defaults to False.

    Raises:
        CheckpointMismatchError: Any tensor of a different shape (key, checkpoint shape, model
            shape), or, unless ``allow_missing``, model weights absent from the checkpoint.
    """
    ckpt = _rename_legacy(model, _revise(state_dict.keys(), revise_keys))
    shapes = loadable_shapes(model)
    mismatched = []
    for key, original in ckpt.items():
        value = state_dict[original]
        if key in shapes and hasattr(value, 'shape') and tuple(value.shape) != shapes[key]:
            mismatched.append(f'{key}: checkpoint {tuple(value.shape)} vs model {shapes[key]}')
    # keys the model itself saves (state-dict hooks may leave some out, e.g. a frozen text tower)
    missing = [] if allow_missing else [k for k in model.state_dict() if k not in ckpt]
    if not mismatched and not missing:
        return
    source = f'checkpoint {filename}' if filename else 'the checkpoint'
    lines = [f'{source} does not fit the model: it was saved from another config.']
    if mismatched:
        lines.append(f'  shape mismatch ({len(mismatched)} tensor(s)):')
        lines += [f'    {m}' for m in mismatched[:20]]
        if len(mismatched) > 20:
            lines.append(f'    ... ({len(mismatched)} in all)')
    if missing:
        lines.append(f'  weights of the model missing from the checkpoint: {_shown(missing)}')
    lines.append(
        '  fix: use the config the checkpoint was trained with (mmengine stores it in the checkpoint '
        "as checkpoint['meta']['cfg'], and its work_dir holds a copy), or a checkpoint trained "
        'with this config; for weights of a part only (e.g. the backbone) use that part\'s '
        "init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...) instead of load_from.")
    raise CheckpointMismatchError('\n'.join(lines))


def check_checkpoint_for_model(model: nn.Module, checkpoint: dict, filename: Optional[str] = None,
                               tool: str = 'this tool') -> None:
    """Refuse a checkpoint given for a training-free model, or one that does not fit ``model``: the
    one check of every tool that loads a trained checkpoint into a model built from a config.

    Args:
        model (nn.Module): The model built from the config (unwrapped).
        checkpoint (dict): The loaded checkpoint (``state_dict`` and ``meta``, or a bare state dict).
        filename (str, optional): The checkpoint file, for the message.
        tool (str): The tool, for the message.

    Raises:
        CheckpointMismatchError: ``model`` is training-free (its class sets ``training_free = True``:
            it runs as the config builds it, and a checkpoint's tensors would be ignored), or the
            checkpoint was saved from another config (:func:`check_checkpoint_fits`).
    """
    if getattr(model, 'training_free', False):
        raise CheckpointMismatchError(
            f'{tool}: checkpoint {filename or "(given)"} was given for {type(model).__name__}, a '
            'training-free model: it runs as its config builds it (CLIP weights only) and takes no '
            'checkpoint, whose weights would be ignored. Leave the checkpoint out (tools/'
            'make_pseudo_masks.py CONFIG --out-dir DIR), or give the config it was trained with.')
    check_checkpoint_fits(model, checkpoint.get('state_dict', checkpoint), filename)


def build_model_from_checkpoint(cfg, checkpoint: str, device: Optional[str] = None,
                                tool: str = 'this tool') -> nn.Module:
    """Build ``cfg.model`` (mmseg's ``MODELS``), load ``checkpoint`` into it (it must fit:
    :func:`check_checkpoint_fits`) and move it to ``device`` (CUDA when there is one) in eval mode.

    Raises:
        FileNotFoundError: naming ``checkpoint`` when it does not exist (``tool`` names the caller).
        CheckpointMismatchError: when it was saved from another config, or ``cfg.model`` is
            training-free (:func:`check_checkpoint_for_model`).
        WeightFileError: the file is empty, cut short or not a torch file, naming it and the fix.
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'{tool}: checkpoint {checkpoint} does not exist (train the model '
                                'first with tools/train.py, or give the right path).')
    model = MODELS.build(cfg.model)
    ckpt = load_weight_file(checkpoint, lambda: _load_checkpoint(checkpoint, map_location='cpu'),
                            CHECKPOINT_FIX, f'{tool}: checkpoint')
    # mmengine only warns about tensors of another shape; a checkpoint of another config must fail
    check_checkpoint_for_model(model, ckpt, osp.abspath(checkpoint), tool)
    _load_checkpoint_to_model(model, ckpt)
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model.cfg = cfg
    return model.to(device).eval()
