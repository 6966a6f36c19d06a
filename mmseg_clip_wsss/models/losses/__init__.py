"""Losses: multi-label from score maps, region-memory InfoNCE, image-text contrastive."""
from .image_text_contrastive_loss import ImageTextContrastiveLoss
from .multilabel_score_loss import MultiLabelScoreLoss
from .region_memory_infonce_loss import RegionMemoryInfoNCELoss

__all__ = ['MultiLabelScoreLoss', 'RegionMemoryInfoNCELoss', 'ImageTextContrastiveLoss']
