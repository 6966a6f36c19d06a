"""Models: text encoder, necks, heads, losses, segmentors and backbones (imported for registration)."""
from . import backbones, heads, losses, necks, segmentors, text  # noqa: F401

__all__ = ['backbones', 'heads', 'losses', 'necks', 'segmentors', 'text']
