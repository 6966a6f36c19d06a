# MaskCLIP's RN dense map with the attention pooling's resized position embedding added before the value
# projection (what CLIPVisionBackbone's 'plain' projected map computes; MaskCLIP's code adds none).
#   python tools/make_pseudo_masks.py configs/dense_clip/dense-clip-maskclip-pos_demo-clip_demo.py --out-dir work_dirs/dense_clip_pos_demo --eval
_base_ = ['./dense-clip-maskclip_demo-clip_demo.py']
model = dict(dense_cfg=dict(pos_embed=True))
