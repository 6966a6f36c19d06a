"""An independent mIoU (numpy, no mmseg) of label-map files, to check the figures the tools report."""
from typing import Iterable, Tuple

import numpy as np
from PIL import Image


def miou_of_files(pairs: Iterable[Tuple[str, str]], num_classes: int, ignore_index: int = 255) -> float:
    """mIoU (%) of (prediction PNG, GT PNG) pairs, accumulated over all pixels of all pairs.

    A GT pixel equal to ``ignore_index`` is skipped; a prediction of ``ignore_index`` on a valid GT
    pixel counts as a miss. Classes that occur in neither predictions nor GT are left out of the mean
    (as mmseg's ``IoUMetric`` does).
    """
    inter = np.zeros(num_classes, np.int64)
    union = np.zeros(num_classes, np.int64)
    for pred_path, gt_path in pairs:
        pred, gt = (np.array(Image.open(p)).astype(np.int64) for p in (pred_path, gt_path))
        assert pred.shape == gt.shape, (pred_path, pred.shape, gt.shape)
        valid = gt != ignore_index
        for k in range(num_classes):
            p, g = (pred == k) & valid, (gt == k) & valid
            inter[k] += np.sum(p & g)
            union[k] += np.sum(p | g)
    present = union > 0
    return float(100 * np.mean(inter[present] / union[present]))
