"""Helpers beside the data preprocessor (mmseg's ``SegDataPreProcessor`` or mmengine's
``ImgDataPreprocessor``): undoing its normalisation for steps that need the image's pixels (dense CRF,
the CLIP class verifier, the pixel-adaptive refiner), and applying it again to pixels resized by
such a step (CLIP-ES's bicubic input resize)."""
import torch
from torch import Tensor

__all__ = ['denormalise_images', 'normalise_images']


def denormalise_images(inputs: Tensor, data_preprocessor) -> Tensor:
    """Normalised (B, 3, H, W) inputs back to (B, H, W, 3) uint8 (for dense CRF)."""
    mean = getattr(data_preprocessor, 'mean', None)
    std = getattr(data_preprocessor, 'std', None)
    x = inputs.float()
    if mean is not None and std is not None and getattr(data_preprocessor, '_enable_normalize', True):
        x = x * std.view(1, -1, 1, 1).to(x) + mean.view(1, -1, 1, 1).to(x)
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def normalise_images(images: Tensor, data_preprocessor) -> Tensor:
    """(B, H, W, 3) uint8 images -> (B, 3, H, W) float inputs normalised as ``data_preprocessor``
    normalises (its mean and std; unchanged values when it does not normalise). The inverse of
    :func:`denormalise_images` up to float rounding."""
    x = images.permute(0, 3, 1, 2).float()
    mean = getattr(data_preprocessor, 'mean', None)
    std = getattr(data_preprocessor, 'std', None)
    if mean is not None and std is not None and getattr(data_preprocessor, '_enable_normalize', True):
        x = (x - mean.view(1, -1, 1, 1).to(x)) / std.view(1, -1, 1, 1).to(x)
    return x.contiguous()
