"""``tools/dataset_converters/captions_to_labels.py``: see :mod:`mmseg_clip_wsss.cli.captions_to_labels` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.captions_to_labels import run

if __name__ == '__main__':
    run()
