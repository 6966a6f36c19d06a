"""``tools/make_pseudo_masks.py``: see :mod:`mmseg_clip_wsss.cli.make_pseudo_masks` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.make_pseudo_masks import run

if __name__ == '__main__':
    run()
