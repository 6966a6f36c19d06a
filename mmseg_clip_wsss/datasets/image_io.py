"""The one reader of image and mask files: a file that cannot be decoded is named, with the fix.

Every place of the project that decodes an image or a mask (datasets and their transforms, the
pseudo-mask writer's resume check, the evaluator, the converters, the inferencer and the tools) reads
it here, so the same file fails the same way everywhere:

* a missing file raises :class:`~mmseg_clip_wsss.datasets.errors.MissingDatasetFileError` (a
  ``FileNotFoundError``), an undecodable one :class:`CorruptImageError`, both naming the file and the
  fix the caller gives;
* an image larger than the **pixel limit** raises :class:`ImageTooLargeError`, naming the file, its
  size, the limit and how to raise it.

**The pixel limit.** Decoders refuse very large images as possible decompression bombs (a small file
that decodes into gigabytes): OpenCV above ``2**30`` pixels (its ``OPENCV_IO_MAX_IMAGE_PIXELS``
setting), Pillow already above ``2 * 89,478,485`` (``PIL.Image.MAX_IMAGE_PIXELS``), so a 13400 x 13400
mask that OpenCV reads as an image stopped Pillow. The project applies one limit to both: the
environment variable :data:`PIXEL_LIMIT_ENV` (OpenCV's own setting, read by OpenCV when it is
imported), default :data:`DEFAULT_PIXEL_LIMIT` (OpenCV's default). :func:`apply_pixel_limit` raises
Pillow's limit to it (never lowers it); the package does so when it is imported, so mmseg's and mmcv's
own loaders read the same images. To read larger, trusted images set the variable before the command,
e.g. ``OPENCV_IO_MAX_IMAGE_PIXELS=4000000000 python tools/train.py ...``.
"""
import io
import os
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, Tuple

import numpy as np
from PIL import Image, ImageOps

from .errors import DatasetError, MissingDatasetFileError

__all__ = ['PIXEL_LIMIT_ENV', 'DEFAULT_PIXEL_LIMIT', 'CorruptImageError', 'ImageTooLargeError',
           'pixel_limit', 'apply_pixel_limit', 'check_pixel_count', 'check_encoded_size', 'open_image',
           'read_image', 'read_rgb']

#: The environment variable of the pixel limit: OpenCV's own, so one setting raises both decoders.
PIXEL_LIMIT_ENV = 'OPENCV_IO_MAX_IMAGE_PIXELS'
#: The pixel limit when the variable is not set: OpenCV's default, ``2**30`` (1,073,741,824).
DEFAULT_PIXEL_LIMIT = 1 << 30


class CorruptImageError(OSError):
    """An image or mask file exists but cannot be decoded (corrupt, truncated, not an image)."""


class ImageTooLargeError(DatasetError):
    """An image or mask has more pixels than the pixel limit (:data:`PIXEL_LIMIT_ENV`)."""


def pixel_limit() -> int:
    """The largest number of pixels an image may have: ``$OPENCV_IO_MAX_IMAGE_PIXELS`` or ``2**30``.

    Raises:
        ValueError: the variable is set to something that is no positive integer.
    """
    value = os.environ.get(PIXEL_LIMIT_ENV, '').strip()
    if not value:
        return DEFAULT_PIXEL_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ValueError(f'{PIXEL_LIMIT_ENV}={value!r} is no positive whole number of pixels: set it to '
                         f'e.g. {DEFAULT_PIXEL_LIMIT * 4} or unset it (default {DEFAULT_PIXEL_LIMIT}).')
    return limit


def apply_pixel_limit() -> int:
    """Raise Pillow's decompression-bomb limit to :func:`pixel_limit` (a lower limit is kept lower
    only by ``PIL.Image.MAX_IMAGE_PIXELS = None``, i.e. no check, which stays as it is).

    Returns:
        int: The pixel limit.
    """
    limit = pixel_limit()
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit
    return limit


