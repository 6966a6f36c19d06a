# Ablation of configs/clip_wsss_swin_voc.py without RSC-A: the neck only fuses the four Swin-T levels
# (lateral 1x1 convs, upsample, sum, 3x3 conv); no memory-bank aggregation, no regional semantic
# contrast loss and no memory update. Text-guided head, prompts and schedule are unchanged.
#   python tools/train.py configs/ablations/clip_wsss_swin_voc_no-rsca.py
_base_ = '../clip_wsss_swin_voc.py'
model = dict(
    neck=dict(use_aggregation=False, loss_region=None),
    region_contrast=False)
