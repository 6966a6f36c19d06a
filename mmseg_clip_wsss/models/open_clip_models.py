"""open_clip models of this project, and the one loader every CLIP tower goes through.

The project defines small open_clip model configs (:data:`PROJECT_CLIP_CONFIGS`) and makes them
known to open_clip, so that ``open_clip.create_model(name, pretrained=<file>)`` and
``open_clip.get_tokenizer(name)`` treat them exactly like ``'ViT-B-16'``: same model classes, same BPE
tokenizer (vocabulary 49408), only smaller.

- :data:`TINY_CLIP_NAME`: a token-sized CLIP for tests (text width 64, 2 layers; a 1-layer ViT).
- :data:`DEMO_CLIP_NAME`: the CLIP that ``tools/pretrain_clip.py`` trains on the captioned corpus
  of the demo world (a ModifiedResNet image tower of width 32 at 64 px, text width 128, 3 layers,
  joint space of 128 dims). A convolutional tower learns the shapes of the demo world from 1,000 steps
  on two CPU cores; a ViT of the same cost did not (docs/benchmarks.md).
- :data:`DEMO_CLIP_VIT_NAME`: the same text tower with a small ViT image tower (4 blocks of width
  128, 8-px patches at 64 px), for the ViT-only dense zero-shot modes on the demo world
  (docs/dense_modes.md); ``tools/pretrain_clip.py --model-name WSSS-Demo-CLIP-ViT --steps 1500
  --batch-size 64 --lr 1e-3 --amp bf16`` (about 16 minutes on two cores; zero-shot mAP 75.2 against
  88.6 for the demo CLIP of 400 steps then, 93.5 of 1,000 now; docs/benchmarks.md).

:func:`load_open_clip` is the loader of :class:`CLIPPromptTextEncoder` and :class:`CLIPVisionBackbone`:
a model-config name plus an open_clip pretrained tag or a local checkpoint file, with errors that say
what to fix.
"""
import copy
import logging
import os
import os.path as osp
import zipfile
from typing import Optional

import open_clip
import torch
import torch.nn as nn
from mmengine.logging import print_log
from open_clip import factory as _oc_factory

from mmseg_clip_wsss.engine.weight_files import load_weight_file

__all__ = ['TINY_CLIP_NAME', 'TINY_CLIP_CFG', 'DEMO_CLIP_NAME', 'DEMO_CLIP_CFG', 'DEMO_CLIP_VIT_NAME',
           'DEMO_CLIP_VIT_CFG', 'PROJECT_CLIP_CONFIGS',
           'register_project_clip_configs', 'load_open_clip', 'write_random_clip_checkpoint']

_CHECKPOINT_EXTS = ('.pt', '.pth', '.bin', '.safetensors', '.npz', '.npy', '.ckpt')

#: open_clip model-config name of the tiny CLIP for tests.
TINY_CLIP_NAME = 'WSSS-Tiny-CLIP'
TINY_CLIP_CFG = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=16),
    text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=4, layers=2),
)
#: open_clip model-config name of the demo world's CLIP (``tools/pretrain_clip.py``).
DEMO_CLIP_NAME = 'WSSS-Demo-CLIP-RN'
DEMO_CLIP_CFG = dict(
    embed_dim=128,
    vision_cfg=dict(image_size=64, layers=[1, 1, 1, 1], width=32),
    text_cfg=dict(context_length=32, vocab_size=49408, width=128, heads=4, layers=3),
)
#: open_clip model-config name of a small ViT CLIP of the demo world (the dense modes of a ViT).
DEMO_CLIP_VIT_NAME = 'WSSS-Demo-CLIP-ViT'
DEMO_CLIP_VIT_CFG = dict(
    embed_dim=128,
    vision_cfg=dict(image_size=64, layers=4, width=128, patch_size=8, head_width=32),
    text_cfg=dict(context_length=32, vocab_size=49408, width=128, heads=4, layers=3),
)
#: Every model config the project adds to open_clip.
PROJECT_CLIP_CONFIGS = {TINY_CLIP_NAME: TINY_CLIP_CFG, DEMO_CLIP_NAME: DEMO_CLIP_CFG,
                        DEMO_CLIP_VIT_NAME: DEMO_CLIP_VIT_CFG}


def register_project_clip_configs() -> None:
    """Make :data:`PROJECT_CLIP_CONFIGS` known to open_clip (idempotent).

    open_clip keeps its configs in ``open_clip.factory._MODEL_CONFIGS``, which ``add_model_config``
    rebuilds from its JSON search paths; in-memory entries therefore have to be re-added after such
    a rescan. :func:`load_open_clip` calls this before every build.
    """
    for name, cfg in PROJECT_CLIP_CONFIGS.items():
        if name not in _oc_factory._MODEL_CONFIGS:
            _oc_factory._MODEL_CONFIGS[name] = copy.deepcopy(cfg)


