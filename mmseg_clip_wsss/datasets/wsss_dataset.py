"""Segmentation dataset with image-level labels (the weak supervision of WSSS)."""
import logging
import os.path as osp
from typing import List, Optional

from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset

from ..registry import DATASETS
from ..structures import IMAGE_LABELS, LABEL_CONFIDENCE
from .errors import DatasetError, MissingDatasetFileError
from .image_labels import check_class_list, load_image_labels, labels_to_multi_hot
from .soft_labels import load_soft_labels
from .split_file import read_split_file

__all__ = ['WSSSDataset']

_DOCS = 'docs/datasets.md'


@DATASETS.register_module()
class WSSSDataset(BaseSegDataset):
    """A :class:`mmseg.datasets.BaseSegDataset` whose samples carry image-level labels.

    Each data info gets ``gt_image_labels``: a float32 ``(K,)`` multi-hot over ``classes`` read from
    ``label_file`` (see :mod:`mmseg_clip_wsss.datasets.image_labels` for the format), with index 0
    (``'background'``) always 1; ``metainfo`` classes without ``'background'`` have no background
    class (see :func:`~mmseg_clip_wsss.datasets.image_labels.background_index_of`). Ground-truth
    masks (``seg_map_path``) are only put into the data infos when ``with_gt_masks=True``, i.e. for
    evaluation; a WSSS training dataset has no mask path at all, so no transform can read one.

    Images are listed by ``ann_file`` (a split file of ids, mmseg's convention, read by
    :func:`~mmseg_clip_wsss.datasets.split_file.read_split_file`: BOMs, CRLF, blank lines, ``id.jpg``
    and ``image mask`` pairs are understood, repeated ids reported) or, when it is empty, by the
    images found under ``data_prefix['img_path']``; then every image of the label file must be among
    them (a line whose image is missing is refused, naming it, rather than dropped). A listed file
    that does not exist raises :class:`~mmseg_clip_wsss.datasets.errors.MissingDatasetFileError`
    (a ``DatasetError`` and a ``FileNotFoundError``) naming it, its list and the fix. A dataset left
    without any image is refused.

    Args:
        ann_file (str): Split file, one image id per line. Defaults to ''.
        label_file (str, optional): Image-level label file (relative paths are taken under
            ``data_root``). ``None``: samples carry no labels (plain evaluation/inference).
        with_gt_masks (bool): Put ``seg_map_path`` into the data infos (needed by
            ``LoadAnnotations``/``LoadWSSSAnnotations`` and ``IoUMetric``). Defaults to False.
        skip_empty_labels (bool): Drop (and report: count and first ids) images whose labels have no
            foreground class. Defaults to True.
        check_files (bool): At load time, check that every listed image (and GT mask when
            ``with_gt_masks``) exists, so a missing file fails at once with its path rather than
            mid-epoch. Only for local paths. Defaults to True.
        loss_weight (float): Weight of this source's images in the image-level losses (packed as the
            ``loss_weight`` meta key; e.g. < 1 for images tagged by CLIP beside labelled ones in a
            ``ConcatDataset``). Defaults to 1.0.
        img_suffix (str): Image suffix. Defaults to '.jpg'.
        seg_map_suffix (str): Mask suffix. Defaults to '.png'.
        **kwargs: The other arguments of :class:`mmseg.datasets.BaseSegDataset`.
    """

    def __init__(self,
                 ann_file: str = '',
                 label_file: Optional[str] = None,
                 soft_label_file: Optional[str] = None,
                 with_gt_masks: bool = False,
                 skip_empty_labels: bool = True,
                 check_files: bool = True,
                 loss_weight: float = 1.0,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 **kwargs) -> None:
        if label_file and soft_label_file:
            raise ValueError(f'{type(self).__name__}: give label_file ({label_file}) or soft_label_file '
                             f'({soft_label_file}), not both.')
        self.label_file = label_file
        self.soft_label_file = soft_label_file
        self.with_gt_masks = with_gt_masks
        self.skip_empty_labels = skip_empty_labels
        self.check_files = check_files
        metainfo = kwargs.get('metainfo') or {}
        if metainfo.get('classes') is not None:
            check_class_list(metainfo['classes'], f'{type(self).__name__} metainfo')
        if loss_weight < 0:
            raise ValueError(f'{type(self).__name__}: loss_weight must be >= 0, got {loss_weight}.')
        self.loss_weight = float(loss_weight)
        #: ids of the images dropped for having no foreground label (filled by ``load_data_list``)
        self.empty_label_images: List[str] = []
        super().__init__(
            ann_file=ann_file, img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    def _join_prefix(self) -> None:
        """Join ``data_root`` with ``ann_file``, ``data_prefix`` and ``label_file``."""
        super()._join_prefix()
        if self.label_file and self.data_root is not None and not osp.isabs(self.label_file):
            self.label_file = osp.join(self.data_root, self.label_file)
        if self.soft_label_file and self.data_root is not None and not osp.isabs(self.soft_label_file):
            self.soft_label_file = osp.join(self.data_root, self.soft_label_file)

    # -- helpers -------------------------------------------------------------------------------
    def _check_inputs(self) -> None:
        """Fail with the path and the fix when the split file or image directory is absent."""
        img_dir = self.data_prefix.get('img_path', '')
        if self._local and self.data_root and not osp.isdir(self.data_root):
            raise MissingDatasetFileError(
                f'{type(self).__name__}: dataset root {self.data_root} (data_root) does not exist. '
                f'Prepare the dataset as {_DOCS} describes, or point data_root to it (e.g. '
                '--cfg-options train_dataloader.dataset.data_root=...).')
        if self.ann_file and not osp.isfile(self.ann_file):
            raise MissingDatasetFileError(
                f'{type(self).__name__}: split file {self.ann_file} does not exist (ann_file, '
                f'data_root={self.data_root!r}). Prepare the dataset as {_DOCS} describes, or fix '
                'data_root/ann_file in the config.')
        if self._local and img_dir and not osp.isdir(img_dir):
            raise MissingDatasetFileError(
                f'{type(self).__name__}: image directory {img_dir} does not exist '
                f"(data_prefix['img_path'], data_root={self.data_root!r}). Prepare the dataset as "
                f'{_DOCS} describes, or fix data_root/data_prefix in the config.')

    @property
    def _local(self) -> bool:
        return not self.backend_args or self.backend_args.get('backend', 'local') == 'local'

    def _image_id(self, img_path: str) -> str:
        img_dir = self.data_prefix.get('img_path', '') or ''
        rel = osp.relpath(img_path, img_dir) if img_dir else img_path
        return rel[:-len(self.img_suffix)] if self.img_suffix and rel.endswith(self.img_suffix) \
            else osp.splitext(rel)[0]

    def _report_missing(self, kind: str, missing: List[str], what_to_do: str) -> None:
        shown = ', '.join(missing[:5]) + (', ...' if len(missing) > 5 else '')
        source = f'listed in split file {self.ann_file}' if self.ann_file else \
            f"found under {self.data_prefix.get('img_path')}"
        raise MissingDatasetFileError(f'{type(self).__name__}: {len(missing)} {kind} of the images '
                                      f'{source} do not exist: {shown}. {what_to_do}')

    # -- loading -------------------------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        """Load the image list, attach image-level labels, drop label-less images, check files.

        Returns:
            list[dict]: Data infos with ``img_path``, ``img_id``, ``gt_image_labels`` (when a
            label file is given) and ``seg_map_path`` and ``num_classes`` (only when
            ``with_gt_masks``).
        """
        self._check_inputs()
        data_list = self._list_images()
        for info in data_list:
            info['img_id'] = self._image_id(info['img_path'])
            info['loss_weight'] = self.loss_weight
            if not self.with_gt_masks:
                info.pop('seg_map_path', None)
            elif 'seg_map_path' not in info:
                raise ValueError(f"{type(self).__name__}: with_gt_masks=True needs "
                                 "data_prefix['seg_map_path'] (the GT mask directory).")
            elif self._metainfo.get('classes'):  # LoadWSSSAnnotations refuses other mask values
                info['num_classes'] = len(self._metainfo['classes'])
        if self.label_file:
            data_list = self._attach_labels(data_list)
        elif self.soft_label_file:
            self._attach_soft_labels(data_list)
        if not data_list:
            self._refuse_empty()
        if self.check_files and self._local:
            self._check_files(data_list)
        return data_list

    def _list_images(self) -> List[dict]:
        """mmseg's data infos of the images of the split file (or of the image directory)."""
        if not self.ann_file or osp.isdir(self.ann_file):
            return super().load_data_list()
        img_dir = self.data_prefix.get('img_path', '') or ''
        ann_dir = self.data_prefix.get('seg_map_path')
        data_list = []
        for image_id in read_split_file(self.ann_file):
            info = dict(img_path=osp.join(img_dir, image_id + self.img_suffix),
                        label_map=self.label_map, reduce_zero_label=self.reduce_zero_label,
                        seg_fields=[])
            if ann_dir is not None:
                info['seg_map_path'] = osp.join(ann_dir, image_id + self.seg_map_suffix)
            data_list.append(info)
        return data_list

    def _refuse_empty(self) -> None:
        source = f'split file {self.ann_file}' if self.ann_file else \
            f"image directory {self.data_prefix.get('img_path')} (no *{self.img_suffix} file)"
        if self.empty_label_images:
            raise DatasetError(
                f'{type(self).__name__}: none of the {len(self.empty_label_images)} images of '
                f'{source} has a foreground class (of the {len(self._metainfo["classes"])} dataset '
                f'classes) in label file {self.label_file}: make the label file with the converter '
                f'for these classes ({_DOCS}), or check metainfo=dict(classes=...).')
        raise DatasetError(f'{type(self).__name__}: {source} lists no image: give the split file '
                           f'of the images to use ({_DOCS}), or fix ann_file/data_prefix.')

    def _attach_labels(self, data_list: List[dict]) -> List[dict]:
        """``gt_image_labels`` of every image from the label file; images without a foreground
        class are dropped (and reported) with ``skip_empty_labels``."""
        classes = self._metainfo['classes']
        labels = load_image_labels(self.label_file, classes,
                                   known_classes=type(self).METAINFO.get('classes'))
        if not self.ann_file or osp.isdir(self.ann_file):  # listed from the image folder
            self._check_labelled_images_exist(data_list, labels)
        self._refuse_unlisted(data_list, labels, f'no line in label file {self.label_file}',
                              f'Make the label file for this split with the converter ({_DOCS}) or point '
                              'label_file to the right file.')
        kept = []
        self.empty_label_images = []
        for info in data_list:
            names = labels[info['img_id']]
            if not names and self.skip_empty_labels:
                self.empty_label_images.append(info['img_id'])
                continue
            info[IMAGE_LABELS] = labels_to_multi_hot(names, classes)  # (K,)
            kept.append(info)
        if self.empty_label_images:
            n = len(self.empty_label_images)
            shown = ', '.join(self.empty_label_images[:10]) + (', ...' if n > 10 else '')
            print_log(
                f'{type(self).__name__}: skipped {n} of {len(data_list)} images whose line in '
                f'{self.label_file} has no foreground class of {tuple(classes[1:])}: {shown}',
                logger='current', level=logging.WARNING)
        return kept

    def _refuse_unlisted(self, data_list: List[dict], listed, missing_what: str, fix: str) -> None:
        """Raise a DatasetError naming the images of ``data_list`` whose id is not in ``listed``."""
        missing = [info['img_id'] for info in data_list if info['img_id'] not in listed]
        if missing:
            shown = ', '.join(missing[:5]) + (', ...' if len(missing) > 5 else '')
            raise DatasetError(
                f'{type(self).__name__}: {len(missing)} of {len(data_list)} images of '
                f'{self.ann_file or self.data_prefix.get("img_path")} have {missing_what} ({shown}). {fix}')

    def _attach_soft_labels(self, data_list: List[dict]) -> None:
        """``gt_image_labels`` (soft targets) and ``gt_label_confidence`` of every image from the soft
        label file; an image without an entry, or one that is not the image the file tagged, is refused,
        naming it and the file."""
        images = {info['img_id']: info['img_path'] for info in data_list} if self._local else None
        rows = load_soft_labels(self.soft_label_file, self._metainfo['classes'], images)
        self._refuse_unlisted(data_list, rows, f'no entry in soft label file {self.soft_label_file}',
                              'Write the file for this split, or point soft_label_file to the right file.')
        for info in data_list:
            info[IMAGE_LABELS], info[LABEL_CONFIDENCE] = rows[info['img_id']]

    def _check_labelled_images_exist(self, data_list: List[dict], labels: dict) -> None:
        """Refuse, naming them, the images of label-file lines that the image folder does not hold
        (a dataset listed from its folder would otherwise train on the rest without a word)."""
        found = {info['img_id'] for info in data_list}
        img_dir = self.data_prefix.get('img_path', '') or ''
        missing = [osp.join(img_dir, image_id + self.img_suffix) for image_id in labels
                   if image_id not in found]
        if missing:
            shown = ', '.join(missing[:5]) + (', ...' if len(missing) > 5 else '')
            raise MissingDatasetFileError(
                f'{type(self).__name__}: {len(missing)} image(s) of label file {self.label_file} '
                f'are not in the image folder {img_dir} (no split file given, so the folder lists '
                f'the images): {shown}. Restore them (re-extract the dataset, see {_DOCS}), or give '
                'the split file of the images to use (ann_file), or remove their lines from the '
                'label file.')

    def _check_files(self, data_list: List[dict]) -> None:
        """Fail now, naming the paths, when images (or GT masks) of the list do not exist."""
        missing = [info['img_path'] for info in data_list if not osp.isfile(info['img_path'])]
        if missing:
            self._report_missing(
                'image file(s)', missing,
                'Restore the images (re-extract the dataset, see ' + _DOCS + ') or remove '
                'their ids from the split file.')
        if self.with_gt_masks:
            missing = [info['seg_map_path'] for info in data_list
                       if not osp.isfile(info['seg_map_path'])]
            if missing:
                self._report_missing(
                    'ground-truth mask(s)', missing,
                    'Evaluation reads GT masks: prepare them as ' + _DOCS + ' describes (or '
                    'regenerate the demo data with tools/make_demo_data.py), or set '
                    'with_gt_masks=False where no mask is needed (WSSS training).')
