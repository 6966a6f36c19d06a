"""Segmentors: the weakly supervised encoder-decoder and the training-free CLIP-ES CAM model."""
from .training_free_clip_es import TrainingFreeCLIPES
from .wsss_encoder_decoder import WSSSEncoderDecoder

__all__ = ['WSSSEncoderDecoder', 'TrainingFreeCLIPES']
