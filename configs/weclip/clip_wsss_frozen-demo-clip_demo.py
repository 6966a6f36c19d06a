# WeCLIP-style stage 1 on the demo data: the demo world's CLIP image tower (a ModifiedResNet
# pretrained by tools/pretrain_clip.py), frozen, as the backbone; RSC-A neck over its four stages;
# the text-guided head scores against the same CLIP's text tower with learnable (CoOp) prompts.
#   python tools/train.py configs/weclip/clip_wsss_frozen-demo-clip_demo.py
_base_ = '../demo/clip_wsss_swin_demo.py'
clip_model = 'WSSS-Demo-CLIP-RN'
clip_pretrained = 'data/demo/clip/clip.pt'
model = dict(
    data_preprocessor=dict(mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323]),
    backbone=dict(
        _delete_=True,
        type='CLIPVisionBackbone',
        model_name=clip_model,
        pretrained=clip_pretrained,
        frozen=True),  # stages 1-4 (stride 4-32), 128-1024 channels
    neck=dict(in_channels=[128, 256, 512, 1024]),
    decode_head=dict(embed_dim=128),
    text_encoder=dict(model_name=clip_model, pretrained=clip_pretrained))
max_iters = 800
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', eta_min=1e-6, power=0.9, by_epoch=False, begin=30, end=max_iters),
]
