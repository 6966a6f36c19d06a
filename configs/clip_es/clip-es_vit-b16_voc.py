# CLIP-ES training-free pseudo masks on PASCAL VOC 2012 (train split, as the paper reports them).
# Paper: 70.8 mIoU (CAMs), 75.0 with dense CRF, on VOC train.
#   python tools/make_pseudo_masks.py configs/clip_es/clip-es_vit-b16_voc.py --out-dir work_dirs/clip_es_voc --eval
_base_ = ['../_base_/models/clip_es_vit-b16.py', '../_base_/datasets/voc12_wsss.py']
# CLIP-ES's class names for VOC (clip_text.py of its code), prompted as written (readable_names=False):
# a few names get a disambiguating word (bird avian, chair seat, person with clothes,people,human,
# tvmonitor screen), 'diningtable' and 'pottedplant' stay one word
model = dict(class_names=[
    'background', 'aeroplane', 'bicycle', 'bird avian', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair seat',
    'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person with clothes,people,human', 'pottedplant',
    'sheep', 'sofa', 'train', 'tvmonitor screen'
])
