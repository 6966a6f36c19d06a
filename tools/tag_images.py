"""Zero-shot image-level tags of unlabelled images from a CLIP, written as a label file.

::

    python tools/tag_images.py CLIP_CHECKPOINT --data-root UNLABELLED_ROOT --split train \
        --out UNLABELLED_ROOT/ImageLabels/train_clip.txt [--labelled-root data/demo --labelled-split train]
        [--thresholds thresholds.json] [--true-labels FILE]

Per-class thresholds are chosen on the labelled split (best F1) and saved; precision, recall and mAP
are printed when true labels of the tagged images exist (see :mod:`mmseg_clip_wsss.apis.tagging`).
"""
from mmseg_clip_wsss.apis.runner import INPUT_ERRORS, run_tool
from mmseg_clip_wsss.apis.tagging import tag_main

if __name__ == '__main__':
    run_tool(tag_main, also=INPUT_ERRORS)  # a clear message, not a traceback, for bad input
