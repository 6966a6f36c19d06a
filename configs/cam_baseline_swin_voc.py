# The plain CAM baseline on PASCAL VOC 2012: the same Swin-T backbone as configs/clip_wsss_swin_voc.py,
# a 1x1-conv multi-label classifier on the last backbone level (global average pooling, no text
# encoder, no RSC-A neck), the same image-level labels, schedule and CAM -> pseudo-mask protocol.
#   python tools/train.py configs/cam_baseline_swin_voc.py
# The reference point of tools/benchmark.py for what the text-guided head and the RSC-A neck cost.
_base_ = './clip_wsss_swin_voc.py'
model = dict(
    neck=None,
    text_encoder=None,
    decode_head=dict(
        _delete_=True,
        type='CAMClassifierHead',
        in_channels=768,
        channels=256,
        num_classes=21,
        in_index=3,
        loss_mlc=dict(type='MultiLabelScoreLoss', pooling='gap', loss_weight=1.0)))
