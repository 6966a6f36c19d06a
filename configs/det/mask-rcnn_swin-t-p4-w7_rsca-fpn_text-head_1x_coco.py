# Mask R-CNN on COCO with a Swin-T backbone (mmdet's own Swin-T Mask R-CNN config: data, schedule, AdamW,
# runtime), the RSC-A neck as an FPN (memory-bank aggregation on every level, regional semantic contrast
# on the fused map) and a bbox head that classifies RoIs against CLIP text embeddings of the 80 class
# names. The mask head is mmdet's.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './_base_/coco_text_classes.py']
custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)
num_classes = 80
model = dict(
    type='RSCATwoStageDetector',
    region_contrast=True,
    neck=dict(
        _delete_=True,
        type='RSCAFPN',
        in_channels=[96, 192, 384, 768],
        out_channels=256,
        num_outs=5,
        num_classes=num_classes,
        loss_region=dict(type='RegionMemoryInfoNCELoss', temperature=0.1, loss_weight=0.1)),
    roi_head=dict(
        bbox_head=dict(
            type='TextEmbeddingBBoxHead',
            num_classes=num_classes,
            reg_class_agnostic=True,
            background='embedding',
            text_encoder=dict(
                type='CLIPPromptTextEncoder',
                class_names={{_base_.coco_det_classes}},
                model_name='ViT-B-16',
                pretrained='openai',
                prompt=dict(type='TemplatePromptLearner')))))
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'logit_scale': dict(decay_mult=0.),
            'background_embedding': dict(decay_mult=0.)
        }))
