"""Backbones: channels-first wrapper of timm feature extractors."""
from .timm_nchw_backbone import TIMMNCHWBackbone

__all__ = ['TIMMNCHWBackbone']
