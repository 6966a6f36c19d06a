"""Train a model: ``python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp] [--cfg-options ...]``."""
import sys

from mmseg_clip_wsss.apis import USER_ERRORS, train_main

if __name__ == '__main__':
    try:
        train_main()
    except USER_ERRORS as err:  # a clear message, not a traceback
        sys.exit(f'error: {err}')
