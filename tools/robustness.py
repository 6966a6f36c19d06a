"""mIoU under image corruptions (Gaussian / shot / impulse noise, defocus / motion blur, JPEG) at
severities 1-5 on the val split:

``python tools/robustness.py CONFIG CHECKPOINT [--out-dir DIR] [--subset N] [--corruptions ...]
[--severities 1 2 3 4 5] [--title T] [--device cpu] [--cfg-options ...]``

writes ``DIR/robustness.{json,md,png}`` (default DIR: ``work_dirs/robustness/<config name>``). See
:mod:`mmseg_clip_wsss.apis.robustness`.
"""
from mmseg_clip_wsss.apis import robustness_main
from mmseg_clip_wsss.apis.runner import INPUT_ERRORS, run_tool

if __name__ == '__main__':
    run_tool(robustness_main, also=INPUT_ERRORS)  # a clear message, not a traceback, for bad input
