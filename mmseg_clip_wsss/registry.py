"""Registries the plugin registers into.

Segmentation modules live in mmseg's registries. Modules that detection reuses (the RSC-A neck,
the contrastive losses) are registered in mmdet's ``MODELS`` too, through :func:`register_seg_and_det`,
so that ``type='RSCANeck'`` works in a config of either scope.

A public name that is renamed stays registered under its old name as a deprecated alias
(:func:`register_deprecated_alias`): a config written for the old name still builds, and says which
name to write instead. :data:`DEPRECATED_NAMES` lists every such alias.
"""
import warnings
from typing import Dict, Sequence

from mmdet.registry import HOOKS as DET_HOOKS
from mmdet.registry import MODELS as DET_MODELS
from mmengine.registry import Registry
from mmseg.registry import DATA_SAMPLERS, DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS

__all__ = [
    'MODELS', 'DET_MODELS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'DET_HOOKS',
    'register_seg_and_det', 'register_hook_seg_and_det', 'DEPRECATED_NAMES', 'register_deprecated_alias'
]

#: Every deprecated alias: old registry name -> the name it was renamed to.
DEPRECATED_NAMES: Dict[str, str] = {}


def register_deprecated_alias(registries: Sequence[Registry], old_name: str, new_cls: type) -> type:
    """Keep ``old_name`` building ``new_cls`` in ``registries``, with a ``FutureWarning`` (shown to
    users by default) that names the new name.

    The alias is a subclass of ``new_cls`` named ``old_name`` that only adds the warning, so
    ``isinstance`` checks and the class's behaviour are those of ``new_cls``.

    Args:
        registries (Sequence[Registry]): The registries ``new_cls`` is registered in.
        old_name (str): The name configs used before the rename.
        new_cls (type): The registered class it was renamed to.

    Returns:
        type: The alias class.
    """
    new_name = new_cls.__name__

    def __init__(self, *args, **kwargs):
        warnings.warn(f"type='{old_name}' is deprecated: it was renamed '{new_name}'; write "
                      f"type='{new_name}' in the config.", FutureWarning, stacklevel=2)
        new_cls.__init__(self, *args, **kwargs)

    alias = type(old_name, (new_cls, ), dict(
        __init__=__init__, __module__=new_cls.__module__,
        __doc__=f'Deprecated alias of :class:`{new_name}` (its name before the rename).'))
    for registry in registries:
        registry.register_module(name=old_name, module=alias)
    DEPRECATED_NAMES[old_name] = new_name
    return alias


def register_seg_and_det(cls):
    """Class decorator: register ``cls`` in both mmseg's and mmdet's ``MODELS``."""
    MODELS.register_module(module=cls)
    DET_MODELS.register_module(module=cls)
    return cls


def register_hook_seg_and_det(cls):
    """Class decorator: register a runner hook in both mmseg's and mmdet's ``HOOKS``."""
    HOOKS.register_module(module=cls)
    DET_HOOKS.register_module(module=cls)
    return cls
