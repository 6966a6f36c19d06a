"""Label masks and the images they belong to: one orientation rule and one check, for every loader and
tool.

**Orientation.** An image is used as it is *displayed*: its EXIF orientation applied. mmcv's
``imfrombytes(flag='color')`` does so with the cv2 and the pillow backends alike, so mmseg/mmdet
pipelines (``LoadImageFromFile``, :class:`LoadWSSSImage`) follow the rule as they are; tools that
need an image's size read it with :func:`image_size`, never from the raw header. Label masks are
PNGs without orientation, in that displayed frame; pseudo masks are written in it (at the loaded
image's ``ori_shape``).

**The check.** :func:`check_label_mask` refuses a mask that cannot belong to its image, naming the
files, what was found and the fix: a colour (RGB) mask instead of class indices, another size (with
the EXIF hint when the mask fits the image's stored, unrotated pixels) or values that are no class.
"""
import os.path as osp
from typing import Optional, Sequence, Tuple

import numpy as np

from .errors import DatasetError
from .image_io import open_image

__all__ = ['EXIF_ORIENTATION', 'PSEUDO_MASK_SIZE_FIX', 'exif_orientation', 'image_size', 'check_label_mask']

#: The EXIF tag of the orientation; values 5-8 turn the image by 90 degrees (width and height swap).
EXIF_ORIENTATION = 0x0112
_SWAPS_SIDES = (5, 6, 7, 8)
#: The PIL transpose that shows a stored image as displayed, per orientation (PIL's exif_transpose).
_TRANSPOSE = {5: 'TRANSPOSE', 6: 'ROTATE_270', 7: 'TRANSVERSE', 8: 'ROTATE_90'}
_CONVERTER = 'tools/dataset_converters/colour_masks_to_labels.py'
#: The fix of a pseudo mask whose size is not its image's: tools/make_pseudo_masks.py writes every mask
#: at its image's size, so a mask of another size was made for another image.
PSEUDO_MASK_SIZE_FIX = ('tools/make_pseudo_masks.py writes each pseudo mask at the size of its image, so '
                        'this one was made for another image (masks of another dataset or split in this '
                        'folder, or a file put there by hand): use the folder of the masks made for these '
                        'images, or make them again (tools/make_pseudo_masks.py CONFIG CHECKPOINT '
                        '--split SPLIT --out-dir DIR --overwrite)')


def exif_orientation(path: str) -> int:
    """EXIF orientation of an image file (1 = as stored; read from the header only).

    Raises:
        FileNotFoundError, CorruptImageError, ImageTooLargeError: see
            :func:`~mmseg_clip_wsss.datasets.image_io.open_image`.
    """
    with open_image(path) as img:
        return int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)


def image_size(path: str) -> Tuple[int, int]:
    """(H, W) of an image as displayed (EXIF orientation applied), as mmcv's loaders give it.

    Args:
        path (str): Image file (only its header is read).

    Returns:
        tuple[int, int]: Height and width in pixels.

    Raises:
        FileNotFoundError, CorruptImageError, ImageTooLargeError: see
            :func:`~mmseg_clip_wsss.datasets.image_io.open_image`.
    """
    with open_image(path) as img:
        width, height = img.size
        orientation = img.getexif().get(EXIF_ORIENTATION, 1)
    return (width, height) if orientation in _SWAPS_SIDES else (height, width)


def _size_fix(mask_path: str, mask_hw: Tuple[int, int], image_path: Optional[str],
              image_hw: Tuple[int, int], size_fix: Optional[str] = None) -> str:
    orientation = exif_orientation(image_path) if image_path and osp.isfile(image_path) else 1
    if mask_hw == image_hw[::-1] and orientation in _SWAPS_SIDES:
        return (f'the image has EXIF orientation {orientation} (it is used turned, as displayed; '
                'mmcv loads it so) and the mask fits its stored, unturned pixels: turn the mask the '
                f'same way (PIL: mask.transpose(Image.Transpose.{_TRANSPOSE[orientation]})) and '
                'save it again')
    return size_fix or ('a label mask holds one class index per pixel of its image: make it at the '
                        'image\'s size, or check that image and mask of this id belong together')


def check_label_mask(label: np.ndarray,
                     mask_path: str,
                     image_path: Optional[str] = None,
                     image_shape: Optional[Sequence[int]] = None,
                     num_classes: Optional[int] = None,
                     ignore_index: int = 255,
                     what: str = 'label mask',
                     size_fix: Optional[str] = None) -> np.ndarray:
    """Refuse a label mask that cannot belong to its image.

    A mask of another size than its image (a 1x1 pseudo mask of a 128x128 image, say) is refused here,
    naming both files, before an mmseg transform fails on it deep inside.

    Args:
        label (np.ndarray): The decoded mask: (H, W) class indices; (H, W, C) is refused.
        mask_path (str): Its file, for the message.
        image_path (str, optional): The image, for the message (and the EXIF hint).
        image_shape (Sequence[int], optional): (H, W, ...) of the image as loaded (displayed).
        num_classes (int, optional): K; values must be in ``[0, K)`` or ``ignore_index``.
        ignore_index (int): The ignore value. Defaults to 255.
        what (str): What the messages call the mask, e.g. ``'pseudo mask'``. Defaults to
            ``'label mask'``.
        size_fix (str, optional): The fix of a mask of another size than its image (e.g.
            :data:`PSEUDO_MASK_SIZE_FIX`); None: make it at the image's size, or check the pair.

    Returns:
        np.ndarray: ``label``, unchanged.

    Raises:
        DatasetError: naming the files, what was found and the fix.
    """
    of_image = f' of image {image_path}' if image_path else ''
    if label.ndim == 3:
        grey = label.shape[2] >= 3 and (label[..., :1] == label[..., 1:3]).all()
        fix = ('save it as a single-channel PNG (PIL: Image.open(p).convert("L").save(p))' if grey
               else f'if its colours are the VOC colour map (0/128/192 values), convert the masks '
               f'into palette PNGs of class indices with `python {_CONVERTER} '
               f'{osp.dirname(mask_path) or "."}` (same look, lossless)')
        raise DatasetError(
            f'{what} {mask_path}{of_image} has {label.shape[2]} channels (shape {label.shape}): '
            f'a mask must hold one class index per pixel (palette or grey PNG); {fix}.')
    if label.ndim != 2:
        raise DatasetError(f'{what} {mask_path}{of_image} has shape {label.shape}; expected '
                           '(H, W) class indices in a palette or grey PNG.')
    if image_shape is not None and tuple(label.shape) != tuple(image_shape[:2]):
        mask_hw, image_hw = tuple(label.shape), tuple(int(s) for s in image_shape[:2])
        raise DatasetError(
            f'{what} {mask_path} is {mask_hw[0]}x{mask_hw[1]} (HxW) but its image '
            f'{image_path or ""} is {image_hw[0]}x{image_hw[1]} as loaded: '
            f'{_size_fix(mask_path, mask_hw, image_path, image_hw, size_fix)}.')
    if num_classes is not None:
        values = np.unique(label)
        bad = [int(v) for v in values if v != ignore_index and not 0 <= v < num_classes]
        if bad:
            raise DatasetError(
                f'{what} {mask_path}{of_image} holds values {bad[:10]} that are neither one of '
                f'the {num_classes} class indices nor the ignore value {ignore_index}: is it a mask '
                'of another class list (check metainfo classes / reduce_zero_label), or a colour '
                'image saved as grey?')
    return label
