# Stage 1 on MS COCO 2014 (image-level labels from instances_train2014.json): the VOC recipe with
# COCO's 81 classes, batch 8, 80k iterations (the usual 4x of VOC for COCO's 80k images).
#   python tools/train.py configs/clip_wsss_swin_coco.py
# Data: data/coco (docs/datasets.md). Weights: README "Pretrained weights".
_base_ = [
    'mmseg::_base_/default_runtime.py', '_base_/models/clip_wsss_swin.py',
    '_base_/datasets/coco14_wsss.py', '_base_/schedules/schedule_20k_wsss.py'
]
crop_size = (448, 448)
model = dict(
    data_preprocessor=dict(size=crop_size),
    text_encoder=dict(
        class_names='coco',
        model_name='ViT-B-16',
        pretrained='openai',
        prompt=dict(type='CoOpPromptLearner', ctx_init='a photo of a', class_token_position='end'),
        background_words='default'))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=1500, end=80000),
]
train_cfg = dict(max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
cam_cfg = dict(scales=(1.0, 0.5, 1.5, 2.0), flip=True, refine='par', bg_mode='threshold',
               bg_threshold=0.35, ignore_band=(0.25, 0.45))
randomness = dict(seed=0)
