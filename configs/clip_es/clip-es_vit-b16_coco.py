# CLIP-ES training-free pseudo masks on COCO 2014 (train split).
#   python tools/make_pseudo_masks.py configs/clip_es/clip-es_vit-b16_coco.py --out-dir work_dirs/clip_es_coco --eval
_base_ = ['../_base_/models/clip_es_vit-b16.py', '../_base_/datasets/coco14_wsss.py']
# CLIP-ES's COCO names and background words (clip_text.py of its code), prompted as written, in the
# dataset's class order; 'sknowboard' is their spelling. Its COCO background list drops 'keyboard' (a
# class) and 'sign'. Boxes of the class-aware affinity: regions above 0.7 x max (0.4 on VOC).
model = dict(
    class_names=[
        'background', 'person with clothes,people,human', 'bicycle', 'car', 'motorbike', 'aeroplane', 'bus',
        'train', 'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench',
        'bird avian', 'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe',
        'backpack,bag', 'umbrella,parasol', 'handbag,purse', 'necktie', 'suitcase', 'frisbee', 'skis',
        'sknowboard', 'sports ball', 'kite', 'baseball bat', 'glove', 'skateboard', 'surfboard',
        'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'dessertspoon', 'bowl', 'banana',
        'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake',
        'chair seat', 'sofa', 'pottedplant', 'bed', 'diningtable', 'toilet', 'tvmonitor screen', 'laptop',
        'mouse', 'remote control', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
        'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hairdrier,blowdrier',
        'toothbrush'
    ],
    background_words=('ground', 'land', 'grass', 'tree', 'building', 'wall', 'sky', 'lake', 'water', 'river',
                      'sea', 'railway', 'railroad', 'helmet', 'cloud', 'house', 'mountain', 'ocean', 'road',
                      'rock', 'street', 'valley', 'bridge'),
    box_threshold=0.7)
