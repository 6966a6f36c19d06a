# Stage 2 on the demo data: an ordinary mmseg segmenter (EncoderDecoder, the demo's small Swin,
# mmseg's UPerHead, per-pixel cross-entropy) trained on the stage-1 pseudo masks and evaluated on the
# GT masks of the val split. Only the training masks differ from a fully supervised config.
#   python tools/train.py configs/demo/stage2_swin_upernet_demo.py
# reads the stage-1 masks of `make demo` (work_dirs/demo/stage1/pseudo_masks); point it elsewhere with
#   --cfg-options train_dataloader.dataset.data_prefix.seg_map_path=/abs/path/to/pseudo_masks
_base_ = [
    'mmseg::_base_/default_runtime.py', '../_base_/datasets/demo_wsss.py',
    '../_base_/schedules/schedule_demo.py'
]
# VOC palette PNGs of tools/make_pseudo_masks.py (absolute: data_prefix paths are otherwise taken
# under data_root)
pseudo_mask_dir = '{{fileDirname}}/../../work_dirs/demo/stage1/pseudo_masks'
# The backbone starts from the stage-1 backbone (same architecture; nothing else is pretrained in the
# demo), as WSSS stage 2 usually starts from the pretrained backbone of stage 1.
stage1_checkpoint = '{{fileDirname}}/../../work_dirs/demo/stage1/iter_1000.pth'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=(128, 128)),
    backbone=dict(
        type='ConvStemSwinTransformer',
        pretrain_img_size=128,
        embed_dims=32,
        patch_size=4,
        window_size=4,
        mlp_ratio=4,
        depths=[1, 1, 2, 1],
        num_heads=[1, 2, 4, 8],
        strides=(4, 2, 2, 2),
        out_indices=(0, 1, 2, 3),
        qkv_bias=True,
        drop_path_rate=0.0,  # see the schedule below
        patch_norm=True,
        act_cfg=dict(type='GELU'),
        norm_cfg=dict(type='LN', requires_grad=True),
        init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=stage1_checkpoint)),
    decode_head=dict(
        type='UPerHead',
        in_channels=[32, 64, 128, 256],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3),
        channels=64,
        dropout_ratio=0.0,
        num_classes={{_base_.num_classes}},
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
train_pipeline = [
    dict(type='LoadWSSSImage'),
    dict(type='LoadWSSSAnnotations', masks='pseudo'),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.9, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(128, 128), cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    dataset=dict(
        label_file=None,
        with_gt_masks=True,
        data_prefix=dict(img_path='JPEGImages', seg_map_path=pseudo_mask_dir),
        pipeline=train_pipeline))
# The UperHead starts from random weights under a backbone that has already trained: it learns 10x
# faster than the backbone (docs/benchmarks.md, "Why the demo configs are set as they are").
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(decode_head=dict(lr_mult=10.))))
# Stage 2 has about 4 minutes of one core at the end of `make demo`, and it under-fits in that time:
# 900 iterations of batch 4 without drop path, head dropout and colour jitter (more, cheaper updates;
# colour carries no class information on this data). The comparison: docs/benchmarks.md, "Why the
# demo configs are set as they are".
max_iters = 900
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', eta_min=1e-6, power=0.9, by_epoch=False, begin=30, end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
