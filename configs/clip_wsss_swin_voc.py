# Stage 1 on PASCAL VOC 2012 (+SBD trainaug labels): Swin-T (ImageNet-1k) -> RSC-A neck ->
# text-guided head; class embeddings from CLIP ViT-B/16's text tower (open_clip, 'openai' weights)
# with learnable CoOp context initialised from "a photo of a". Image-level labels only.
#   python tools/train.py configs/clip_wsss_swin_voc.py            (1 GPU, batch 8)
#   bash tools/dist_train.sh configs/clip_wsss_swin_voc.py 4       (4 GPUs, batch 4 x 8)
# then pseudo masks for stage 2:
#   python tools/make_pseudo_masks.py configs/clip_wsss_swin_voc.py work_dirs/clip_wsss_swin_voc/iter_20000.pth \
#       --out-dir work_dirs/clip_wsss_swin_voc/pseudo_masks --eval
# Data: data/VOCdevkit/VOC2012 (docs/datasets.md). Weights: README "Pretrained weights"; offline,
# point model.backbone.init_cfg.checkpoint and model.text_encoder.pretrained to local files.
_base_ = [
    'mmseg::_base_/default_runtime.py', '_base_/models/clip_wsss_swin.py',
    '_base_/datasets/voc12_wsss.py', '_base_/schedules/schedule_20k_wsss.py'
]
crop_size = (448, 448)
model = dict(
    data_preprocessor=dict(size=crop_size),
    text_encoder=dict(
        class_names='voc',
        model_name='ViT-B-16',
        pretrained='openai',
        prompt=dict(type='CoOpPromptLearner', ctx_init='a photo of a', class_token_position='end'),
        background_words='default'))
train_dataloader = dict(batch_size=8)
cam_cfg = dict(scales=(1.0, 0.5, 1.5, 2.0), flip=True, refine='par', bg_mode='threshold',
               bg_threshold=0.35, ignore_band=(0.25, 0.45))
randomness = dict(seed=0)
