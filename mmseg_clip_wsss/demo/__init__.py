"""The demo: the synthetic dataset (:mod:`.data`), the WSSS pipeline on it (:mod:`.runner`) and the
detection demo (:mod:`.detection`). Their command lines are thin scripts in ``tools/``.

Not imported by ``import mmseg_clip_wsss``; import it explicitly.
"""
from mmseg_clip_wsss.datasets.synthetic import make_demo_data
from .detection import run_det_demo
from .runner import prepare_demo_data, run_demo, tiny_text_tower

__all__ = ['make_demo_data', 'run_demo', 'run_det_demo', 'prepare_demo_data', 'tiny_text_tower']
