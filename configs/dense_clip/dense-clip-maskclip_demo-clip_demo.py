# Training-free pseudo masks of the demo train split from the dense zero-shot map of the demo CLIP (a
# ModifiedResNet): MaskCLIP's RN variant, the attention pooling's value and output projections read at
# every position of the last stage (TrainingFreeDenseCLIP, docs/dense_modes.md). Paper: VOC20 41.5
# mIoU (RN50, annotation-free, the authors' released figure). No training:
#   python tools/make_pseudo_masks.py configs/dense_clip/dense-clip-maskclip_demo-clip_demo.py --out-dir work_dirs/dense_clip_demo --eval
# Mode 'plain' of this tower is CLIP-ES's Grad-CAM: configs/clip_es/clip-es_demo-clip_demo.py. The
# ViT modes (sclip, clearclip, naclip) need a ViT tower; the demo CLIP is a ModifiedResNet.
_base_ = ['../clip_es/clip-es_demo-clip_demo.py']
model = dict(
    type='TrainingFreeDenseCLIP',
    dense_mode='maskclip',
    # MaskCLIP's code adds no position embedding before the value projection; dict(pos_embed=True) adds
    # the pooling's resized one (what the backbone's 'plain' projected map computes)
    dense_cfg=dict(),
    dense_logit_scale=None)  # the demo CLIP's own learned scale (the papers' 40-65 are OpenAI's range)
# The protocol keeps the probabilities (normalise=False): background where a background word wins the
# softmax or the winning class's probability is below bg_threshold; then the dense CRF of the CLIP-ES
# demo config (the CRF needs a background score above 0). bg_threshold and the temperature were chosen
# on the demo's val split (docs/dense_modes.md: 0.1-0.7 x the CLIP's own scale or 40), scored on train;
# the threshold again (0.1-0.7) for the demo CLIP of 1,000 steps: 0.2 (val 66.76; 0.3 63.89).
cam_cfg = dict(normalise=False, bg_mode='threshold', bg_threshold=0.2)
