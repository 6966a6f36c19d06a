"""``tools/train.py``: see :mod:`mmseg_clip_wsss.cli.train` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.train import run

if __name__ == '__main__':
    run()
