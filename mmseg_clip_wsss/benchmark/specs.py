"""What :mod:`mmseg_clip_wsss.benchmark` compares: model specs, and their configs with the weights off.

A :class:`ModelSpec` names a config (a file of this project or an ``mmseg::``/``mmdet::`` config) and a
few overrides. The benchmark measures architectures, not checkpoints: :func:`load_benchmark_config`
switches every pretrained-weight reference off (``init_cfg`` of type ``'Pretrained'``, ``pretrained``
paths/tags), so nothing is downloaded and every model starts from its random initialisation; the CLIP
text tower keeps its real architecture (e.g. ``ViT-B-16``) with random weights.
"""
import copy
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmseg_clip_wsss  # noqa: F401  (registers the plugin's modules)
from mmseg_clip_wsss.models.memory import ClassMemoryBank

__all__ = [
    'ModelSpec', 'DEFAULT_SPECS', 'DEFAULT_BASELINE', 'DEFAULT_TARGET_MODEL', 'DEFAULT_CAM_MODEL',
    'UPERNET_SWIN_T', 'REPO_ROOT', 'parse_model_arg', 'resolve_config_path', 'strip_pretrained',
    'load_benchmark_config', 'build_benchmark_model', 'fill_memory_banks', 'specs_by_name'
]

#: The repository root (configs given as relative paths are also looked up here).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: mmseg's own Swin-T UperNet (ADE20K, 512x512): the MM baseline of the comparison.
UPERNET_SWIN_T = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'


@dataclass
class ModelSpec:
    """One model of the comparison.

    Args:
        name (str): Short name used in the tables and as the ``--baseline`` key.
        config (str): Config file (relative to the working directory or the repository root) or an
            ``mmseg::``/``mmdet::`` config.
        cfg_options (dict): Overrides merged into the config (``Config.merge_from_dict`` keys).
        description (str): What the model is, for the tables.
    """
    name: str
    config: str
    cfg_options: Dict[str, Any] = field(default_factory=dict)
    description: str = ''

    def to_dict(self) -> dict:
        return asdict(self)


#: The default comparison: the same Swin-T backbone everywhere, 21 classes (VOC).
DEFAULT_SPECS: Tuple[ModelSpec, ...] = (
    ModelSpec('upernet_swin-t', UPERNET_SWIN_T,
              {'model.decode_head.num_classes': 21, 'model.auxiliary_head.num_classes': 21},
              "mmseg Swin-T UperNet (fully supervised; FCN auxiliary head in training)"),
    ModelSpec('clip_wsss_swin_voc', 'configs/clip_wsss_swin_voc.py', {},
              'ours, stage 1: RSC-A neck + text-guided head, learned prompts'),
    ModelSpec('clip_wsss_swin_voc_no-rsca', 'configs/ablations/clip_wsss_swin_voc_no-rsca.py', {},
              'ours without RSC-A (plain fusion neck) + text-guided head'),
    ModelSpec('cam_baseline_swin_voc', 'configs/cam_baseline_swin_voc.py', {},
              'plain CAM classifier (GAP + 1x1 conv on the last level)'),
)
DEFAULT_BASELINE = 'upernet_swin-t'
DEFAULT_TARGET_MODEL = 'clip_wsss_swin_voc'
DEFAULT_CAM_MODEL = 'cam_baseline_swin_voc'


def parse_model_arg(arg: str) -> ModelSpec:
    """``'NAME=CONFIG'`` or ``'CONFIG'`` (the name is then the config's file stem)."""
    name, sep, config = arg.partition('=')
    if not sep or '/' in name or ':' in name:
        name, config = osp.splitext(osp.basename(arg.split('::')[-1]))[0], arg
    if not name or not config:
        raise ValueError(f'benchmark: cannot read model {arg!r}; give CONFIG or NAME=CONFIG.')
    return ModelSpec(name=name, config=config)


def resolve_config_path(config: str) -> str:
    """Absolute path of a config file; ``mmseg::...``/``mmdet::...`` resolve into the package."""
    if '::' in config:
        try:
            path = Config._get_cfg_path(config, '')[0]
        except Exception as exc:  # noqa: BLE001 - re-raised with the fix
            raise FileNotFoundError(f'benchmark: cannot find the package config {config!r} ({exc}); '
                                    'check the name under <package>/.mim/configs/.') from exc
        return path
    for path in (config, osp.join(REPO_ROOT, config)):
        if osp.isfile(path):
            return osp.abspath(path)
    raise FileNotFoundError(f'benchmark: config {config!r} does not exist (looked in the working '
                            f'directory and in {REPO_ROOT}).')


