"""Loading the per-pixel confidence map of a pseudo mask for stage 2."""
from mmcv.transforms import BaseTransform

from ...registry import TRANSFORMS
from ..confidence_map import confidence_path, read_confidence_png

__all__ = ['LoadConfidenceMap', 'CONFIDENCE_KEY']

#: The results key of the (H, W) uint8 confidence map (``v / 255`` = confidence).
CONFIDENCE_KEY = 'gt_confidence_map'


@TRANSFORMS.register_module()
class LoadConfidenceMap(BaseTransform):
    """Load the confidence map of the pseudo mask ``results['seg_map_path']``.

    The map is ``<mask dir>/confidence/<mask name>`` (:mod:`mmseg_clip_wsss.datasets.confidence_map`),
    stored in ``results['gt_confidence_map']`` as (H, W) uint8 and added to ``seg_fields``, so mmseg's
    geometric transforms (``RandomResize``/``Resize``, ``RandomCrop``, ``RandomFlip``) move it with the
    mask; :class:`PackWSSSInputs` packs it as the ``gt_confidence`` pixel data that the
    confidence-guided losses read. Put it right after ``LoadAnnotations``.

    Required keys: ``seg_map_path``, ``gt_seg_map`` (to check the size). Added keys:
    ``gt_confidence_map``; ``seg_fields`` is extended.

    Raises:
        FileNotFoundError: when the map is missing (masks written before confidence maps existed).
        ValueError: when it is not 8-bit grayscale or its size differs from the mask's.
    """

    def transform(self, results: dict) -> dict:
        path = confidence_path(results['seg_map_path'])
        confidence = read_confidence_png(path)  # (H, W) uint8
        if 'gt_seg_map' in results and confidence.shape != results['gt_seg_map'].shape[:2]:
            raise ValueError(f'confidence map {path} is {confidence.shape}, its mask '
                             f"{results['seg_map_path']} {results['gt_seg_map'].shape[:2]}: re-run "
                             'tools/make_pseudo_masks.py --overwrite into that directory.')
        results[CONFIDENCE_KEY] = confidence
        results.setdefault('seg_fields', []).append(CONFIDENCE_KEY)
        return results
