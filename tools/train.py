"""Train a model: ``python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp] [--cfg-options ...]``."""
from mmseg_clip_wsss.apis import run_tool, train_main

if __name__ == '__main__':
    run_tool(train_main)  # a clear message, not a traceback, for bad input
