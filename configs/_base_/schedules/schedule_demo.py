# Short iteration-based schedule for the generated demo data on a CPU: AdamW, poly decay after a
# linear warm-up, validation and a checkpoint at the end (and every `checkpoint_interval`).
max_iters = 1000
checkpoint_interval = 500
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys=dict(
        absolute_pos_embed=dict(decay_mult=0.),
        relative_position_bias_table=dict(decay_mult=0.),
        norm=dict(decay_mult=0.))),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', eta_min=1e-6, power=0.9, by_epoch=False, begin=30, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=checkpoint_interval,
                    max_keep_ckpts=1, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
# Exact --resume (random generator states in checkpoints), a stop naming the loss term at the first
# NaN/inf loss, and an error naming the keys when a checkpoint of another config is loaded.
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='CheckpointShapeCheckHook'),
]
randomness = dict(seed=0)
