"""``tools/tag_images.py``: see :mod:`mmseg_clip_wsss.cli.tag_images` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.tag_images import run

if __name__ == '__main__':
    run()
