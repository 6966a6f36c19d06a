# Stage 2 on VOC with the confidence-guided cross-entropy of CLIP-ES (Lin et al., CVPR 2023): pixels
# whose pseudo-mask confidence (<pseudo mask dir>/confidence/, written by tools/make_pseudo_masks.py)
# is below the threshold do not count, in the decode and the auxiliary head.
_base_ = ['./upernet_swin-t_pseudo-voc12aug-512x512.py']
custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)
model = dict(
    decode_head=dict(
        type='ConfidenceUPerHead',
        loss_decode=dict(
            _delete_=True, type='ConfidenceGuidedCrossEntropyLoss', threshold=0.75,
            loss_weight=1.0)),
    auxiliary_head=dict(
        type='ConfidenceFCNHead',
        loss_decode=dict(
            _delete_=True, type='ConfidenceGuidedCrossEntropyLoss', threshold=0.75,
            loss_weight=0.4)))
# _pseudo_voc12.py's train pipeline with the confidence map loaded beside the mask
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadWSSSAnnotations', masks='pseudo'),
        dict(type='LoadConfidenceMap'),
        dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackWSSSInputs')
    ]))
