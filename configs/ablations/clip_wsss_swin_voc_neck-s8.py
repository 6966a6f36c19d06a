# configs/clip_wsss_swin_voc.py with the RSC-A neck fusing Swin-T levels 1-3 (strides 8, 16, 32) at
# stride 8 instead of all four levels at stride 4: CAMs at 1/8 of the input, and the neck's and head's
# 3x3 convs run on 4x fewer pixels. tools/benchmark.py: about the CAM baseline's inference time (see
# docs/benchmarks.md); the price is coarser CAMs before refinement.
#   python tools/train.py configs/ablations/clip_wsss_swin_voc_neck-s8.py
_base_ = '../clip_wsss_swin_voc.py'
model = dict(neck=dict(in_index=[1, 2, 3]))
