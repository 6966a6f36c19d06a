"""Models: text encoder, necks, heads, losses, segmentors, detectors and backbones (imported for
registration)."""
from . import backbones, detectors, heads, losses, necks, segmentors, text  # noqa: F401

__all__ = ['backbones', 'detectors', 'heads', 'losses', 'necks', 'segmentors', 'text']
