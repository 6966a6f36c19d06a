# Stage 1 of `make demo`: started from the demo world's CLIP, pretrained on this machine
# (tools/pretrain_clip.py: contrastive image-caption pretraining of open_clip's ModifiedResNet +
# text transformer), the way a real run starts from CLIP weights. Its image tower is the frozen
# backbone (dense maps of its 4 stages), its text tower with learned CoOp context gives the class
# embeddings of the text-guided head; RSC-A neck in between. Image-level labels only.
#   python tools/pretrain_clip.py --data-root data/demo        # writes data/demo/clip/clip.pt
#   python tools/train.py configs/demo/clip_wsss_clip-rn_demo.py
# The neck, head, data and CAM -> pseudo-mask protocol are those of the Swin demo config.
_base_ = './clip_wsss_swin_demo.py'
clip_model = 'WSSS-Demo-CLIP-RN'  # mmseg_clip_wsss.models.DEMO_CLIP_NAME
clip_checkpoint = 'data/demo/clip/clip.pt'
model = dict(
    # the normalisation the CLIP image tower was pretrained with (open_clip's OPENAI_DATASET_MEAN/STD)
    data_preprocessor=dict(mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323]),
    backbone=dict(
        _delete_=True,
        type='CLIPVisionBackbone',
        model_name=clip_model,
        pretrained=clip_checkpoint,
        out_indices=(0, 1, 2, 3),  # (B, 128|256|512|1024, H/4..H/32, W/4..W/32)
        frozen=True),
    neck=dict(in_channels=[128, 256, 512, 1024]),
    decode_head=dict(embed_dim=128),
    text_encoder=dict(model_name=clip_model, pretrained=clip_checkpoint),
    # images without labels (validation, tools/segment.py, names never trained on): the CLIP of the
    # text encoder decides which classes an image holds, from the regions their CAMs claim
    # (CLIPRegionVerifier; the demo world's ground words stand for "no object", as in the CLIP-ES
    # demo config); the head's pooled scores recognise untrained names poorly
    test_cfg=dict(verify_classes=dict(background_words=('ground', 'background', 'lines', 'blobs', 'noise'))))
# A frozen pretrained backbone needs fewer updates than the random-init Swin: 800 iterations
# (measured on the demo world: pseudo-mask mIoU 72.0 after 400, 79.4 after 800).
max_iters = 800
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', eta_min=1e-6, power=0.9, by_epoch=False, begin=30, end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
