# MaskCLIP's last block on a small ViT CLIP of the demo world (the ViT modes need a ViT tower; the demo
# CLIP is a ModifiedResNet). The other ViT modes override one line (dense-clip-*_demo-clip-vit_demo.py).
#   python tools/pretrain_clip.py --data-root data/demo --model-name WSSS-Demo-CLIP-ViT --out-dir data/demo/clip_vit \
#       --steps 1500 --batch-size 64 --lr 1e-3 --amp bf16   # 16 min on 2 cores; the defaults leave a ViT at chance
#   python -m mmseg_clip_wsss.cli.training_free --config configs/dense_clip/dense-clip-maskclip_demo-clip-vit_demo.py --clip data/demo/clip_vit/clip.pt
# Temperature and bg_threshold are the ModifiedResNet demo config's, not chosen again for this tower.
_base_ = ['./dense-clip-maskclip_demo-clip_demo.py']
clip_vit = 'WSSS-Demo-CLIP-ViT'
clip_vit_pretrained = 'data/demo/clip_vit/clip.pt'
model = dict(
    # the position embedding resized as SCLIP, ClearCLIP and NACLIP's code resizes it
    backbone=dict(model_name=clip_vit, pretrained=clip_vit_pretrained, pos_embed_scale_offset=0.1),
    text_encoder=dict(model_name=clip_vit, pretrained=clip_vit_pretrained))
