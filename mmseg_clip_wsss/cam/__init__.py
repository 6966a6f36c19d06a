"""CAM -> pseudo mask: multi-scale + flip CAM inference, refinement, pseudo-mask files, evaluation.

The protocol's options and defaults are :class:`CAMProtocol`; the command-line entry
(``tools/make_pseudo_masks.py``) is :mod:`mmseg_clip_wsss.cli.make_pseudo_masks`, the config-driven
run behind it :func:`mmseg_clip_wsss.cam.run.make_pseudo_masks`.
"""
from .evaluate import compute_miou, evaluate_pseudo_masks, read_label_png, write_metrics_json
from .generate import generate_pseudo_masks, pseudo_masks_of_batch, sample_image_id
from .inference import multi_scale_flip_cams, scaled_size
from .overview import draw_overview
from .protocol import BG_MODES, DEFAULT_PROTOCOL, IGNORE_INDEX, CAMProtocol, check_ignore_band
from .pseudo_mask import (cams_to_pseudo_mask, fill_background, is_valid_png,
                          pseudo_mask_confidence)
from .refine import CRF_INSTALL_HINT, DenseCRFRefiner, PixelAdaptiveRefiner, build_refiner

__all__ = [
    'CAMProtocol', 'DEFAULT_PROTOCOL', 'check_ignore_band', 'multi_scale_flip_cams', 'scaled_size',
    'PixelAdaptiveRefiner', 'DenseCRFRefiner', 'build_refiner', 'CRF_INSTALL_HINT', 'BG_MODES',
    'IGNORE_INDEX', 'cams_to_pseudo_mask', 'fill_background', 'is_valid_png',
    'pseudo_mask_confidence', 'compute_miou', 'evaluate_pseudo_masks', 'read_label_png', 'write_metrics_json', 'generate_pseudo_masks',
    'pseudo_masks_of_batch', 'sample_image_id', 'draw_overview'
]
