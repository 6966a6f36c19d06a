# Stage 2 on the demo data with the confidence-guided cross-entropy of CLIP-ES (Lin et al., CVPR 2023):
# pseudo-mask pixels whose confidence (tools/make_pseudo_masks.py writes <mask dir>/confidence/) is
# below `threshold` do not count; everything else is the demo's stage-2 config.
#   python tools/train.py configs/stage2/demo/stage2_clip-rn_upernet_cgce_demo.py
_base_ = ['../../demo/stage2_clip-rn_upernet_demo.py']
model = dict(
    decode_head=dict(
        type='ConfidenceUPerHead',  # UPerHead whose losses get the confidence as pixel weights
        loss_decode=dict(
            _delete_=True, type='ConfidenceGuidedCrossEntropyLoss', threshold=0.75, mode='ignore')))
# The base config's train pipeline with the confidence map loaded beside the mask (so the geometric
# transforms move both) and packed by PackWSSSInputs.
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadWSSSImage'),
        dict(type='LoadWSSSAnnotations', masks='pseudo'),
        dict(type='LoadConfidenceMap'),
        dict(type='RandomResize', scale=(128, 128), ratio_range=(0.9, 1.25), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(128, 128), cat_max_ratio=0.9),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackWSSSInputs')
    ]))
