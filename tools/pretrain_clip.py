"""``tools/pretrain_clip.py``: see :mod:`mmseg_clip_wsss.cli.pretrain_clip` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.pretrain_clip import run

if __name__ == '__main__':
    run()
