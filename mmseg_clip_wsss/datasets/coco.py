"""MS COCO 2014 with image-level labels (WSSS protocol: background + 80 classes)."""
from ..models.text.vocabularies import COCO_CLASSES
from ..registry import DATASETS
from .palette import voc_palette
from .wsss_dataset import WSSSDataset

__all__ = ['COCOWSSSDataset']


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
    METAINFO = dict(classes=tuple(COCO_CLASSES), palette=voc_palette(len(COCO_CLASSES)))

    def __init__(self, ann_file: str = '', img_suffix: str = '.jpg', seg_map_suffix: str = '.png',
                 **kwargs) -> None:
        super().__init__(
            ann_file=ann_file, img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
