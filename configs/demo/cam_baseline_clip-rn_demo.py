# The CAM baseline of the CLIP demo: the same frozen CLIP image tower, a plain 1x1-conv multi-label
# classifier on its last stage (global average pooling, no text, no RSC-A neck), the same schedule
# and CAM -> pseudo-mask protocol.
_base_ = './clip_wsss_clip-rn_demo.py'
model = dict(
    neck=None,
    text_encoder=None,
    decode_head=dict(
        _delete_=True,
        type='CAMClassifierHead',
        in_channels=1024,
        channels=256,
        num_classes={{_base_.num_classes}},
        in_index=3,
        loss_mlc=dict(type='MultiLabelScoreLoss', pooling='gap', loss_weight=1.0)),
    test_cfg=dict(verify_classes=None))  # the class verifier needs class names from a text encoder
