"""Text side: class vocabularies, prompt learners, the CLIP text encoder and soft targets from
descriptions."""
from .clip_text_encoder import CLIPPromptTextEncoder
from .description_targets import DescriptionTargets, class_word_pattern
from .learned_prompts import (LEARNED_PROMPTS_FORMAT, LearnedPromptsMismatchError, clip_fingerprint,
                              load_learned_prompts, read_learned_prompts, save_learned_prompts)
from .prompt_learner import (DEFAULT_TEMPLATES, BasePromptLearner, CoOpPromptLearner,
                             EnsemblePromptLearner, TemplatePromptLearner)
from .text_tower import TextTower
from .vocabularies import (BACKGROUND_WORDS, PROMPT_NAMES, default_background_words, readable_name,
                           resolve_class_names, resolve_class_prompts)

__all__ = [
    'CLIPPromptTextEncoder', 'BasePromptLearner', 'TemplatePromptLearner', 'CoOpPromptLearner',
    'EnsemblePromptLearner', 'DEFAULT_TEMPLATES', 'TextTower',
    'BACKGROUND_WORDS', 'PROMPT_NAMES', 'resolve_class_names', 'resolve_class_prompts',
    'default_background_words', 'readable_name', 'LEARNED_PROMPTS_FORMAT', 'LearnedPromptsMismatchError',
    'clip_fingerprint', 'load_learned_prompts', 'read_learned_prompts', 'save_learned_prompts',
    'DescriptionTargets', 'class_word_pattern'
]
