"""``tools/robustness.py``: see :mod:`mmseg_clip_wsss.cli.robustness` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.robustness import run

if __name__ == '__main__':
    run()
