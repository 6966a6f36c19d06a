# The model of the CLIP demo: the demo world's CLIP, pretrained on this machine
# (tools/pretrain_clip.py: contrastive image-caption pretraining of open_clip's ModifiedResNet + text
# transformer), the way a real run starts from CLIP weights. Its image tower is the frozen backbone
# (dense maps of its 4 stages), its text tower with learned CoOp context gives the class embeddings
# of the text-guided head; RSC-A neck in between. K follows from text_encoder.class_names.
_base_ = './clip_wsss_swin.py'
clip_model = 'WSSS-Demo-CLIP-RN'  # mmseg_clip_wsss.models.DEMO_CLIP_NAME
clip_checkpoint = 'data/demo/clip/clip.pt'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    # the normalisation the CLIP image tower was pretrained with (open_clip's OPENAI_DATASET_MEAN/STD)
    data_preprocessor=dict(mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323], size=(128, 128)),
    backbone=dict(
        _delete_=True,
        type='CLIPVisionBackbone',
        model_name=clip_model,
        pretrained=clip_checkpoint,
        out_indices=(0, 1, 2, 3),  # (B, 128|256|512|1024, H/4..H/32, W/4..W/32)
        frozen=True),
    neck=dict(in_channels=[128, 256, 512, 1024], channels=64, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=64, channels=64, embed_dim=128, norm_cfg=norm_cfg),
    text_encoder=dict(
        class_names='demo',
        model_name=clip_model,
        pretrained=clip_checkpoint,
        prompt=dict(type='CoOpPromptLearner', n_ctx=4, ctx_init='a photo of a')),
    # validation and tools/test.py segment like the pseudo masks: the classes the model finds in the
    # image, their CAMs, background below cam_cfg's threshold (the score argmax of a model trained from
    # image-level labels never predicts background). The CLIP of the text encoder decides which
    # classes an unlabelled image holds, from the regions their CAMs claim (CLIPRegionVerifier; the
    # demo world's ground words stand for "no object", as in the CLIP-ES demo config); the head's
    # pooled scores recognise untrained names poorly.
    test_cfg=dict(mode='whole', output='cam', bg_threshold=0.2,
                  verify_classes=dict(background_words=('ground', 'background', 'lines', 'blobs', 'noise'))))
