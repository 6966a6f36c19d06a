# CLIP text-guided WSSS model: mmseg Swin-T -> RSC-A neck -> text-guided head, CLIP ViT-B/16 text
# encoder with learnable (CoOp) prompts. Trained from image-level labels (`gt_image_labels`).
#
# Override in a derived config, e.g.
#   model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='<local swin_tiny.pth>')),
#                text_encoder=dict(pretrained='<local ViT-B-16 checkpoint>'))
# The number of classes K follows from text_encoder.class_names (WSSSEncoderDecoder hands it to
# the neck and the head). SyncBN falls back to BN when mmengine's runner trains without a
# distributed launcher.
# The plugin is imported by the dataset bases (or the top-level config: custom_imports).

norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='WSSSEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='SwinTransformer',
        pretrain_img_size=224,
        embed_dims=96,
        patch_size=4,
        window_size=7,
        mlp_ratio=4,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        strides=(4, 2, 2, 2),
        out_indices=(0, 1, 2, 3),
        qkv_bias=True,
        qk_scale=None,
        patch_norm=True,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        use_abs_pos_embed=False,
        act_cfg=dict(type='GELU'),
        norm_cfg=dict(type='LN', requires_grad=True),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/'
            'swin_tiny_patch4_window7_224_20220317-1cdeb081.pth')),
    neck=dict(
        type='RSCANeck',
        in_channels=[96, 192, 384, 768],
        channels=256,
        fusion='sum',
        use_aggregation=True,
        gate_init=0.1,
        memory_momentum=0.9,
        loss_region=dict(type='RegionMemoryInfoNCELoss', temperature=0.1, loss_weight=0.1),
        norm_cfg=norm_cfg),
    decode_head=dict(
        type='TextGuidedHead',
        in_channels=256,
        channels=256,
        embed_dim=512,
        num_convs=1,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        supervision='weak',
        loss_mlc=dict(type='MultiLabelScoreLoss', pooling='lse', lse_r=1.0, loss_weight=1.0),
        loss_itc=dict(type='ImageTextContrastiveLoss', temperature=0.07, loss_weight=0.1),
        # per-pixel loss of supervision='full' (stage 2 / masks available)
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    text_encoder=dict(
        type='CLIPPromptTextEncoder',
        class_names='voc',
        model_name='ViT-B-16',
        pretrained='openai',
        prompt=dict(type='CoOpPromptLearner', ctx_init='a photo of a', class_token_position='end'),
        freeze_text_tower=True),
    background_index=0,
    cam_background='auto',
    cam_norm='relu',
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
