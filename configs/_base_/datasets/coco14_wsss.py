# MS COCO 2014 for WSSS: background + 80 classes (layout and preparation: docs/datasets.md).
# Labels (ImageLabels/*.txt), image sets (ImageSets/*.txt) and evaluation masks
# (SegmentationClass/*) are made from the instances json by tools/dataset_converters/coco_to_labels.py.
# Training reads image-level labels and NO masks; GT masks are read only by evaluation.
custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)

dataset_type = 'COCOWSSSDataset'
data_root = 'data/coco'
crop_size = (448, 448)
train_pipeline = [
    dict(type='LoadWSSSImage'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='Pad', size=crop_size),
    dict(type='PackWSSSInputs')
]
test_pipeline = [
    dict(type='LoadWSSSImage'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
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
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train2014'),
        ann_file='ImageSets/train2014.txt',
        label_file='ImageLabels/train2014.txt',
        with_gt_masks=False,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='val2014', seg_map_path='SegmentationClass/val2014'),
        ann_file='ImageSets/val2014.txt',
        with_gt_masks=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# The train split with labels and GT masks, for CAM / pseudo-mask quality.
cam_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train2014', seg_map_path='SegmentationClass/train2014'),
        ann_file='ImageSets/train2014.txt',
        label_file='ImageLabels/train2014.txt',
        with_gt_masks=True,
        pipeline=cam_pipeline))

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
