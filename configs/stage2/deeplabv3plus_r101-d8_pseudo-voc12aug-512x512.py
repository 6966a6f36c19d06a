# Stage 2: mmseg's own DeepLabV3+ R101 (voc12aug recipe, 40k iterations) trained on our pseudo masks
# -- the standard stage-2 model of the WSSS literature.
_base_ = [
    'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py', './_pseudo_voc12.py'
]
train_dataloader = dict(dataset={{_base_.pseudo_voc12_train_dataset}})
