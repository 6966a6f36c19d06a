"""Packing image-level labels (and pseudo-mask confidence) into the data sample."""
from mmseg.datasets.transforms import PackSegInputs

from ...registry import TRANSFORMS
from ...structures import IMAGE_LABELS, LABEL_CONFIDENCE, set_confidence, set_image_labels, set_label_confidence
from .confidence import CONFIDENCE_KEY

__all__ = ['PackWSSSInputs']


@TRANSFORMS.register_module()
class PackWSSSInputs(PackSegInputs):
    """mmseg's ``PackSegInputs`` that also packs the image-level labels and the mask confidence.

    ``results['gt_image_labels']`` (a ``(K,)`` multi-hot from a :class:`WSSSDataset`) becomes the
    ``gt_image_labels`` float tensor of the :class:`~mmseg.structures.SegDataSample` (see
    :mod:`mmseg_clip_wsss.structures`); a per-class confidence ``results['gt_label_confidence']`` (K,)
    of soft targets (``WSSSDataset(soft_label_file=...)``) becomes its ``gt_label_confidence``. A GT mask is packed as usual when the pipeline loaded one;
    a confidence map of :class:`LoadConfidenceMap` becomes the ``gt_confidence`` pixel data.

    Args:
        meta_keys (Sequence[str]): Meta keys to pack; mmseg's defaults plus ``img_id``,
            ``loss_weight`` (the source's weight in the image-level losses) and ``captions`` (the
            descriptions of an image-text sample, a list of strings; absent elsewhere).
    """

    def __init__(self,
                 meta_keys=('img_path', 'img_id', 'seg_map_path', 'ori_shape', 'img_shape',
                            'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                            'reduce_zero_label', 'loss_weight', 'captions')):
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results`` into ``dict(inputs=(3, H, W) tensor, data_samples=SegDataSample)``."""
        packed = super().transform(results)
        if IMAGE_LABELS in results:
            set_image_labels(packed['data_samples'], results[IMAGE_LABELS])
        if LABEL_CONFIDENCE in results:
            set_label_confidence(packed['data_samples'], results[LABEL_CONFIDENCE])
        if CONFIDENCE_KEY in results:
            set_confidence(packed['data_samples'], results[CONFIDENCE_KEY])
        return packed
