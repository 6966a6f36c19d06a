"""Contrastive pretraining of a small open_clip model on the captioned corpus of a generated world.

::

    python tools/pretrain_clip.py --data-root data/demo [--out-dir data/demo/clip] [--pairs 20000]
        [--steps 400] [--batch-size 128] [--lr 2e-3] [--workers 2] [--fresh] [--no-resume]

The world (classes, unseen classes, image size, textures ...) is read from ``DATA_ROOT/demo_info.json``
(written by ``tools/make_demo_data.py``), or named with ``--world``. Writes ``OUT_DIR/clip.pt``, an
open_clip state dict of ``--model-name`` that loads like downloaded weights::

    open_clip.create_model('WSSS-Demo-CLIP-RN', pretrained='data/demo/clip/clip.pt')
    dict(type='CLIPPromptTextEncoder', model_name='WSSS-Demo-CLIP-RN', pretrained='data/demo/clip/clip.pt')
    dict(type='CLIPVisionBackbone', model_name='WSSS-Demo-CLIP-RN', pretrained='data/demo/clip/clip.pt')

A finished run with the same settings is reused; an interrupted one resumes from ``latest.pth``.
"""
from mmseg_clip_wsss.apis.runner import INPUT_ERRORS, run_tool
from mmseg_clip_wsss.clip_pretrain.cli import pretrain_main

if __name__ == '__main__':
    run_tool(pretrain_main, also=INPUT_ERRORS)  # a clear message, not a traceback, for bad input
