"""mmseg_clip_wsss: CLIP text-guided weakly supervised semantic segmentation for OpenMMLab.

Importing the package applies the compatibility shims (:mod:`mmseg_clip_wsss.compat`), registers
every module in mmseg's (and, where detection reuses it, mmdet's) registries and gives Pillow the
project's pixel limit (:mod:`mmseg_clip_wsss.datasets.image_io`). Configs switch it on with
``custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)``.

In a process started as one of the command lines, Ctrl-C during these imports ends it with one line
and exit status 130, not a traceback (:mod:`mmseg_clip_wsss.startup`, first of all).
"""
from .startup import guard_startup

guard_startup()  # before the slow imports below

from . import compat  # noqa: E402
from .version import __version__  # noqa: E402

compat.apply_all()

from . import models, datasets, cam, engine  # noqa: E402,F401  (registration side effects)

datasets.image_io.apply_pixel_limit()  # one pixel limit for Pillow and OpenCV (datasets/image_io.py)

__all__ = ['__version__']
