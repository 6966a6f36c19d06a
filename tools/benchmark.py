"""``tools/benchmark.py``: see :mod:`mmseg_clip_wsss.cli.benchmark` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.benchmark import run

if __name__ == '__main__':
    run()
