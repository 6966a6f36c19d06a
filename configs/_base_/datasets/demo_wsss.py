# The synthetic demo dataset (tools/make_demo_data.py --out data/demo), in the VOC devkit layout:
# 300 train + 100 val images of 128x128 px, background + 8 shape/texture classes.
# Training reads image-level labels (ImageLabels/train.txt, made from Annotations/*.xml by the VOC
# converter) and NO masks; GT masks are read only by evaluation (val_dataloader, cam_dataloader).
custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)

dataset_type = 'DemoWSSSDataset'
data_root = 'data/demo'
num_classes = 9  # background + 8 shapes (DemoWSSSDataset.METAINFO['classes'])
crop_size = (128, 128)
train_pipeline = [
    dict(type='LoadWSSSImage'),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.9, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='Pad', size=crop_size),
    dict(type='PackWSSSInputs')
]
test_pipeline = [
    dict(type='LoadWSSSImage'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadWSSSAnnotations'),
    dict(type='PackWSSSInputs')
]
cam_pipeline = [
    dict(type='LoadWSSSImage'),
    dict(type='LoadWSSSAnnotations'),
    dict(type='PackWSSSInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages'),
        ann_file='ImageSets/Segmentation/train.txt',
        label_file='ImageLabels/train.txt',
        with_gt_masks=False,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        with_gt_masks=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# The train split with labels and GT masks: CAM / pseudo-mask quality (pseudo_mask_miou).
cam_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/train.txt',
        label_file='ImageLabels/train.txt',
        with_gt_masks=True,
        pipeline=cam_pipeline))

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
