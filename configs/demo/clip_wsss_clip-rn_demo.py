# Stage 1 of `make demo`: the demo world's CLIP (frozen image tower, text tower with learned CoOp
# context) -> RSC-A neck -> text-guided head (_base_/models/clip_wsss_clip-rn_demo.py), image-level
# labels only.
#   python tools/pretrain_clip.py --data-root data/demo        # writes data/demo/clip/clip.pt
#   python tools/train.py configs/demo/clip_wsss_clip-rn_demo.py
_base_ = [
    'mmseg::_base_/default_runtime.py', '../_base_/models/clip_wsss_clip-rn_demo.py',
    '../_base_/datasets/demo_wsss.py', '../_base_/schedules/schedule_demo.py', '../_base_/cam/demo_par.py'
]
# A frozen pretrained backbone needs fewer updates than the random-init Swin: 800 iterations
# (docs/benchmarks.md).
max_iters = 800
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', eta_min=1e-6, power=0.9, by_epoch=False, begin=30, end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