register_project_clip_configs()


def _raise_bad_pretrained(pretrained: str, model_name: str, clean_name: str, owner: str) -> None:
    """Raise the error for a ``pretrained`` that is neither a tag of the model nor a file."""
    tags = open_clip.list_pretrained_tags_by_model(clean_name)
    looks_like_path = (osp.sep in pretrained or pretrained.endswith(_CHECKPOINT_EXTS)
                       or pretrained.startswith('.'))
    if looks_like_path:
        raise FileNotFoundError(
            f'{owner}: pretrained checkpoint file {pretrained!r} does not exist. Set '
            f'`pretrained` to an existing open_clip state-dict file or to a tag of '
            f'{model_name!r}: {tags}.')
    raise ValueError(f'{owner}: pretrained={pretrained!r} is neither an open_clip tag of '
                     f'{model_name!r} ({tags}) nor an existing checkpoint file.')


def _create_model(model_name: str, pretrained: Optional[str], cache_dir: Optional[str],
                  quick_gelu: Optional[bool]) -> nn.Module:
    """``open_clip.create_model`` on the CPU, its random-init warnings muted without weights."""
    previous_disable = logging.root.manager.disable
    if not pretrained:  # open_clip warns about the random init too: load_open_clip said it, once
        logging.disable(logging.WARNING)
    try:
        return open_clip.create_model(model_name, pretrained=pretrained or None, device='cpu',
                                      cache_dir=cache_dir, force_quick_gelu=bool(quick_gelu))
    finally:
        logging.disable(previous_disable)


def is_torchscript_archive(path: str) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip holding ``constants.pkl``), the format of
    OpenAI's released CLIP files such as ``ViT-B-16.pt``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split('/')[-1] == 'constants.pkl' for name in archive.namelist())


def _from_torchscript(model_name: str, path: str, cache_dir: Optional[str], quick_gelu: Optional[bool],
                      owner: str) -> nn.Module:
    """The model ``model_name`` with the weights of a TorchScript archive (OpenAI's released files).

    open_clip reads local files with ``torch.load(weights_only=True)``, which refuses TorchScript
    archives; their state dict is OpenAI's layout, which open_clip's ``CLIP`` shares. OpenAI trained
    these weights with QuickGELU: it is used unless ``quick_gelu`` is False.

    Raises:
        ValueError: the archive's weights do not fit ``model_name``, naming the file and the fix.
    """
    state = torch.jit.load(path, map_location='cpu').state_dict()
    for key in ('input_resolution', 'context_length', 'vocab_size'):
        state.pop(key, None)
    model = _create_model(model_name, None, cache_dir, quick_gelu is not False)
    transient = {name for name, _ in model.named_buffers()} - set(model.state_dict())  # e.g. attn_mask
    state = {k: v for k, v in state.items() if k not in transient}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f'{owner}: the TorchScript archive {path!r} holds weights that do not fit the '
                         f'open_clip model {model_name!r}; set model_name to the archive\'s architecture '
                         f"(OpenAI's ViT-B-16.pt is 'ViT-B-16'). {str(err)[:300]}") from err
    return model


