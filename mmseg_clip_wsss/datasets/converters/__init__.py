"""Annotation converters: VOC XML -> image-level labels / COCO json, COCO instances json -> image-level
labels (+ masks), pseudo masks -> COCO json, colour masks -> label masks. Their command lines are the
thin scripts in ``tools/dataset_converters/``; the logic lives here so that the demo data generator,
the demos and the tests run the very same code."""
from .coco_annotations import coco_category_to_label, coco_to_labels, render_coco_mask
from .colour_masks import colour_masks_to_labels
from .pseudo_masks_to_coco import mask_to_instances, pseudo_masks_to_coco
from .voc_annotations import check_class_names, parse_voc_xml, voc_xml_to_labels
from .voc_to_coco import voc_xml_to_coco

__all__ = [
    'coco_category_to_label', 'coco_to_labels', 'render_coco_mask', 'mask_to_instances',
    'pseudo_masks_to_coco', 'parse_voc_xml', 'check_class_names', 'voc_xml_to_labels',
    'voc_xml_to_coco', 'colour_masks_to_labels'
]
