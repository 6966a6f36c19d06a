# Stage-2 training data on PASCAL VOC 2012: the trainaug images with the stage-1 pseudo masks (VOC
# palette PNGs written by tools/make_pseudo_masks.py) instead of GT masks. A stage-2 config inherits
# this next to an mmseg config and swaps it in with
#   train_dataloader = dict(dataset={{_base_.pseudo_voc12_train_dataset}})
# Evaluation stays mmseg's: the GT masks of val. Point the masks elsewhere with
#   --cfg-options train_dataloader.dataset.data_prefix.seg_map_path=/abs/path/to/pseudo_masks
# The masks load through LoadWSSSAnnotations(masks='pseudo'): a missing or cut-short mask is named,
# with the fix (re-running tools/make_pseudo_masks.py resumes and rewrites it).
custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)
pseudo_mask_dir = '{{fileDirname}}/../../work_dirs/clip_wsss_swin_voc/pseudo_masks'
pseudo_voc12_train_dataset = dict(
    _delete_=True,
    type='PascalVOCDataset',
    data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(img_path='JPEGImages', seg_map_path=pseudo_mask_dir),
    ann_file='ImageSets/Segmentation/trainaug.txt',
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadWSSSAnnotations', masks='pseudo'),
        dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs')
    ])
# GT masks of VOC val, for stage-2 configs whose mmseg base evaluates on another dataset.
voc12_val_dataset = dict(
    _delete_=True,
    type='PascalVOCDataset',
    data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
    ann_file='ImageSets/Segmentation/val.txt',
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(2048, 512), keep_ratio=True),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs')
    ])
