"""Segment images with any class names.

::

    python tools/segment.py IMAGES_OR_DIRS --config C --checkpoint P [--classes "cat,dog" |
        --vocabulary voc] --out-dir D

Writes, per image, a palette label PNG, an overlay with a legend and a JSON of per-class pixel shares
(see :mod:`mmseg_clip_wsss.apis.segment`). Class names never labelled in training are encoded by the
model's text tower on the fly; an unreadable file is named and skipped.
"""
from mmseg_clip_wsss.apis.runner import INPUT_ERRORS, run_tool
from mmseg_clip_wsss.apis.segment import segment_main

if __name__ == '__main__':
    run_tool(segment_main, also=INPUT_ERRORS)  # a clear message, not a traceback, for bad input
