# The clearclip mode (docs/dense_modes.md) on a small ViT CLIP of the demo world.
#   python -m mmseg_clip_wsss.cli.training_free --config configs/dense_clip/dense-clip-clearclip_demo-clip-vit_demo.py --clip data/demo/clip_vit/clip.pt
_base_ = ['./dense-clip-maskclip_demo-clip-vit_demo.py']
model = dict(dense_mode='clearclip')
