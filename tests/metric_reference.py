"""An independent mIoU (numpy, no mmseg) of label maps, to check the figures the tools report."""
import os
from typing import Iterable, Tuple, Union

import numpy as np
from PIL import Image

LabelMap = Union[str, os.PathLike, np.ndarray]  # a PNG path or an (H, W) array


def reference_miou(pairs: Iterable[Tuple[LabelMap, LabelMap]], num_classes: int,
                   ignore_index: int = 255) -> float:
    """mIoU (%) of (prediction, GT) pairs, accumulated over all pixels of all pairs.

    A GT pixel equal to ``ignore_index`` is skipped; a prediction of ``ignore_index`` on a valid GT
    pixel counts as a miss. Classes that occur in neither predictions nor GT are left out of the mean
    (as mmseg's ``IoUMetric`` does).
    """
    inter = np.zeros(num_classes, np.int64)
    union = np.zeros(num_classes, np.int64)
    for pred, gt in pairs:
        pred, gt = (np.array(Image.open(m) if isinstance(m, (str, os.PathLike)) else m)
                    .astype(np.int64) for m in (pred, gt))
        assert pred.shape == gt.shape, (pred.shape, gt.shape)
        valid = gt != ignore_index
        for k in range(num_classes):
            p, g = (pred == k) & valid, (gt == k) & valid
            inter[k] += np.sum(p & g)
            union[k] += np.sum(p | g)
    present = union > 0
    return float(100 * np.mean(inter[present] / union[present]))
