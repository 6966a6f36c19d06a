"""Helpers beside the data preprocessor (mmseg's ``SegDataPreProcessor`` or mmengine's
``ImgDataPreprocessor``): undoing its normalisation for steps that need the image's pixels (dense CRF,
the CLIP class verifier, the pixel-adaptive refiner), and applying it again to pixels resized by
such a step (CLIP-ES's bicubic input resize), and padding test images too small for the backbone."""
import torch
from torch import Tensor

__all__ = ['denormalise_images', 'normalise_images', 'DEFAULT_MIN_INPUT_SIDE', 'min_input_side',
           'pad_small_test_images']

#: Shortest image side of a backbone that does not say its own (``min_input_side``): the output
#: stride of mmseg's ResNet, Swin and MiT backbones, in px.
DEFAULT_MIN_INPUT_SIDE = 32


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


def min_input_side(model) -> int:
    """The shortest image side (px) ``model``'s backbone takes: its ``min_input_side`` attribute
    (:class:`CLIPVisionBackbone` has one), else :data:`DEFAULT_MIN_INPUT_SIDE`."""
    return int(getattr(getattr(model, 'backbone', None), 'min_input_side', DEFAULT_MIN_INPUT_SIDE))


def pad_small_test_images(model) -> None:
    """Make ``model``'s data preprocessor pad a test image whose side is under :func:`min_input_side`
    up to it, so that a very wide or tall image (1000 x 13 px, resized by the test pipeline to
    128 x 2) goes through the backbone instead of ending in a pooling error.

    mmseg's ``SegDataPreProcessor`` pads at the right and bottom with ``pad_val`` when its
    ``test_cfg`` gives a ``size`` (a side already that long is left alone), records the padding in
    each sample's ``padding_size``, and the segmentor's ``postprocess_result`` crops it off before
    resizing the prediction to the image. A preprocessor that already pads at test time (a
    ``test_cfg`` of its own) or is no ``SegDataPreProcessor`` is left unchanged.

    Args:
        model: A segmentor with ``data_preprocessor`` (and ``backbone``).
    """
    preprocessor = getattr(model, 'data_preprocessor', None)
    if preprocessor is None or not hasattr(preprocessor, 'test_cfg') or preprocessor.test_cfg:
        return
    side = min_input_side(model)
    preprocessor.test_cfg = dict(size=(side, side))
