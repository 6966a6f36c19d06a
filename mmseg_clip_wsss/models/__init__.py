"""Models: text encoder, necks and their class memory bank, heads, losses, segmentors, detectors and
backbones (imported for registration)."""
from . import backbones, detectors, heads, losses, memory, necks, segmentors, text  # noqa: F401

__all__ = ['backbones', 'detectors', 'heads', 'losses', 'memory', 'necks', 'segmentors', 'text']
