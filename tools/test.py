"""Test a model: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR] [--cfg-options ...]``."""
import sys

from mmseg_clip_wsss.apis import USER_ERRORS, test_main

if __name__ == '__main__':
    try:
        test_main()
    except USER_ERRORS as err:  # a clear message, not a traceback
        sys.exit(f'error: {err}')
