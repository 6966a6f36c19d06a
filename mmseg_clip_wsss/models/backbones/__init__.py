"""Backbones: a Swin with a convolutional stem and a channels-first wrapper of timm feature
extractors."""
from .conv_stem_swin import ConvStemSwinTransformer
from .timm_nchw_backbone import TIMMNCHWBackbone

__all__ = ['ConvStemSwinTransformer', 'TIMMNCHWBackbone']
