"""CAM -> pseudo mask: multi-scale + flip CAM inference, refinement, pseudo-mask files, evaluation.

The command-line entry (``tools/make_pseudo_masks.py``) lives in :mod:`mmseg_clip_wsss.cam.cli`.
"""
from .evaluate import compute_miou, evaluate_pseudo_masks, read_label_png, write_metrics_json
from .generate import denormalise_images, generate_pseudo_masks, restore_to_original, sample_image_id
from .inference import multi_scale_flip_cams, scaled_size
from .overview import draw_overview
from .pseudo_mask import (BG_MODES, IGNORE_INDEX, cams_to_pseudo_mask, fill_background, is_valid_png,
                          voc_palette, write_palette_png)
from .refine import (CRF_INSTALL_HINT, DenseCRFRefiner, PixelAdaptiveRefiner, build_refiner,
                     pixel_adaptive_refine)

__all__ = [
    'multi_scale_flip_cams', 'scaled_size', 'PixelAdaptiveRefiner', 'DenseCRFRefiner',
    'pixel_adaptive_refine', 'build_refiner', 'CRF_INSTALL_HINT', 'BG_MODES', 'IGNORE_INDEX',
    'cams_to_pseudo_mask', 'fill_background', 'is_valid_png', 'voc_palette', 'write_palette_png',
    'compute_miou', 'evaluate_pseudo_masks', 'read_label_png', 'write_metrics_json',
    'generate_pseudo_masks', 'restore_to_original', 'sample_image_id', 'denormalise_images',
    'draw_overview'
]
