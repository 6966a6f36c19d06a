"""WSSS datasets (image-level labels from a label file, GT masks only for evaluation), their
transforms, the label-file format and the annotation converters (image labels; COCO detection json
from VOC XML boxes or from pseudo masks)."""
from .coco import COCOWSSSDataset
from .coco_annotations import (coco_category_to_label, coco_to_labels, render_coco_mask,
                               save_palette_mask)
from .demo import DEMO_CLASSES, DEMO_COOCCURRING, DEMO_TEXTURES, DemoWSSSDataset
from .image_labels import (format_label_summary, labels_to_multi_hot, load_image_labels,
                           write_image_labels)
from .palette import voc_colormap, voc_palette
from .pseudo_masks_to_coco import mask_to_instances, pseudo_masks_to_coco
from .transforms import (CorruptImageError, LoadImageWSSS, LoadWSSSAnnotations, PackWSSSInputs,
                         jpeg_is_complete)
from .voc import VOCWSSSDataset
from .voc_annotations import parse_voc_xml, voc_xml_to_labels
from .voc_to_coco import parse_voc_boxes, voc_xml_to_coco
from .wsss_dataset import WSSSDataset

__all__ = [
    'WSSSDataset', 'VOCWSSSDataset', 'COCOWSSSDataset', 'DemoWSSSDataset', 'DEMO_CLASSES',
    'DEMO_TEXTURES', 'DEMO_COOCCURRING', 'PackWSSSInputs', 'LoadImageWSSS', 'LoadWSSSAnnotations',
    'CorruptImageError', 'jpeg_is_complete', 'load_image_labels', 'write_image_labels',
    'labels_to_multi_hot', 'format_label_summary', 'voc_colormap', 'voc_palette', 'parse_voc_xml',
    'voc_xml_to_labels', 'coco_category_to_label', 'coco_to_labels', 'render_coco_mask',
    'save_palette_mask', 'mask_to_instances', 'pseudo_masks_to_coco', 'parse_voc_boxes',
    'voc_xml_to_coco'
]