def load_open_clip(model_name: str,
                   pretrained: Optional[str],
                   cache_dir: Optional[str] = None,
                   quick_gelu: Optional[bool] = None,
                   owner: str = 'CLIPPromptTextEncoder',
                   warn_random: bool = True) -> nn.Module:
    """Create an open_clip model through open_clip's own loader, with clear errors for bad inputs.

    open_clip only *warns* when a tag was trained with QuickGELU (OpenAI's weights) but the model
    config uses GELU (``'ViT-B-16'`` + ``'openai'``); the features are then subtly wrong. Here the
    tag's own ``quick_gelu`` flag is applied unless ``quick_gelu`` says otherwise. A local file carries
    no such flag: set ``quick_gelu=True`` for OpenAI's weights saved as a state dict. A TorchScript
    archive (OpenAI's released ``ViT-B-16.pt``, which open_clip's file loader refuses) is read here
    and gets QuickGELU unless ``quick_gelu=False``.

    Args:
        model_name (str): open_clip model-config name (or ``hf-hub:``/``local-dir:`` source).
        pretrained (str, optional): Pretrained tag or local checkpoint file; None/'' gives a random
            init.
        cache_dir (str, optional): open_clip download cache.
        quick_gelu (bool, optional): Force QuickGELU (None: as the tag was trained).
        owner (str): Module name used in error messages.
        warn_random (bool): Log a warning when the weights are random.

    Returns:
        nn.Module: The open_clip ``CLIP`` / ``CustomTextCLIP`` model on the CPU.

    Raises:
        ValueError: unknown model name, ``pretrained`` that is neither a tag nor a file, or a
            TorchScript archive whose weights do not fit ``model_name``.
        FileNotFoundError: ``pretrained`` looks like a path but does not exist.
        WeightFileError: ``pretrained`` is a file that is empty, cut short or not a torch file
            (:func:`~mmseg_clip_wsss.engine.weight_files.load_weight_file`), naming it and the fix.
    """
    register_project_clip_configs()
    has_schema = model_name.startswith(('hf-hub:', 'local-dir:'))
    clean_name = model_name.replace('/', '-')
    if not has_schema and open_clip.get_model_config(clean_name) is None:
        raise ValueError(f'{owner}: model_name={model_name!r} is not an open_clip model config (see '
                         "open_clip.list_models(), e.g. 'ViT-B-16').")
    if has_schema:
        pretrained = None  # open_clip takes the weights from the schema source
    elif pretrained:
        pretrained = osp.expanduser(str(pretrained))
        tag_cfg = open_clip.get_pretrained_cfg(clean_name, pretrained)
        if tag_cfg and quick_gelu is None:
            quick_gelu = bool(tag_cfg.get('quick_gelu', False))
        if not tag_cfg and not osp.isfile(pretrained):
            _raise_bad_pretrained(pretrained, model_name, clean_name, owner)
    elif warn_random:
        print_log(f'{owner}: pretrained is empty, the {model_name} weights are randomly initialised.',
                  logger='current', level=logging.WARNING)
    if not (pretrained and osp.isfile(pretrained)):
        return _create_model(model_name, pretrained, cache_dir, quick_gelu)
    return load_weight_file(pretrained, lambda: _from_file(model_name, pretrained, cache_dir, quick_gelu, owner),
                            fix=CLIP_WEIGHTS_FIX, what=f'{owner}: CLIP weight file')


#: What to do about a damaged CLIP weight file (:func:`load_open_clip`'s message).
CLIP_WEIGHTS_FIX = ('download or copy it again (the demo CLIP: python tools/pretrain_clip.py --data-root '
                    'data/demo writes data/demo/clip/clip.pt).')


def _from_file(model_name: str, path: str, cache_dir: Optional[str], quick_gelu: Optional[bool],
               owner: str) -> nn.Module:
    """The model with the weights of local file ``path``: a TorchScript archive or a state dict.

    Raises:
        ValueError: the file's weights do not fit ``model_name`` (open_clip's missing keys, size
            mismatch or position-embedding assertion; a file holding no state dict), naming the file,
            the model and the project's model configs the weights do fit.
    """
    if is_torchscript_archive(path):
        return _from_torchscript(model_name, path, cache_dir, quick_gelu, owner)
    try:
        return _create_model(model_name, path, cache_dir, quick_gelu)
    except (RuntimeError, AssertionError, AttributeError) as err:
        if isinstance(err, RuntimeError) and 'state_dict' not in str(err):
            raise
        fits = _project_configs_fitting(path)
        hint = (f'it fits {", ".join(repr(n) for n in fits)}' if fits else
                "it fits none of the project's model configs: a file of another architecture needs that "
                'model_name, one that is not a whole CLIP state dict has to be written again')
        raise ValueError(f'{owner}: the CLIP weights in {path!r} do not fit the open_clip model '
                         f'{model_name!r} ({type(err).__name__}: {" ".join(str(err).split())[:160]}); '
                         f'{hint} (tools: --model-name, configs: model_name).') from err


def _project_configs_fitting(path: str) -> list:
    """The names of :data:`PROJECT_CLIP_CONFIGS` whose parameter shapes are those of the state dict
    in ``path`` (small models: each is built once to compare)."""
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception:  # noqa: BLE001  (anything that is not a plain state dict fits nothing here)
        return []
    state = state.get('state_dict', state) if isinstance(state, dict) else {}
    shapes = {k.removeprefix('module.'): tuple(v.shape) for k, v in state.items() if torch.is_tensor(v)}
    fits = []
    with torch.random.fork_rng(devices=[]):
        for name in PROJECT_CLIP_CONFIGS:
            expected = {k: tuple(v.shape) for k, v in _create_model(name, None, None, False).state_dict().items()}
            if expected.keys() <= shapes.keys() and all(shapes[k] == v for k, v in expected.items()):
                fits.append(name)
    return fits


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
    path = str(path)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = load_open_clip(model_name, None, warn_random=False)
    torch.save(model.state_dict(), path)
    return path
