"""Models: text encoder, necks and their class memory bank, heads, losses, segmentors, detectors and
backbones (imported for registration), and the project's open_clip model configs."""
from . import backbones, detectors, heads, losses, memory, necks, segmentors, text  # noqa: F401
from .open_clip_models import (DEMO_CLIP_NAME, TINY_CLIP_NAME, load_open_clip,
                               register_project_clip_configs, write_random_clip_checkpoint)

__all__ = ['backbones', 'detectors', 'heads', 'losses', 'memory', 'necks', 'segmentors', 'text',
           'DEMO_CLIP_NAME', 'TINY_CLIP_NAME', 'load_open_clip', 'register_project_clip_configs',
           'write_random_clip_checkpoint']
