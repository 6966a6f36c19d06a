"""Images with one or more descriptions each, listed by a captions file (COCO JSON or JSONL)."""
import os.path as osp
from typing import List, Optional

from mmengine.dataset import BaseDataset

from ..registry import DATASETS
from .caption_files import caption_image_id, read_caption_file
from .errors import DatasetError, MissingDatasetFileError

__all__ = ['ImageTextDataset', 'image_text_sample', 'CAPTIONS']

#: Key of the descriptions in a sample (a list of strings) and in the packed meta information.
CAPTIONS = 'captions'


def image_text_sample(img_path: str, img_id: str, captions: List[str], loss_weight: float = 1.0,
                      **extra) -> dict:
    """The one sample form of every image-text source (before the pipeline).

    Args:
        img_path (str): Image file (or ``<shard>#<key>`` for a sample read from a tar shard, whose
            bytes then come as ``img_bytes`` in ``extra``).
        img_id (str): Image id: the file name without folder prefix and extension (the key in a
            shard).
        captions (list[str]): The descriptions, at least one.
        loss_weight (float): The source's weight in the losses. Defaults to 1.0.
        **extra: Further keys (``img_bytes``).

    Returns:
        dict: ``dict(img_path, img_id, captions, loss_weight, **extra)``.
    """
    return dict(img_path=img_path, img_id=img_id, captions=list(captions), loss_weight=float(loss_weight),
                **extra)


@DATASETS.register_module()
class ImageTextDataset(BaseDataset):
    """Images with descriptions from a COCO captions JSON or a JSONL of ``{"image", "caption"}`` lines.

    Each sample is :func:`image_text_sample`: ``img_path``, ``img_id`` (the path relative to the
    image folder without extension, an absolute one too: :func:`~.caption_files.caption_image_id`),
    ``captions`` (every description of the image, >= 1) and ``loss_weight``. The same pipeline serves
    the tar shards of :class:`ImageTextShards`: start it with ``LoadWSSSImage`` and end it with
    ``PackWSSSInputs``, which packs ``captions`` into the data sample's meta information. No label
    and no mask is read.

    Args:
        caption_file (str): The captions file, relative to ``data_root`` unless absolute
            (``annotations/captions_train2014.json`` or ``pairs.jsonl``).
        file_format (str): ``'coco'``, ``'jsonl'`` or ``'auto'`` (by the extension: ``.jsonl`` /
            ``.ndjson`` are JSONL). Defaults to ``'auto'``.
        data_prefix (dict): ``dict(img_path=<image folder>)`` under ``data_root``. Defaults to
            ``dict(img_path='')``.
        check_files (bool): Check at load time that every listed image exists (local paths), so a
            missing one fails at once, named. Defaults to True.
        loss_weight (float): Weight of this source's images in the losses (packed per sample).
            Defaults to 1.0.
        **kwargs: The other arguments of :class:`mmengine.dataset.BaseDataset` (``data_root``,
            ``pipeline``, ``metainfo``, ``indices``, ``serialize_data``, ``test_mode``,
            ``lazy_init``).

    Raises:
        MissingDatasetFileError: a missing captions file or image, named with the fix.
        DatasetError: a malformed captions file (file and line or entry named), or no image at all.
    """

    def __init__(self,
                 caption_file: str,
                 file_format: str = 'auto',
                 data_prefix: Optional[dict] = None,
                 check_files: bool = True,
                 loss_weight: float = 1.0,
                 **kwargs) -> None:
        if loss_weight < 0:
            raise ValueError(f'ImageTextDataset: loss_weight must be >= 0, got {loss_weight}.')
        self.caption_file = caption_file
        self.file_format = file_format
        self.check_files = check_files
        self.loss_weight = float(loss_weight)
        super().__init__(ann_file=caption_file, data_prefix=data_prefix or dict(img_path=''), **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read the captions file into samples (see the class docstring).

        Returns:
            list[dict]: One :func:`image_text_sample` per image, in the file's order.
        """
        pairs = read_caption_file(self.ann_file, self.file_format)  # a file of no caption is refused
        img_dir = self.data_prefix.get('img_path', '') or ''
        samples = []
        for image, captions in pairs:
            img_path = osp.join(img_dir, image)
            img_id = caption_image_id(image, img_dir)
            samples.append(image_text_sample(img_path, img_id, captions, self.loss_weight))
        if self.check_files:
            missing = [s['img_path'] for s in samples if not osp.isfile(s['img_path'])]
            if missing:
                shown = ', '.join(missing[:5]) + (', ...' if len(missing) > 5 else '')
                raise MissingDatasetFileError(
                    f'ImageTextDataset: {len(missing)} images listed in {self.ann_file} do not exist: '
                    f"{shown}. Fix data_root/data_prefix['img_path'] or the captions file.")
        return samples
