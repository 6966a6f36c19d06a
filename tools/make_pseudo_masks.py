"""Write CAM pseudo masks for a dataset split.

``python tools/make_pseudo_masks.py CONFIG CHECKPOINT --out-dir DIR [--split train] [--eval]
[--scales 1.0 0.5 1.5] [--no-flip] [--refine par|crf|none] [--bg-mode threshold|prompt]
[--bg-threshold T] [--ignore-band LOW HIGH] [--ignore-margin M] [--cfg-options ...]``

CAMs restricted to each image's labels (multi-scale + flip), background by threshold or background
prompts, refinement, ignore value 255 for uncertain pixels, VOC palette PNGs ``DIR/<img_id>.png``;
existing valid PNGs are skipped (resume). With ``--eval``: mIoU vs the ground-truth masks through
mmseg's ``IoUMetric``, written to ``DIR/metrics.json``. See :mod:`mmseg_clip_wsss.cam.cli` for the
config keys (``cam_cfg``, ``cam_dataloader``, ``cam_pipeline``).
"""
from mmseg_clip_wsss.apis import run_tool
from mmseg_clip_wsss.cam.cli import make_pseudo_masks_main

if __name__ == '__main__':
    run_tool(make_pseudo_masks_main)  # a clear message, not a traceback, for bad input
