"""Detectors: the two-stage detector whose RSC-A neck learns by regional semantic contrast."""
from .rsca_two_stage import RSCATwoStageDetector, box_activation_maps, instance_image_labels

__all__ = ['RSCATwoStageDetector', 'box_activation_maps', 'instance_image_labels']
