# Training-free pseudo masks on PASCAL VOC 2012 (train split) from the dense zero-shot map of a frozen
# CLIP ViT-B/16 ('openai') with MaskCLIP's last block (TrainingFreeDenseCLIP, docs/dense_modes.md).
# Paper: VOC20 49.5 mIoU (ViT-B/16, annotation-free, the authors' released figure). No training:
#   python tools/make_pseudo_masks.py configs/dense_clip/dense-clip-maskclip_vit-b16_voc.py --out-dir work_dirs/dense_clip_voc --eval
# The other modes override one line (dense-clip-{sclip,clearclip,naclip}_vit-b16_voc.py); mode 'plain'
# is CLIP-ES's Grad-CAM (configs/clip_es/clip-es_vit-b16_voc.py). Text rows, input size and the dense
# CRF are CLIP-ES's (the base config); the papers prompt OpenAI's 80 ImageNet templates
# (model.text_encoder.prompt.templates) and slide 224- or 448-px windows over the whole image.
_base_ = ['../clip_es/clip-es_vit-b16_voc.py']
model = dict(
    type='TrainingFreeDenseCLIP',
    dense_mode='maskclip',  # 'maskclip', 'sclip', 'clearclip', 'naclip'; 'plain': CLIP-ES's Grad-CAM
    dense_cfg=dict(),  # the authors' switches; e.g. dict(gaussian_std=3.0) for NACLIP's neighbourhood
    dense_logit_scale=40.0,  # SCLIP's and NACLIP's temperature (ClearCLIP: 50)
    # the position embedding resized bicubically by the scale factor (side + 0.1) / 14, as SCLIP,
    # ClearCLIP and NACLIP's code does (MaskCLIP's resizes to the size itself: set
    # pos_embed_scale_offset=None), and not rounded to float16 (CLIP-ES's choice)
    backbone=dict(interpolate_mode='bicubic', pos_embed_float16=False, pos_embed_scale_offset=0.1))
# Probabilities as made (normalise=False); background where a background word wins the softmax or the
# winning class's probability is below bg_threshold. 0.3 is the value chosen on the demo's val split
# (docs/dense_modes.md); it was not measured on this dataset. The papers' prob_thd runs over all
# classes (SCLIP and NACLIP: 0.1, ClearCLIP: 0.5 on VOC21); here the softmax runs over the image's
# labels + the background words. Then CLIP-ES's dense CRF (the base config).
cam_cfg = dict(normalise=False, bg_mode='threshold', bg_threshold=0.3)
