# The CLIP text-guided WSSS model of clip_wsss_swin.py with timm's Swin-T as backbone, through mmseg's
# TIMMBackbone (TIMMNCHWBackbone: the same wrapper, with timm's channels-last Swin features permuted to
# (B, C, H, W)). `pretrained=True` downloads timm's weights; set False (or checkpoint_path=...) offline.
_base_ = ['./clip_wsss_swin.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='TIMMNCHWBackbone',
        model_name='swin_tiny_patch4_window7_224',
        features_only=True,
        pretrained=True,
        out_indices=(0, 1, 2, 3),
        dynamic_img_size=True,  # any input size (multiples of 32), not only 224 x 224
        drop_path_rate=0.3),
    neck=dict(in_channels=[96, 192, 384, 768]))
