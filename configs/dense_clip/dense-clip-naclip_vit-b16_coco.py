# NACLIP (Hajimiri et al., WACV 2025): k-k + Gaussian neighbourhood attention (std 5 patches), no
# residual, no feed-forward in the last block. Paper: VOC21 64.1, COCO-Object 36.2 mIoU (ViT-B/16).
#   python tools/make_pseudo_masks.py configs/dense_clip/dense-clip-naclip_vit-b16_coco.py --out-dir work_dirs/dense_clip_naclip_coco --eval
_base_ = ['./dense-clip-maskclip_vit-b16_coco.py']
model = dict(dense_mode='naclip')
