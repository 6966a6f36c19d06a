"""Loading transforms that fail clearly on bad files (missing, corrupt, too large, wrong channel
count)."""
import os.path as osp
from typing import Optional

import cv2
import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations

from ...registry import TRANSFORMS, register_deprecated_alias
from ..errors import MissingDatasetFileError
from ..image_io import CorruptImageError, ImageTooLargeError, check_encoded_size
from ..label_mask import PSEUDO_MASK_SIZE_FIX, check_label_mask, image_size

__all__ = ['CorruptImageError', 'ImageTooLargeError', 'LoadWSSSImage', 'LoadWSSSAnnotations',
           'jpeg_is_complete', 'png_bit_depth', 'to_uint8']

_DOCS = 'docs/datasets.md'
_REPAIR = f're-download/re-extract it (see {_DOCS}), or remove its id from the split file'
#: What :class:`LoadWSSSAnnotations` says of the masks it loads: what they are, and the fix of a
#: missing one, of an undecodable one and of one of another size than its image (None: the generic).
MASK_KINDS = {
    'gt': dict(what='ground-truth mask',
               missing=f'evaluation reads GT masks; prepare them as {_DOCS} describes',
               corrupt=f'restore it (see {_DOCS})', size=None),
    'pseudo': dict(what='pseudo mask',
                   missing='make the pseudo masks of the training split first (tools/make_pseudo_masks.py '
                   'CONFIG CHECKPOINT --out-dir DIR), and point data_prefix.seg_map_path at DIR',
                   corrupt='if tools/make_pseudo_masks.py wrote it, a run was cut short: run it again with '
                   'the same arguments (it resumes, writing anew every mask that is not whole); else '
                   'restore it', size=PSEUDO_MASK_SIZE_FIX),
}


def png_bit_depth(data: bytes) -> int:
    """Bit depth of a PNG's samples from its header (IHDR), 0 for anything that is not a PNG."""
    if data[:8] != b'\x89PNG\r\n\x1a\n' or len(data) < 25 or data[12:16] != b'IHDR':
        return 0
    return data[24]


