"""Weakly supervised decode heads (the text-guided head, the plain CAM classifier head), mmseg heads
whose losses see the pseudo-mask confidence (stage 2) and the text-embedding bbox head for
detection."""
from .cam_classifier_head import CAMClassifierHead
from .confidence_weighted_head import (ConfidenceFCNHead, ConfidenceUPerHead,
                                       ConfidenceWeightedHeadMixin)
from .text_embedding_bbox_head import TextEmbeddingBBoxHead
from .text_guided_head import TextGuidedHead
from .weak_decode_head import WeakDecodeHead

__all__ = [
    'WeakDecodeHead', 'TextGuidedHead', 'CAMClassifierHead', 'TextEmbeddingBBoxHead',
    'ConfidenceWeightedHeadMixin', 'ConfidenceUPerHead', 'ConfidenceFCNHead'
]
