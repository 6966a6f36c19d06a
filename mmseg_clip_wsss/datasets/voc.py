"""PASCAL VOC 2012 (+ SBD ``trainaug``) with image-level labels."""
from mmseg.datasets import PascalVOCDataset

from ..registry import DATASETS
from .wsss_dataset import WSSSDataset

__all__ = ['VOCWSSSDataset', 'VOC_CLASSES']

#: PASCAL VOC 2012: background + 20 classes, as mmseg's ``PascalVOCDataset`` spells them.
VOC_CLASSES = tuple(PascalVOCDataset.METAINFO['classes'])


@DATASETS.register_module()
class VOCWSSSDataset(WSSSDataset):
    """PASCAL VOC 2012 for WSSS: background + 20 classes, exactly as mmseg's ``PascalVOCDataset``.

    Layout (``data_root='data/VOCdevkit/VOC2012'``, see ``docs/datasets.md``)::

        JPEGImages/*.jpg
        SegmentationClass/*.png          GT masks of train/val (evaluation only)
        SegmentationClassAug/*.png       SBD masks (from mmseg's voc_aug.py; evaluation only)
        Annotations/*.xml                -> ImageLabels/*.txt by voc_xml_to_labels.py
        ImageSets/Segmentation/{train,val,trainaug}.txt

    Args:
        ann_file (str): Split file, e.g. ``'ImageSets/Segmentation/trainaug.txt'``.
        **kwargs: See :class:`WSSSDataset` (``label_file``, ``with_gt_masks``, ...).
    """
    METAINFO = dict(
        classes=VOC_CLASSES, palette=[list(c) for c in PascalVOCDataset.METAINFO['palette']])
