"""WSSS datasets (image-level labels from a label file, GT masks only for evaluation), their
transforms and class lists, the label-file format, the one image/mask reader (:mod:`.image_io`), the
VOC palette PNG writer, the pseudo-mask confidence maps and the annotation converters
(:mod:`.converters`)."""
from .atomic_files import atomic_file, write_json_atomically
from .caption_files import (caption_image_id, read_caption_file, read_caption_jsonl, read_coco_captions,
                            write_coco_captions)
from .class_lists import DATASET_TYPES, dataset_classes, parse_class_list
from .class_names import DuplicateClassNameError, check_distinct_class_names, class_name_key
from .coco import COCO_CLASSES, COCOWSSSDataset
from .confidence_map import (CONFIDENCE_DIR, confidence_path, read_confidence_png,
                             write_confidence_png)
from .data_root import check_data_root, data_root_parts
from .converters import (check_class_names, coco_category_to_label, coco_to_labels,
                         colour_masks_to_labels, mask_to_instances, parse_voc_xml,
                         pseudo_masks_to_coco, render_coco_mask, voc_xml_to_coco, voc_xml_to_labels)
from .demo import DEMO_CLASSES, DemoWSSSDataset
from .errors import DatasetError, MissingDatasetFileError
from .file_stamps import file_identity, folder_stamps, nested_strings
from .image_io import (PIXEL_LIMIT_ENV, ImageTooLargeError, apply_pixel_limit, open_image, pixel_limit,
                       read_image, read_rgb)
from .image_text_dataset import CAPTIONS, ImageTextDataset, image_text_sample
from .image_text_shards import ImageTextShards, expand_shards, resume_skip, shards_for
from .image_labels import (background_index_of, check_class_list, format_label_summary,
                           labels_to_multi_hot, load_image_labels, write_image_labels)
from .label_mask import check_label_mask, image_size
from .palette import colours_to_labels, save_png_atomically, voc_palette, write_palette_png
from .soft_labels import load_soft_labels, write_soft_labels
from .source_ratio_sampler import SourceRatioSampler
from .split_file import read_split_file
from .transforms import (CORRUPTIONS, CorruptImageError, ImageCorruption, LoadConfidenceMap,
                         LoadWSSSAnnotations, LoadWSSSImage, PackWSSSInputs, RandomImageCorruption,
                         corrupt_image, jpeg_is_complete)
from .voc import VOC_CLASSES, VOCWSSSDataset
from .wsss_dataset import WSSSDataset

__all__ = [
    'atomic_file', 'write_json_atomically', 'file_identity', 'folder_stamps', 'nested_strings',
    'WSSSDataset', 'VOCWSSSDataset', 'COCOWSSSDataset', 'DemoWSSSDataset', 'VOC_CLASSES',
    'COCO_CLASSES', 'DEMO_CLASSES', 'DATASET_TYPES',
    'dataset_classes', 'parse_class_list', 'PackWSSSInputs', 'LoadWSSSImage', 'LoadWSSSAnnotations',
    'CorruptImageError', 'jpeg_is_complete', 'load_image_labels', 'write_image_labels',
    'labels_to_multi_hot', 'format_label_summary', 'voc_palette', 'write_palette_png',
    'save_png_atomically', 'CONFIDENCE_DIR', 'confidence_path', 'read_confidence_png',
    'write_confidence_png', 'LoadConfidenceMap', 'CORRUPTIONS', 'corrupt_image', 'ImageCorruption',
    'RandomImageCorruption',
    'parse_voc_xml', 'check_class_names', 'voc_xml_to_labels', 'coco_category_to_label',
    'coco_to_labels', 'render_coco_mask', 'mask_to_instances', 'pseudo_masks_to_coco',
    'voc_xml_to_coco', 'DatasetError', 'background_index_of', 'check_class_list', 'check_label_mask',
    'image_size', 'colours_to_labels', 'colour_masks_to_labels', 'read_split_file', 'PIXEL_LIMIT_ENV',
    'ImageTooLargeError', 'apply_pixel_limit', 'open_image', 'pixel_limit', 'read_image', 'read_rgb',
    'DuplicateClassNameError', 'check_distinct_class_names', 'class_name_key', 'MissingDatasetFileError',
    'ImageTextDataset', 'ImageTextShards', 'image_text_sample', 'CAPTIONS', 'expand_shards', 'shards_for',
    'resume_skip', 'SourceRatioSampler', 'read_caption_file', 'read_caption_jsonl', 'read_coco_captions',
    'write_coco_captions', 'caption_image_id', 'load_soft_labels', 'write_soft_labels', 'check_data_root',
    'data_root_parts'
]
