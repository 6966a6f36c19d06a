"""mmseg_clip_wsss: CLIP text-guided weakly supervised semantic segmentation for OpenMMLab.

Importing the package applies the compatibility shims (:mod:`mmseg_clip_wsss.compat`) and registers
every module in mmseg's (and, where detection reuses it, mmdet's) registries. Configs switch it on with
``custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)``.
"""
from . import compat
from .version import __version__

compat.apply_all()

from . import models, datasets, cam, engine  # noqa: E402,F401  (registration side effects)

__all__ = ['__version__']
