# Faster R-CNN on COCO with a Swin-T backbone, the RSC-A neck as an FPN (memory-bank aggregation on every
# level, regional semantic contrast on the fused map) and a bbox head that classifies RoIs against CLIP
# text embeddings of the 80 class names. mmdet's own Faster R-CNN config, with its data, schedule and
# runtime; the Swin-T backbone and AdamW settings are those of mmdet's Swin Mask R-CNN.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', './_base_/coco_text_classes.py']
custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)
pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'  # noqa
num_classes = 80
model = dict(
    type='RSCATwoStageDetector',
    region_contrast=True,
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.2,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
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

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
            'logit_scale': dict(decay_mult=0.),
            'background_embedding': dict(decay_mult=0.)
        }),
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05))
