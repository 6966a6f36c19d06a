# PASCAL VOC 2012 + SBD for WSSS (layout and preparation: docs/datasets.md).
# Training reads image-level labels (ImageLabels/trainaug.txt, made from Annotations/*.xml by
# tools/dataset_converters/voc_xml_to_labels.py) and NO masks: the train pipeline has no annotation
# loading and the dataset carries no mask paths (with_gt_masks=False). GT masks are read only by
# evaluation: val_dataloader (mIoU of the segmenter on val) and cam_dataloader (mIoU of CAMs /
# pseudo masks on the train split, the standard WSSS protocol).
custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)

dataset_type = 'VOCWSSSDataset'
data_root = 'data/VOCdevkit/VOC2012'
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
    # GT masks are loaded after ``Resize``: metrics compare at the original resolution
    dict(type='LoadWSSSAnnotations'),
    dict(type='PackWSSSInputs')
]
# CAM / pseudo-mask evaluation: original resolution (multi-scale + flip happen in the CAM code)
cam_pipeline = [
    dict(type='LoadWSSSImage'),
    dict(type='LoadWSSSAnnotations'),
    dict(type='PackWSSSInputs')
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadWSSSImage'),
    dict(
        type='TestTimeAug',
        transforms=[[dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
                    [
                        dict(type='RandomFlip', prob=0., direction='horizontal'),
                        dict(type='RandomFlip', prob=1., direction='horizontal')
                    ], [dict(type='LoadWSSSAnnotations')], [dict(type='PackWSSSInputs')]])
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages'),
        ann_file='ImageSets/Segmentation/trainaug.txt',
        label_file='ImageLabels/trainaug.txt',
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
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        with_gt_masks=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# The train split with its labels and GT masks, for CAM / pseudo-mask quality (VOC train, 1,464
# images). For pseudo masks of all of trainaug (stage 2), use ann_file='ImageSets/Segmentation/
# trainaug.txt' with with_gt_masks=False (or seg_map_path='SegmentationClassAug' to score them).
cam_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/train.txt',
        label_file='ImageLabels/trainaug.txt',
        with_gt_masks=True,
        pipeline=cam_pipeline))

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
