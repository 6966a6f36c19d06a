# ClearCLIP (Lan et al., ECCV 2024): q-q attention, no residual, no feed-forward in the last block.
# Paper: VOC20 80.9 mIoU (ViT-B/16).
#   python tools/make_pseudo_masks.py configs/dense_clip/dense-clip-clearclip_vit-b16_voc.py --out-dir work_dirs/dense_clip_clearclip_voc --eval
_base_ = ['./dense-clip-maskclip_vit-b16_voc.py']
model = dict(dense_mode='clearclip')
