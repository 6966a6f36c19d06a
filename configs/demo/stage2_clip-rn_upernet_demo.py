# Stage 2 of `make demo`: an ordinary mmseg segmenter (EncoderDecoder, mmseg's UPerHead, per-pixel
# cross-entropy) on the CLIP image tower, started from the same pretrained CLIP as stage 1 and
# fine-tuned (BN statistics kept), trained on the stage-1 pseudo masks and evaluated on the GT masks
# of the val split. `make demo` trains it a second time on the GT masks (the fully supervised bound).
#   python tools/train.py configs/demo/stage2_clip-rn_upernet_demo.py \
#       --cfg-options train_dataloader.dataset.data_prefix.seg_map_path=/abs/path/to/pseudo_masks
_base_ = './stage2_swin_upernet_demo.py'
clip_model = 'WSSS-Demo-CLIP-RN'
clip_checkpoint = 'data/demo/clip/clip.pt'
pseudo_mask_dir = '{{fileDirname}}/../../work_dirs/demo/stage1/pseudo_masks'
model = dict(
    data_preprocessor=dict(mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323]),
    backbone=dict(
        _delete_=True,
        type='CLIPVisionBackbone',
        model_name=clip_model,
        pretrained=clip_checkpoint,
        out_indices=(0, 1, 2, 3),
        frozen=False,
        norm_eval=True),
    decode_head=dict(in_channels=[128, 256, 512, 1024]))
train_dataloader = dict(dataset=dict(data_prefix=dict(seg_map_path=pseudo_mask_dir)))
max_iters = 600
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', eta_min=1e-6, power=0.9, by_epoch=False, begin=30, end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
