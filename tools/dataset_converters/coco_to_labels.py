"""``tools/dataset_converters/coco_to_labels.py``: see :mod:`mmseg_clip_wsss.cli.coco_to_labels` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.coco_to_labels import run

if __name__ == '__main__':
    run()
