"""Backbones: an open_clip image tower as a dense backbone, a Swin with a convolutional stem and a
channels-first wrapper of timm feature extractors."""
from .clip_vision_backbone import CLIPVisionBackbone, resize_pos_embed
from .conv_stem_swin import ConvStemSwinTransformer
from .timm_nchw_backbone import TIMMNCHWBackbone

__all__ = ['CLIPVisionBackbone', 'resize_pos_embed', 'ConvStemSwinTransformer', 'TIMMNCHWBackbone']
