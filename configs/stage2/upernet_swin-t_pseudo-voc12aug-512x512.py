# Stage 2: mmseg's own Swin-T UperNet, set up for VOC (21 classes) and trained on our pseudo masks,
# evaluated on the GT masks of VOC val.
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    './_pseudo_voc12.py'
]
model = dict(
    decode_head=dict(num_classes=21),
    auxiliary_head=dict(num_classes=21))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=40000, val_interval=4000)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=40000, by_epoch=False)
]
train_dataloader = dict(batch_size=4, dataset={{_base_.pseudo_voc12_train_dataset}})
val_dataloader = dict(dataset={{_base_.voc12_val_dataset}})
test_dataloader = val_dataloader
