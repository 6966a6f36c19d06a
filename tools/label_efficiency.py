"""``tools/label_efficiency.py``: see :mod:`mmseg_clip_wsss.cli.label_efficiency` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.label_efficiency import run

if __name__ == '__main__':
    run()
