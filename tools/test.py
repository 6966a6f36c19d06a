"""Test a model: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR] [--cfg-options ...]``."""
from mmseg_clip_wsss.apis import run_tool, test_main

if __name__ == '__main__':
    run_tool(test_main)  # a clear message, not a traceback, for bad input
