"""Registries the plugin registers into.

Segmentation modules live in mmseg's registries. Modules that detection reuses (the RSC-A neck,
the contrastive losses) are registered in mmdet's ``MODELS`` too, through :func:`register_seg_and_det`,
so that ``type='RSCANeck'`` works in a config of either scope.
"""
from mmdet.registry import MODELS as DET_MODELS
from mmseg.registry import DATASETS, METRICS, MODELS, TRANSFORMS

__all__ = ['MODELS', 'DET_MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'register_seg_and_det']


def register_seg_and_det(cls):
    """Class decorator: register ``cls`` in both mmseg's and mmdet's ``MODELS``."""
    MODELS.register_module(module=cls)
    DET_MODELS.register_module(module=cls)
    return cls
