# Stage 1 on the generated demo data: a small Swin (random init) -> RSC-A neck -> text-guided head,
# class embeddings from a tiny open_clip text tower with learnable (CoOp) prompts. Image-level labels
# only. `make demo` (tools/run_demo.py) writes the data and the tiny text tower, then runs
#   python tools/train.py configs/demo/clip_wsss_swin_demo.py
_base_ = [
    'mmseg::_base_/default_runtime.py', '../_base_/models/clip_wsss_swin.py',
    '../_base_/datasets/demo_wsss.py', '../_base_/schedules/schedule_demo.py', '../_base_/cam/demo_par.py'
]
# A random-init open_clip text tower saved by tools/run_demo.py; loaded through open_clip's real
# loader exactly like 'ViT-B-16' + a local checkpoint file.
tiny_clip_checkpoint = 'data/demo/wsss_tiny_clip.pt'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    # Swin with a 2-conv stem instead of the 4x4 patchify layer: it learns far faster from random
    # initialisation (mmseg_clip_wsss/models/backbones/conv_stem_swin.py, docs/benchmarks.md).
    backbone=dict(
        type='ConvStemSwinTransformer',
        pretrain_img_size=128,
        embed_dims=32,
        depths=[1, 1, 2, 1],
        num_heads=[1, 2, 4, 8],
        window_size=4,
        drop_path_rate=0.1,
        init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], channels=64, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=64, channels=64, embed_dim=32, norm_cfg=norm_cfg),
    text_encoder=dict(
        class_names='demo',
        model_name='WSSS-Tiny-CLIP',
        pretrained=tiny_clip_checkpoint,
        prompt=dict(type='CoOpPromptLearner', n_ctx=4, ctx_init='a photo of a')),
    # validation and tools/test.py segment like the pseudo masks: the classes the model finds in the
    # image, their CAMs, background below cam_cfg's threshold (the score argmax of a model trained from
    # image-level labels never predicts background)
    test_cfg=dict(mode='whole', output='cam', bg_threshold=0.2))
