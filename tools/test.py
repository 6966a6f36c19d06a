"""``tools/test.py``: see :mod:`mmseg_clip_wsss.cli.test` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.test import run

if __name__ == '__main__':
    run()
