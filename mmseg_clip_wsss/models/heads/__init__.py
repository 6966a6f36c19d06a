"""Weakly supervised decode heads: the text-guided head and the plain CAM classifier head."""
from .cam_classifier_head import CAMClassifierHead
from .text_guided_head import TextGuidedHead
from .weak_decode_head import WeakDecodeHead

__all__ = ['WeakDecodeHead', 'TextGuidedHead', 'CAMClassifierHead']
