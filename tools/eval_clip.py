"""Zero-shot figures of a CLIP, and of the random tower of the same architecture for contrast.

::

    python tools/eval_clip.py data/demo/clip/clip.pt --data-root data/demo [--split val]
        [--model-name WSSS-Demo-CLIP-RN] [--heldout-pairs 1000] [--out data/demo/clip/eval.json]

Image -> text and text -> image recall@1 on held-out captions (a corpus of its own seed), and the
multi-label mAP of class-name prompts on the images of ``--split``; JSON out.
"""
from mmseg_clip_wsss.apis.runner import INPUT_ERRORS, run_tool
from mmseg_clip_wsss.clip_pretrain.cli import eval_main

if __name__ == '__main__':
    run_tool(eval_main, also=INPUT_ERRORS)  # a clear message, not a traceback, for bad input
