"""``tools/label_scarcity.py``: see :mod:`mmseg_clip_wsss.cli.label_scarcity` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.label_scarcity import run

if __name__ == '__main__':
    run()