def _is_pretrained_init(init_cfg: Any) -> bool:
    if isinstance(init_cfg, dict):
        return init_cfg.get('type') == 'Pretrained'
    if isinstance(init_cfg, (list, tuple)):
        return any(_is_pretrained_init(c) for c in init_cfg)
    return False


def strip_pretrained(cfg: Any, prefix: str = 'model') -> List[str]:
    """Switch every pretrained-weight reference of a model config off, in place.

    ``init_cfg`` of type ``'Pretrained'`` becomes None and every string-valued ``pretrained`` key
    (backbone checkpoints, open_clip tags / files of the text encoder) becomes None.

    Args:
        cfg (dict): A (nested) model config.
        prefix (str): Key path of ``cfg`` in the messages. Defaults to ``'model'``.

    Returns:
        list[str]: The key paths that were switched off.
    """
    changed = []
    if isinstance(cfg, dict):
        for key in list(cfg.keys()):
            value = cfg[key]
            path = f'{prefix}.{key}'
            if key == 'init_cfg' and _is_pretrained_init(value):
                cfg[key] = None
                changed.append(path)
            elif key == 'pretrained' and isinstance(value, str) and value:
                cfg[key] = None
                changed.append(path)
            else:
                changed += strip_pretrained(value, path)
    elif isinstance(cfg, (list, tuple)):
        for i, value in enumerate(cfg):
            changed += strip_pretrained(value, f'{prefix}.{i}')
    return changed


def _set_num_classes(model_cfg: ConfigDict, num_classes: int) -> None:
    """``num_classes`` of the decode/auxiliary heads of a model without a text encoder."""
    if model_cfg.get('text_encoder') is not None:
        return
    heads = [model_cfg.get('decode_head'), model_cfg.get('auxiliary_head')]
    for head in heads:
        for h in (head if isinstance(head, (list, tuple)) else [head]):
            if isinstance(h, dict) and 'num_classes' in h:
                h['num_classes'] = num_classes


def load_benchmark_config(spec: ModelSpec, num_classes: Optional[int] = None) -> Config:
    """The config of ``spec`` with its overrides merged and every pretrained weight switched off.

    Args:
        spec (ModelSpec): The model.
        num_classes (int, optional): Set the heads' ``num_classes`` of models without a text encoder
            (mmseg baselines) to match the text-guided models. Defaults to None (unchanged).

    Returns:
        Config: With ``benchmark_weights_off`` (the key paths switched off) added.
    """
    cfg = Config.fromfile(resolve_config_path(spec.config))
    if spec.cfg_options:
        cfg.merge_from_dict(copy.deepcopy(spec.cfg_options))
    if 'model' not in cfg:
        raise KeyError(f'benchmark: config {spec.config!r} has no `model`.')
    if num_classes is not None:
        _set_num_classes(cfg.model, int(num_classes))
    cfg.benchmark_weights_off = strip_pretrained(cfg.model)
    return cfg


def build_benchmark_model(cfg: Config, device: str = 'cpu') -> torch.nn.Module:
    """Build ``cfg.model`` (random init, SyncBN as BN) on ``device`` in eval mode."""

    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    model.init_weights()
    model = revert_sync_batchnorm(model)
    return model.to(device).eval()


@torch.no_grad()
def fill_memory_banks(model: torch.nn.Module, seed: int = 0) -> int:
    """Give every :class:`~mmseg_clip_wsss.models.memory.ClassMemoryBank` a full set of unit-norm
    random prototypes, so the aggregation runs as in a trained model (an untrained bank has no
    prototype yet).

    Returns:
        int: Number of banks filled.
    """
    gen = torch.Generator().manual_seed(seed)
    banks = [m for m in model.modules() if isinstance(m, ClassMemoryBank)]
    for bank in banks:
        rows = torch.randn(bank.prototypes.shape, generator=gen)
        bank.prototypes.copy_(torch.nn.functional.normalize(rows, dim=-1).to(bank.prototypes))
        bank.initialized.fill_(True)
    return len(banks)


def specs_by_name(specs: Sequence[ModelSpec]) -> Dict[str, ModelSpec]:
    """``{name: spec}``; names must be unique."""
    out: Dict[str, ModelSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f'benchmark: two models are named {spec.name!r}; name them with '
                             'NAME=CONFIG.')
        out[spec.name] = spec
    return out
