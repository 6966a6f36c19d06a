"""mIoU under image corruptions (Gaussian / shot / impulse noise, defocus / motion blur, JPEG) at
severities 1-5 on the val split:

``python tools/robustness.py CONFIG CHECKPOINT [--out-dir DIR] [--subset N] [--corruptions ...]
[--severities 1 2 3 4 5] [--title T] [--device cpu] [--cfg-options ...]``

writes ``DIR/robustness.{json,md,png}`` (default DIR: ``work_dirs/robustness/<config name>``). See
:mod:`mmseg_clip_wsss.apis.robustness`.
"""
import sys

from mmseg_clip_wsss.apis import USER_ERRORS, robustness_main

if __name__ == '__main__':
    try:
        robustness_main()
    except USER_ERRORS as err:  # a clear message, not a traceback
        sys.exit(f'error: {err}')
