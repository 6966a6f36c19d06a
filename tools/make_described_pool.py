"""``tools/make_described_pool.py``: see :mod:`mmseg_clip_wsss.cli.make_described_pool` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.make_described_pool import run

if __name__ == '__main__':
    run()
