"""Text side: class vocabularies, prompt learners and the CLIP text encoder."""
from .clip_text_encoder import CLIPPromptTextEncoder
from .prompt_learner import (DEFAULT_TEMPLATES, BasePromptLearner, CoOpPromptLearner,
                             EnsemblePromptLearner, TemplatePromptLearner)
from .text_tower import TextTower
from .tiny_clip import TINY_CLIP_CFG, TINY_CLIP_NAME, register_tiny_clip, write_random_clip_checkpoint
from .vocabularies import (BACKGROUND_WORDS, PROMPT_NAMES, default_background_words, readable_name,
                           resolve_class_names, resolve_class_prompts)

__all__ = [
    'CLIPPromptTextEncoder', 'BasePromptLearner', 'TemplatePromptLearner', 'CoOpPromptLearner',
    'EnsemblePromptLearner', 'DEFAULT_TEMPLATES', 'TextTower',
    'TINY_CLIP_NAME', 'TINY_CLIP_CFG', 'register_tiny_clip', 'write_random_clip_checkpoint',
    'BACKGROUND_WORDS', 'PROMPT_NAMES', 'resolve_class_names', 'resolve_class_prompts',
    'default_background_words', 'readable_name'
]
