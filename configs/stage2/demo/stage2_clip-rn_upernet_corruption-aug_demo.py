# Stage 2 on the demo data with image corruptions as training augmentation: half of the training
# crops get Gaussian / shot / impulse noise, defocus blur or JPEG compression at severity 1-3
# (imagecorruptions; motion blur is left out: its one-sided kernel displaces objects, so the masks
# would no longer fit). Measure the effect with tools/robustness.py against the plain stage-2 config
# (docs/benchmarks.md).
#   python tools/train.py configs/stage2/demo/stage2_clip-rn_upernet_corruption-aug_demo.py
_base_ = ['../../demo/stage2_clip-rn_upernet_demo.py']
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadWSSSImage'),
        dict(type='LoadWSSSAnnotations', masks='pseudo'),
        dict(type='RandomResize', scale=(128, 128), ratio_range=(0.9, 1.25), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(128, 128), cat_max_ratio=0.9),
        dict(type='RandomFlip', prob=0.5),
        dict(type='RandomImageCorruption', max_severity=3, prob=0.5),
        dict(type='PackSegInputs')
    ]))
