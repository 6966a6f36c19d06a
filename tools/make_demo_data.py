"""``tools/make_demo_data.py``: see :mod:`mmseg_clip_wsss.cli.make_demo_data` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.make_demo_data import run

if __name__ == '__main__':
    run()
