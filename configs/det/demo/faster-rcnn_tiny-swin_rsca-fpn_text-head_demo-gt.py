# Detection on the generated demo data (tools/make_demo_data.py, 300 train + 100 val images of 128 px,
# 8 shape classes) in a few minutes on a CPU: a small Swin (random init) -> RSC-A FPN neck -> RPN ->
# text-embedding bbox head (tiny open_clip text tower, learnable prompts), trained on the ground-truth
# boxes of the VOC XML (converted to COCO json by tools/run_det_demo.py) and scored on the val boxes with
# mmdet's CocoMetric. The pseudo-mask variant (faster-rcnn_..._demo-pseudo.py) only swaps the train json.
#   python tools/run_det_demo.py   (writes the jsons and runs both)
_base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py', 'mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)

data_root = 'data/demo/'
train_ann_file = 'det/instances_train_gt.json'
val_ann_file = 'det/instances_val_gt.json'
# the random-init tiny open_clip text tower that tools/run_demo.py / tools/run_det_demo.py write
tiny_clip_checkpoint = 'data/demo/wsss_tiny_clip.pt'
classes = ('disc', 'ring', 'square', 'triangle', 'star', 'cross', 'hexagon', 'crescent')
num_classes = len(classes)
img_size = 128
channels = 64

model = dict(
    type='RSCATwoStageDetector',
    region_contrast=True,
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        pretrain_img_size=img_size,
        embed_dims=32,
        depths=[1, 1, 2, 1],
        num_heads=[1, 2, 4, 8],
        window_size=4,
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(
        _delete_=True,
        type='RSCAFPN',
        in_channels=[32, 64, 128, 256],
        out_channels=channels,
        num_outs=5,
        num_classes=num_classes,
        loss_region=dict(type='RegionMemoryInfoNCELoss', temperature=0.1, loss_weight=0.1)),
    rpn_head=dict(
        in_channels=channels,
        feat_channels=channels,
        # objects are 20-70 px: anchors of 16-256 px on strides 4-64
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=channels),
        bbox_head=dict(
            type='TextEmbeddingBBoxHead',
            in_channels=channels,
            fc_out_channels=256,
            num_classes=num_classes,
            reg_class_agnostic=True,
            background='embedding',
            text_encoder=dict(
                type='CLIPPromptTextEncoder',
                class_names=classes,
                model_name='WSSS-Tiny-CLIP',
                pretrained=tiny_clip_checkpoint,
                prompt=dict(type='CoOpPromptLearner', n_ctx=4, ctx_init='a photo of a')))),
    # fewer anchors / proposals / sampled RoIs than on COCO: 128 px images with 1-4 objects
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=300, max_per_img=150),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=300, max_per_img=150),
        rcnn=dict(max_per_img=20)))

dataset_type = 'CocoDataset'
metainfo = dict(classes=classes)
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file=train_ann_file,
        data_prefix=dict(img='JPEGImages/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file=val_ann_file,
        data_prefix=dict(img='JPEGImages/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=data_root + val_ann_file, metric='bbox',
                     format_only=False, backend_args=backend_args)
test_evaluator = val_evaluator

# AdamW from scratch, linear warm-up then two steps; validation at the end only
max_epochs = 8
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[6, 7],
         gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.),
        'relative_position_bias_table': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),
        'logit_scale': dict(decay_mult=0.),
        'background_embedding': dict(decay_mult=0.)
    }),
    clip_grad=dict(max_norm=10.0, norm_type=2))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
