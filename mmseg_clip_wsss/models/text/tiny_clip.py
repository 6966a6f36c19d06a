"""A tiny open_clip model for tests and the demo.

Importing this module registers :data:`TINY_CLIP_NAME` as an open_clip model config, so
``open_clip.create_model(TINY_CLIP_NAME, pretrained=<file>)`` and ``open_clip.get_tokenizer`` work
exactly as for ``'ViT-B-16'``: same code path, same BPE tokenizer (vocab 49408, context 77), only a
much smaller text transformer (width 64, 2 layers, 4 heads) and a token-sized vision tower (open_clip's
``CLIP`` always builds one; :class:`CLIPPromptTextEncoder` drops it after loading).

:func:`write_random_clip_checkpoint` saves a randomly initialised, seed-deterministic state dict, to be
loaded back by path through open_clip's real loader (``create_model(..., pretrained=path)``).
"""
import copy
import logging
import os
import os.path as osp

import open_clip
import torch
from open_clip import factory as _oc_factory

__all__ = ['TINY_CLIP_NAME', 'TINY_CLIP_CFG', 'register_tiny_clip', 'write_random_clip_checkpoint']

#: open_clip model-config name of the tiny CLIP.
TINY_CLIP_NAME = 'WSSS-Tiny-CLIP'

#: The config, in open_clip's model-config JSON schema.
TINY_CLIP_CFG = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=16),
    text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=4, layers=2),
)


def register_tiny_clip() -> None:
    """Make :data:`TINY_CLIP_NAME` known to open_clip (idempotent).

    open_clip keeps its configs in ``open_clip.factory._MODEL_CONFIGS``, which
    ``add_model_config`` rebuilds from its JSON search paths; an in-memory entry therefore has to be
    re-added after such a rescan. :class:`CLIPPromptTextEncoder` calls this before every model build.
    """
    if TINY_CLIP_NAME not in _oc_factory._MODEL_CONFIGS:
        _oc_factory._MODEL_CONFIGS[TINY_CLIP_NAME] = copy.deepcopy(TINY_CLIP_CFG)


register_tiny_clip()


def write_random_clip_checkpoint(path: str, model_name: str = TINY_CLIP_NAME, seed: int = 0) -> str:
    """Save a randomly initialised open_clip model's state dict.

    The global RNG state is left untouched (the init runs under a forked RNG seeded with ``seed``),
    and the same ``seed`` always writes the same weights.

    Args:
        path (str): Output file (``.pt``/``.pth``); parent folders are created.
        model_name (str): open_clip model-config name. Defaults to :data:`TINY_CLIP_NAME`.
        seed (int): Seed of the random init. Defaults to 0.

    Returns:
        str: ``path``, to pass as ``pretrained=`` of :class:`CLIPPromptTextEncoder` or open_clip.
    """
    register_tiny_clip()
    path = str(path)
    parent = osp.dirname(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    previous_disable = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip warns that the model is randomly initialised: intended
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.create_model(model_name, pretrained=None, device='cpu')
    finally:
        logging.disable(previous_disable)
    torch.save(model.state_dict(), path)
    return path
