"""A picture of the CAM -> pseudo-mask pipeline: one row per image, image | CAMs | pseudo mask | GT."""
import os
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np

from mmseg_clip_wsss.datasets.palette import voc_palette

__all__ = ['draw_overview']


def _colour_mask(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) class indices (255 = ignore, drawn white) -> (H, W, 3) uint8."""
    out = palette[np.clip(mask, 0, len(palette) - 1)].astype(np.uint8)
    out[mask == 255] = 255
    return out


def _check_lengths(images: Sequence, cams: Sequence, image_labels: Sequence, pseudo_masks: Sequence,
                   gt_masks: Sequence) -> None:
    """Raise a ValueError unless every sequence holds the same positive number of items."""
    n = len(images)
    if not n or not (len(cams) == len(image_labels) == len(pseudo_masks) == len(gt_masks) == n):
        raise ValueError(f'draw_overview: need the same positive number of images ({n}), CAMs '
                         f'({len(cams)}), labels ({len(image_labels)}), pseudo masks '
                         f'({len(pseudo_masks)}) and GT masks ({len(gt_masks)}).')


def _row_panels(image: np.ndarray, cams: np.ndarray, labels: Sequence[int], pseudo_mask: np.ndarray,
                gt_mask: np.ndarray, class_names: Sequence[str], title: str, palette: np.ndarray,
                max_cams: int, jet) -> List[tuple]:
    """``(picture or None, title)`` of every panel of one row; ``jet`` is the CAM colour map."""
    grey = image.mean(axis=2, keepdims=True).repeat(3, axis=2) / 255.0  # (H, W, 3)
    panels: List[tuple] = [(image, title)]
    for k in labels:
        heat = jet(np.clip(cams[k], 0, 1))[..., :3]
        panels.append((0.5 * grey + 0.5 * heat, f'CAM: {class_names[k]}'))
    panels += [(None, '')] * (max_cams - len(labels))
    panels += [(_colour_mask(pseudo_mask, palette), 'pseudo mask'),
               (_colour_mask(gt_mask, palette), 'ground truth')]
    return panels


def _draw_panels(axes_row: Sequence, panels: Sequence[tuple]) -> None:
    """Show every panel of a row on its axes (axes off, empty panels left blank)."""
    for c, (picture, title) in enumerate(panels):
        ax = axes_row[c]
        ax.axis('off')
        if picture is not None:
            ax.imshow(picture)
            ax.set_title(title, fontsize=8)


def draw_overview(images: Sequence[np.ndarray],
                  cams: Sequence[np.ndarray],
                  image_labels: Sequence[Sequence[int]],
                  pseudo_masks: Sequence[np.ndarray],
                  gt_masks: Sequence[np.ndarray],
                  class_names: Sequence[str],
                  out_file: str,
                  titles: Optional[Sequence[str]] = None,
                  palette: Optional[np.ndarray] = None) -> str:
    """Draw and save the overview figure.

    Args:
        images (Sequence[ndarray]): RGB images, each (H, W, 3) uint8.
        cams (Sequence[ndarray]): CAMs of each image, (K, H, W) in [0, 1].
        image_labels (Sequence[Sequence[int]]): Foreground class indices present in each image; one CAM
            column is drawn per present class (a heat map over the greyed image).
        pseudo_masks (Sequence[ndarray]): (H, W) pseudo masks (class indices, 255 = ignore).
        gt_masks (Sequence[ndarray]): (H, W) ground-truth masks.
        class_names (Sequence[str]): Class names, index = class.
        out_file (str): PNG path (parent directories are created).
        titles (Sequence[str], optional): Row titles (e.g. image ids).
        palette (ndarray, optional): (N, 3) class colours; the VOC colour map by default.

    Returns:
        str: ``out_file``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    _check_lengths(images, cams, image_labels, pseudo_masks, gt_masks)
    n = len(images)
    palette = voc_palette(256) if palette is None else np.asarray(palette)
    max_cams = max(1, max(len(labels) for labels in image_labels))
    cols = 1 + max_cams + 2
    fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, 1.9 * n + 0.6), squeeze=False)
    for r in range(n):
        title = 'image' if titles is None else titles[r]
        panels = _row_panels(images[r], cams[r], image_labels[r], pseudo_masks[r], gt_masks[r],
                             class_names, title, palette, max_cams, plt.get_cmap('jet'))
        _draw_panels(axes[r], panels)
    present = sorted({int(k) for m in gt_masks for k in np.unique(m) if k != 255})
    fig.legend(handles=[Patch(color=palette[k] / 255.0, label=class_names[k]) for k in present] +
               [Patch(facecolor='white', edgecolor='black', label='ignore')],
               loc='lower center', ncol=min(len(present) + 1, 10), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return out_file