def check_pixel_count(path: str, size: Tuple[int, int], what: str = 'image') -> None:
    """Refuse a ``(width, height)`` above the pixel limit, naming ``what``, ``path`` and the fix.

    Raises:
        ImageTooLargeError: naming the file, its size, the limit and how to raise it.
    """
    limit = pixel_limit()
    width, height = size
    if width * height > limit:
        raise ImageTooLargeError(
            f'{what} {path} is {width}x{height} (WxH) = {width * height} pixels, more than the limit of '
            f'{limit} pixels that guards the image decoders against decompression bombs: if the file '
            f'is trusted, raise the limit (it applies to Pillow and OpenCV alike) by setting '
            f'{PIXEL_LIMIT_ENV}={width * height} in the environment of the command, e.g. '
            f'`{PIXEL_LIMIT_ENV}={width * height} python tools/...`; or downscale the file.')


def _bomb_error(path: str, what: str, err: Exception) -> ImageTooLargeError:
    return ImageTooLargeError(
        f'{what} {path} has more pixels than Pillow allows ({err}): if the file is trusted, raise '
        f'the pixel limit by setting {PIXEL_LIMIT_ENV} in the environment of the command (now '
        f'{pixel_limit()}), or downscale the file.')


@contextmanager
def open_image(path: str, what: str = 'image', fix: str = 'replace it') -> Iterator[Image.Image]:
    """Open an image file with Pillow (its header only), its size checked against the pixel limit.

    Args:
        path (str): The file.
        what (str): What the file is, for the messages (``'label mask'``, ``'pseudo mask'``, ...).
        fix (str): What to do about a missing or undecodable file, for the messages.

    Yields:
        PIL.Image.Image: The opened image (decoded by ``load()``, ``np.asarray`` or ``convert``).

    Raises:
        MissingDatasetFileError: the file does not exist (a ``FileNotFoundError``).
        CorruptImageError: it is no image Pillow can open.
        ImageTooLargeError: it has more pixels than the pixel limit.
    """
    apply_pixel_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)  # checked below, by name
            img = Image.open(path)
    except FileNotFoundError as err:
        raise MissingDatasetFileError(f'{what} {path} does not exist: {fix}.') from err
    except Image.DecompressionBombError as err:
        raise _bomb_error(path, what, err) from err
    except (OSError, SyntaxError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
        raise CorruptImageError(f'{what} {path} cannot be decoded ({type(err).__name__}: {err}): '
                                f'{fix}.') from err
    with img:
        check_pixel_count(path, img.size, what)
        yield img


def check_encoded_size(data: bytes, path: str, what: str = 'image') -> None:
    """Refuse encoded image bytes (e.g. read by mmengine's file backends) above the pixel limit,
    from their header only, before a decoder allocates the pixels. Bytes Pillow cannot identify are
    left to the decoder that reads them.

    Raises:
        ImageTooLargeError: naming ``path``, its size, the limit and how to raise it.
    """
    apply_pixel_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                size = img.size
    except Image.DecompressionBombError as err:
        raise _bomb_error(path, what, err) from err
    except (OSError, SyntaxError, ValueError):
        return
    check_pixel_count(path, size, what)


def _decode(path: str, what: str, fix: str, convert: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    with open_image(path, what, fix) as img:
        try:
            return convert(img)
        except Image.DecompressionBombError as err:  # a frame or tile larger than the header said
            raise _bomb_error(path, what, err) from err
        except (OSError, SyntaxError, ValueError) as err:  # truncated data, broken chunks
            raise CorruptImageError(f'{what} {path} cannot be decoded ({type(err).__name__}: {err}): '
                                    f'{fix}.') from err


def read_image(path: str, what: str = 'image', fix: str = 'replace it') -> np.ndarray:
    """The pixels of a file as stored: (H, W) for palette/grey masks (their indices), (H, W, C) else.

    No EXIF orientation is applied (masks have none). See :func:`open_image` for the arguments and
    errors.
    """
    return _decode(path, what, fix, np.array)


def _upright_rgb(img: Image.Image) -> np.ndarray:
    img.load()
    img = ImageOps.exif_transpose(img)
    if img.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'F'):
        values = np.asarray(img, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / max(high - low, 1e-12) * 255
        img = Image.fromarray(np.rint(scaled).astype(np.uint8))
    return np.asarray(img.convert('RGB'))


def read_rgb(path: str, what: str = 'image', fix: str = 'replace it') -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, turned upright by its EXIF orientation.

    Any PIL mode works: palette, grey, grey + alpha, RGBA, CMYK, 16-bit and float grey (scaled by
    their own range into 0-255). See :func:`open_image` for the arguments and errors.
    """
    return _decode(path, what, fix, _upright_rgb)

