"""Losses: multi-label from score maps, multi-label of image embeddings against prompts (prompt
tuning), region-memory InfoNCE, image-text contrastive (against class names or against descriptions),
and the noise-robust stage-2 losses (confidence-guided cross-entropy, early-learning label
correction)."""
from .background_negative_prompt_loss import BackgroundNegativePromptLoss
from .confidence_guided_ce_loss import ConfidenceGuidedCrossEntropyLoss
from .description_contrastive_loss import DescriptionContrastiveLoss, region_text_similarity
from .early_learning_correction_loss import EarlyLearningCorrectionLoss, early_learning_ended
from .image_text_contrastive_loss import ImageTextContrastiveLoss
from .multilabel_score_loss import MultiLabelScoreLoss
from .region_memory_infonce_loss import RegionMemoryInfoNCELoss

__all__ = [
    'MultiLabelScoreLoss', 'RegionMemoryInfoNCELoss', 'ImageTextContrastiveLoss',
    'ConfidenceGuidedCrossEntropyLoss', 'EarlyLearningCorrectionLoss', 'early_learning_ended',
    'BackgroundNegativePromptLoss', 'DescriptionContrastiveLoss', 'region_text_similarity'
]
