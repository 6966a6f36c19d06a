# Mode 'plain' (CLIP-ES's Grad-CAM with class-aware attention affinity, TrainingFreeCLIPES) on a small
# ViT CLIP of the demo world, beside the ViT dense modes (dense-clip-*_demo-clip-vit_demo.py). The CLIP:
#   python tools/pretrain_clip.py --data-root data/demo --model-name WSSS-Demo-CLIP-ViT --out-dir data/demo/clip_vit \
#       --steps 1500 --batch-size 64 --lr 1e-3 --amp bf16   # 16 min on 2 cores; the defaults leave a ViT at chance
#   python -m mmseg_clip_wsss.cli.training_free --config configs/dense_clip/dense-clip-plain_demo-clip-vit_demo.py --clip data/demo/clip_vit/clip.pt
# The protocol is the CLIP-ES demo config's, unchanged (chosen for the ModifiedResNet CLIP).
_base_ = ['../clip_es/clip-es_demo-clip_demo.py']
clip_vit = 'WSSS-Demo-CLIP-ViT'
clip_vit_pretrained = 'data/demo/clip_vit/clip.pt'
model = dict(
    type='TrainingFreeDenseCLIP',
    dense_mode='plain',
    backbone=dict(model_name=clip_vit, pretrained=clip_vit_pretrained),
    text_encoder=dict(model_name=clip_vit, pretrained=clip_vit_pretrained))
