"""Weakly supervised decode heads (the text-guided head, the plain CAM classifier head) and the
text-embedding bbox head for detection."""
from .cam_classifier_head import CAMClassifierHead
from .text_embedding_bbox_head import TextEmbeddingBBoxHead
from .text_guided_head import TextGuidedHead
from .weak_decode_head import WeakDecodeHead

__all__ = ['WeakDecodeHead', 'TextGuidedHead', 'CAMClassifierHead', 'TextEmbeddingBBoxHead']
