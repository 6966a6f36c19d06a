"""Models: text encoder, necks and their class memory bank, heads, losses, segmentors, detectors and
backbones (imported for registration), the project's open_clip model configs, and the
open-vocabulary combination of a trained head with a dense zero-shot map."""
from . import backbones, detectors, heads, losses, memory, necks, segmentors, text  # noqa: F401
from .open_clip_models import (DEMO_CLIP_NAME, TINY_CLIP_NAME, load_open_clip,
                               register_project_clip_configs, write_random_clip_checkpoint)
from .open_vocab_combiner import OpenVocabCombiner

__all__ = ['backbones', 'detectors', 'heads', 'losses', 'memory', 'necks', 'segmentors', 'text',
           'DEMO_CLIP_NAME', 'TINY_CLIP_NAME', 'load_open_clip', 'register_project_clip_configs',
           'write_random_clip_checkpoint', 'OpenVocabCombiner']
