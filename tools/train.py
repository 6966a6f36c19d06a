"""Train a model: ``python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp] [--cfg-options ...]``."""
from mmseg_clip_wsss.apis import train_main

if __name__ == '__main__':
    train_main()
