"""``tools/run_demo.py``: see :mod:`mmseg_clip_wsss.cli.run_demo` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.run_demo import run

if __name__ == '__main__':
    run()
