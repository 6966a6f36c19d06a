# Stage 2 with our text-guided head, fully supervised by the pseudo masks: Swin-T -> RSC-A neck as
# a plain multi-scale fusion (no memory bank without image-level contrast) -> TextGuidedHead with
# supervision='full' (per-pixel cross-entropy), scoring pixels against the CLIP text embeddings.
_base_ = [
    'mmseg::_base_/default_runtime.py', '../_base_/models/clip_wsss_swin.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py', '../_base_/schedules/schedule_20k_wsss.py',
    './_pseudo_voc12.py'
]
custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)
model = dict(
    data_preprocessor=dict(size=(512, 512)),
    region_contrast=False,
    neck=dict(use_aggregation=False, loss_region=None),
    decode_head=dict(supervision='full'))
train_cfg = dict(max_iters=40000, val_interval=4000)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=40000, by_epoch=False)
]
train_dataloader = dict(batch_size=4, dataset={{_base_.pseudo_voc12_train_dataset}})
