# Stage-1 WSSS schedule in line with the single-stage / CLIP-guided WSSS literature (ToCo, WeCLIP:
# ~20k iterations, AdamW, poly decay after a linear warm-up, 10x learning rate on the new layers).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys=dict(
        neck=dict(lr_mult=10.),
        decode_head=dict(lr_mult=10.),
        text_encoder=dict(lr_mult=10., decay_mult=0.),
        absolute_pos_embed=dict(decay_mult=0.),
        relative_position_bias_table=dict(decay_mult=0.),
        norm=dict(decay_mult=0.))),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=1500, end=20000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20000, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000, max_keep_ckpts=3,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
# Exact --resume (random generator states in checkpoints), a stop naming the loss term at the first
# NaN/inf loss, and an error naming the keys when a checkpoint of another config is loaded.
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='CheckpointShapeCheckHook'),
]
