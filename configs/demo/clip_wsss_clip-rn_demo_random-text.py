# The stage-1 CLIP demo model with a randomly initialised text tower (the image tower stays
# pretrained): what the pretrained class embeddings bring.
_base_ = './clip_wsss_clip-rn_demo.py'
# (no class verifier: it would check with that random CLIP)
model = dict(text_encoder=dict(pretrained=None), test_cfg=dict(verify_classes=None))
