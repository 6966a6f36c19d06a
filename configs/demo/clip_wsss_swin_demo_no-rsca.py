# The stage-1 demo model without RSC-A: the neck only fuses the backbone levels (no memory-bank
# aggregation, no regional semantic contrast, no memory update); same text-guided head, learned
# prompts and schedule. The with/without RSC-A row of tools/label_efficiency.py.
_base_ = './clip_wsss_swin_demo.py'
model = dict(
    neck=dict(use_aggregation=False, loss_region=None),
    region_contrast=False)
