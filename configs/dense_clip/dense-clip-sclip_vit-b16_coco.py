# SCLIP (Wang et al., ECCV 2024): q-q + k-k attention in the last block.
# Paper: VOC21 59.6 mIoU (ViT-B/16).
#   python tools/make_pseudo_masks.py configs/dense_clip/dense-clip-sclip_vit-b16_coco.py --out-dir work_dirs/dense_clip_sclip_coco --eval
_base_ = ['./dense-clip-maskclip_vit-b16_coco.py']
model = dict(dense_mode='sclip')
