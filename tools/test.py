"""Test a model: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR] [--cfg-options ...]``."""
from mmseg_clip_wsss.apis import test_main

if __name__ == '__main__':
    test_main()
