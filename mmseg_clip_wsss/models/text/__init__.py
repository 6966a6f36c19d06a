"""Text side: class vocabularies, prompt learners and the CLIP text encoder."""
from .clip_text_encoder import CLIPPromptTextEncoder
from .prompt_learner import (DEFAULT_TEMPLATES, PROMPT_MODES, BasePromptLearner, CoOpPromptLearner,
                             EnsemblePromptLearner, TemplatePromptLearner, build_prompt_learner)
from .text_tower import TextTower
from .tiny_clip import TINY_CLIP_CFG, TINY_CLIP_NAME, register_tiny_clip, write_random_clip_checkpoint
from .vocabularies import (BACKGROUND_WORDS, COCO_CLASSES, DEMO_CLASSES, PROMPT_NAMES, VOC_CLASSES,
                           default_background_words, get_dataset_classes, readable_name,
                           resolve_class_names, resolve_class_prompts)

__all__ = [
    'CLIPPromptTextEncoder', 'BasePromptLearner', 'TemplatePromptLearner', 'CoOpPromptLearner',
    'EnsemblePromptLearner', 'PROMPT_MODES', 'DEFAULT_TEMPLATES', 'build_prompt_learner', 'TextTower',
    'TINY_CLIP_NAME', 'TINY_CLIP_CFG', 'register_tiny_clip', 'write_random_clip_checkpoint',
    'VOC_CLASSES', 'COCO_CLASSES', 'DEMO_CLASSES', 'BACKGROUND_WORDS', 'PROMPT_NAMES', 'resolve_class_names',
    'resolve_class_prompts', 'get_dataset_classes', 'default_background_words', 'readable_name'
]
