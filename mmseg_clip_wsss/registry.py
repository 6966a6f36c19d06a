"""Registries the plugin registers into.

Segmentation modules live in mmseg's registries. Modules that detection reuses (the RSC-A neck,
the contrastive losses) are registered in mmdet's ``MODELS`` too, through :func:`register_seg_and_det`,
so that ``type='RSCANeck'`` works in a config of either scope.
"""
from mmdet.registry import HOOKS as DET_HOOKS
from mmdet.registry import MODELS as DET_MODELS
from mmseg.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS

__all__ = [
    'MODELS', 'DET_MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'DET_HOOKS',
    'register_seg_and_det', 'register_hook_seg_and_det'
]


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
