# CLIP-ES training-free pseudo masks on COCO 2014 (train split). The class names are our COCO
# vocabulary's readable names (models/text/vocabularies.py); 'keyboard' is a class here, so it is no
# background word.
#   python tools/make_pseudo_masks.py configs/clip_es/clip-es_vit-b16_coco.py --out-dir work_dirs/clip_es_coco --eval
_base_ = ['../_base_/models/clip_es_vit-b16.py', '../_base_/datasets/coco14_wsss.py']
model = dict(class_names='coco')