def to_uint8(img: np.ndarray) -> np.ndarray:
    """16-bit (uint16, or int32 as Pillow returns 16-bit grey) images -> uint8 by their high byte.

    8-bit images are returned as they are.
    """
    if img.dtype == np.uint8:
        return img
    if img.dtype in (np.uint16, np.int32, np.uint32, np.int64):
        return (np.clip(img, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)
    return img


def jpeg_is_complete(data: bytes) -> bool:
    """Whether JPEG bytes end their last scan with an end-of-image marker.

    A truncated JPEG (interrupted download or extraction) loses the ``FFD9`` end-of-image marker
    after its last start-of-scan ``FFDA``; decoders such as OpenCV then fill the missing part with
    grey and only print a warning. ``FF`` bytes inside entropy-coded data are always stuffed, so the
    marker cannot appear by chance; trailing bytes after the marker are allowed.

    Args:
        data (bytes): File contents starting with the JPEG SOI marker ``FFD8``.

    Returns:
        bool: True when an ``FFD9`` follows the last ``FFDA``.
    """
    last_scan = data.rfind(b'\xff\xda')
    return last_scan >= 0 and data.rfind(b'\xff\xd9') > last_scan


@TRANSFORMS.register_module()
class LoadWSSSImage(LoadImageFromFile):
    """``LoadImageFromFile`` that names the file and the fix when an image cannot be used.

    * a missing file raises :class:`FileNotFoundError` with its path;
    * undecodable bytes, or a JPEG cut short (see :func:`jpeg_is_complete`), raise
      :class:`CorruptImageError` with its path;
    * an image with more pixels than the pixel limit raises :class:`ImageTooLargeError` with its path,
      its size and how to raise the limit (:mod:`mmseg_clip_wsss.datasets.image_io`), before it is
      decoded;
    * grayscale, single-channel, RGBA and 16-bit images are turned into 3-channel 8-bit images
      (16-bit samples keep their high byte);
    * the EXIF orientation is applied (the image as displayed), as mmcv's ``'color'`` flag does: the
      one orientation rule of :mod:`mmseg_clip_wsss.datasets.label_mask`.

    Required keys: ``img_path``. Modified keys: ``img``, ``img_shape``, ``ori_shape``.

    Args:
        to_float32 (bool): Convert the image to float32. Defaults to False.
        color_type (str): ``mmcv.imfrombytes`` flag. Defaults to 'color'.
        imdecode_backend (str): ``mmcv.imfrombytes`` backend. Defaults to 'cv2'.
        ignore_empty (bool): Return ``None`` instead of raising (mmengine then refetches another
            sample in training). Defaults to False.
        check_jpeg_end (bool): Reject truncated JPEGs. Defaults to True.
        backend_args (dict, optional): File backend arguments. Defaults to None.
    """

    def __init__(self,
                 to_float32: bool = False,
                 color_type: str = 'color',
                 imdecode_backend: str = 'cv2',
                 ignore_empty: bool = False,
                 check_jpeg_end: bool = True,
                 *,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(
            to_float32=to_float32,
            color_type=color_type,
            imdecode_backend=imdecode_backend,
            ignore_empty=ignore_empty,
            backend_args=backend_args)
        self.check_jpeg_end = check_jpeg_end

    def _fail(self, error: Exception) -> None:
        if self.ignore_empty:
            return None
        raise error

    def _read(self, filename: str) -> bytes:
        """The file's bytes; refused when missing, above the pixel limit or a JPEG cut short."""
        try:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise MissingDatasetFileError(
                f'image file {filename} does not exist: restore it (re-extract the dataset, see '
                f'{_DOCS}) or remove its id from the split file.') from e
        check_encoded_size(img_bytes, filename, 'image file')
        if self.check_jpeg_end and img_bytes[:2] == b'\xff\xd8' and not jpeg_is_complete(img_bytes):
            raise CorruptImageError(
                f'image file {filename} is a truncated JPEG (no end-of-image marker after its last '
                f'scan): {_REPAIR}.')
        return img_bytes

    def _decode(self, img_bytes: bytes, filename: str) -> np.ndarray:
        """Decoded pixels (H, W[, C]) as mmcv gives them (BGR, EXIF orientation applied)."""
        try:
            if png_bit_depth(img_bytes) == 16:
                # decoders differ on 16-bit PNGs (Pillow clips them at 255 converting to RGB): read
                # all 16 bits, keep the high byte below (BGR order and EXIF orientation applied, as
                # mmcv loads images)
                img = cv2.imdecode(np.frombuffer(img_bytes, np.uint8),
                                   cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
            else:
                img = mmcv.imfrombytes(img_bytes, flag=self.color_type, backend=self.imdecode_backend)
        except Exception as e:  # decoders raise many types (PIL.UnidentifiedImageError, cv2.error)
            raise CorruptImageError(
                f'image file {filename} cannot be decoded ({type(e).__name__}: {e}): {_REPAIR}.') from e
        if img is None or img.size == 0:
            raise CorruptImageError(
                f'image file {filename} cannot be decoded (corrupt or not an image): {_REPAIR}.')
        return img

    def _check_bytes(self, img_bytes: bytes, filename: str) -> bytes:
        """Encoded bytes that came with the sample (a tar shard): refused like a file's."""
        check_encoded_size(img_bytes, filename, 'image')
        if self.check_jpeg_end and img_bytes[:2] == b'\xff\xd8' and not jpeg_is_complete(img_bytes):
            raise CorruptImageError(f'image {filename} is a truncated JPEG (no end-of-image marker after '
                                    'its last scan): write the shard again or leave the sample out.')
        return img_bytes

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']``, or decode ``results['img_bytes']`` when the sample carries
        its encoded image (a tar shard, :class:`~mmseg_clip_wsss.datasets.ImageTextShards`; the key is
        removed).

        Args:
            results (dict): Data info with ``img_path`` (and optionally ``img_bytes``).

        Returns:
            dict: ``results`` with ``img`` (H, W, 3), ``img_shape`` and ``ori_shape``; None for a
            file that cannot be used when ``ignore_empty``.

        Raises:
            FileNotFoundError, CorruptImageError, ImageTooLargeError: naming the file and the fix.
        """
        filename = results['img_path']
        carried = results.pop('img_bytes', None)
        try:
            img_bytes = self._read(filename) if carried is None else self._check_bytes(carried, filename)
            img = self._decode(img_bytes, filename)
        except (FileNotFoundError, CorruptImageError, ImageTooLargeError) as error:
            return self._fail(error)
        img = to_uint8(img)  # 16-bit -> 8-bit
        if img.ndim == 2:  # (H, W) -> (H, W, 3)
            img = np.repeat(img[..., None], 3, axis=2)
        elif img.shape[2] in (1, 2):  # grey (+ alpha)
            img = np.repeat(img[..., :1], 3, axis=2)
        elif img.shape[2] == 4:  # drop alpha
            img = np.ascontiguousarray(img[..., :3])
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(ignore_empty={self.ignore_empty}, '
                f'to_float32={self.to_float32}, color_type={self.color_type!r}, '
                f'imdecode_backend={self.imdecode_backend!r}, '
                f'check_jpeg_end={self.check_jpeg_end}, backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class LoadWSSSAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` (mask -> ``gt_seg_map``) with clear errors: the GT masks of
    evaluation, or (``masks='pseudo'``) the pseudo masks a stage-2 segmenter trains on.

    * a data info without ``seg_map_path`` (a dataset built with ``with_gt_masks=False``, i.e. WSSS
      training data) raises :class:`KeyError` saying so;
    * a missing mask raises :class:`FileNotFoundError` with its path;
    * an undecodable mask raises :class:`CorruptImageError` with its path;
    * a mask with more pixels than the pixel limit raises :class:`ImageTooLargeError` with its path,
      its size and how to raise the limit (:mod:`mmseg_clip_wsss.datasets.image_io`);
    * a mask that cannot belong to its image (colour channels, another size than the loaded image's
      ``ori_shape``, values outside the dataset's ``num_classes`` and 255) raises
      :class:`~mmseg_clip_wsss.datasets.errors.DatasetError` naming both files and the fix (see
      :func:`~mmseg_clip_wsss.datasets.label_mask.check_label_mask`).

    Args:
        masks (str): ``'gt'`` (ground-truth masks) or ``'pseudo'`` (pseudo masks of
            ``tools/make_pseudo_masks.py``): what the messages call the file and the fix they give
            (:data:`MASK_KINDS`). Defaults to ``'gt'``.
        **kwargs: See :class:`mmseg.datasets.transforms.LoadAnnotations`.
    """

    def __init__(self, masks: str = 'gt', **kwargs) -> None:
        if masks not in MASK_KINDS:
            raise ValueError(f'LoadWSSSAnnotations: masks={masks!r}; use one of {sorted(MASK_KINDS)}.')
        super().__init__(**kwargs)
        self.masks = masks

    def _load_seg_map(self, results: dict) -> None:
        """Load ``results['seg_map_path']`` into ``results['gt_seg_map']`` (H, W) uint8."""
        if not results.get('seg_map_path'):
            raise KeyError(
                f"no ground-truth mask path for {results.get('img_path')}: the dataset was built "
                'with with_gt_masks=False (WSSS training data never loads masks). Set '
                "with_gt_masks=True and data_prefix['seg_map_path'] for evaluation datasets.")
        path, kind = results['seg_map_path'], MASK_KINDS[self.masks]
        try:
            check_encoded_size(fileio.get(path, backend_args=self.backend_args), path, kind['what'])
            super()._load_seg_map(results)
        except FileNotFoundError as e:
            raise MissingDatasetFileError(f"{kind['what']} {path} does not exist: {kind['missing']}.") from e
        except (AssertionError, ImageTooLargeError):  # mmseg's reduce_zero_label check; the limit
            raise
        except Exception as e:  # decoders raise many types (PIL.UnidentifiedImageError, ...)
            raise CorruptImageError(f"{kind['what']} {path} cannot be decoded ({type(e).__name__}: {e}): "
                                    f"{kind['corrupt']}.") from e
        results['gt_seg_map'] = _unsqueezed(results['gt_seg_map'], path, results.get('ori_shape'))
        check_label_mask(results['gt_seg_map'], path, results.get('img_path'),
                         results.get('ori_shape'), results.get('num_classes'), what=kind['what'],
                         size_fix=kind['size'])


#: ``LoadWSSSImage``'s name before the rename (the word order of LoadWSSSAnnotations / PackWSSSInputs).
LoadImageWSSS = register_deprecated_alias((TRANSFORMS, ), 'LoadImageWSSS', LoadWSSSImage)


def _unsqueezed(label: np.ndarray, path: str, ori_shape=None) -> np.ndarray:
    """The (H, W) mask of a 1-pixel-high or -wide mask, whose sides of 1 mmseg's ``LoadAnnotations``
    squeezed away (a 1x1 mask became shape (), a 1xW one (W,)): back to the image's (H, W) when it
    holds that many pixels, else to the mask file's own size (its header). Other masks unchanged."""
    if label.ndim >= 2:
        return label
    size = tuple(int(v) for v in ori_shape[:2]) if ori_shape is not None else None
    if size is None or size[0] * size[1] != label.size:
        size = image_size(path) if osp.isfile(path) else size
    return label.reshape(size) if size is not None and size[0] * size[1] == label.size else label
