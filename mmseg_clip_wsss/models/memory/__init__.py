"""The class memory bank of the RSC-A necks (segmentation and detection)."""
from .class_memory_bank import ClassMemoryBank

__all__ = ['ClassMemoryBank']
