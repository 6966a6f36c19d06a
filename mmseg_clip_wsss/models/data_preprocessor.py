"""Helpers beside the data preprocessor (mmseg's ``SegDataPreProcessor`` or mmengine's
``ImgDataPreprocessor``): undoing its normalisation for steps that need the image's pixels (dense CRF,
the CLIP class verifier, the pixel-adaptive refiner)."""
import torch
from torch import Tensor

__all__ = ['denormalise_images']


def denormalise_images(inputs: Tensor, data_preprocessor) -> Tensor:
    """Normalised (B, 3, H, W) inputs back to (B, H, W, 3) uint8 (for dense CRF)."""
    mean = getattr(data_preprocessor, 'mean', None)
    std = getattr(data_preprocessor, 'std', None)
    x = inputs.float()
    if mean is not None and std is not None and getattr(data_preprocessor, '_enable_normalize', True):
        x = x * std.view(1, -1, 1, 1).to(x) + mean.view(1, -1, 1, 1).to(x)
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
