"""``tools/segment.py``: see :mod:`mmseg_clip_wsss.cli.segment` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.segment import run

if __name__ == '__main__':
    run()
