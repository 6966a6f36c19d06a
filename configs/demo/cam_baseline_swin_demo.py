# The CAM baseline on the demo data: the same small Swin, a plain 1x1-conv multi-label classifier
# (global average pooling, no text, no RSC-A neck), the same CAM -> pseudo-mask protocol.
_base_ = './clip_wsss_swin_demo.py'
model = dict(
    neck=None,
    text_encoder=None,
    decode_head=dict(
        _delete_=True,
        type='CAMClassifierHead',
        in_channels=256,
        channels=256,
        num_classes={{_base_.num_classes}},
        in_index=3,
        loss_mlc=dict(type='MultiLabelScoreLoss', pooling='gap', loss_weight=1.0)))
