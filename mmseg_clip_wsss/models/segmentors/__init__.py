"""Segmentors: the weakly supervised encoder-decoder (with its CLIP class verifier) and the training-free
CLIP-ES CAM model and its dense zero-shot counterpart."""
from .clip_region_verifier import CLIPRegionVerifier
from .training_free_clip_es import TrainingFreeCLIPES
from .training_free_dense_clip import TrainingFreeDenseCLIP
from .wsss_encoder_decoder import WSSSEncoderDecoder

__all__ = ['WSSSEncoderDecoder', 'TrainingFreeCLIPES', 'TrainingFreeDenseCLIP', 'CLIPRegionVerifier']
