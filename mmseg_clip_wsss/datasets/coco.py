"""MS COCO 2014 with image-level labels (WSSS protocol: background + 80 classes)."""
from ..registry import DATASETS
from .palette import voc_palette
from .wsss_dataset import WSSSDataset

__all__ = ['COCOWSSSDataset', 'COCO_CLASSES']

#: MS COCO 2014/2017 (WSSS protocol): background + mmdet's 80 ``CocoDataset`` classes, in label order.
COCO_CLASSES = ('background', 'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train',
                'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign', 'parking meter',
                'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra',
                'giraffe', 'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis',
                'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard',
                'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon',
                'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog',
                'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed', 'dining table',
                'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave',
                'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
                'teddy bear', 'hair drier', 'toothbrush')


@DATASETS.register_module()
class COCOWSSSDataset(WSSSDataset):
    """MS COCO 2014 for WSSS: ``'background'`` + mmdet's 80 ``CocoDataset`` class names.

    Masks for evaluation are rendered from the instances json by
    ``tools/dataset_converters/coco_to_labels.py --masks-out`` (label ``k`` = class ``k`` of
    ``classes``, VOC palette PNGs). Layout (``data_root='data/coco'``, see ``docs/datasets.md``)::

        train2014/*.jpg  val2014/*.jpg
        annotations/instances_{train,val}2014.json
        ImageSets/{train,val}2014.txt            written by coco_to_labels.py --split-out
        ImageLabels/{train,val}2014.txt          written by coco_to_labels.py
        SegmentationClass/{train,val}2014/*.png  written by coco_to_labels.py --masks-out

    Args:
        **kwargs: See :class:`WSSSDataset`.
    """
    METAINFO = dict(classes=COCO_CLASSES, palette=voc_palette(len(COCO_CLASSES)).tolist())
