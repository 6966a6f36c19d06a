"""Where image-level labels travel.

A WSSS sample carries its image-level labels in the :class:`mmseg.structures.SegDataSample` data field
``gt_image_labels``: a float tensor of shape ``(K,)``, multi-hot over the dataset's ``classes``
(index 0 is ``'background'`` for VOC/COCO/demo and is always 1). Datasets put a numpy array under the
same key in each data info; :class:`~mmseg_clip_wsss.datasets.PackWSSSInputs` moves it into the data
sample; models read it back with :func:`stack_image_labels`.
"""
from typing import Optional, Sequence

import numpy as np
import torch

IMAGE_LABELS = 'gt_image_labels'


def set_image_labels(data_sample, labels) -> None:
    """Store multi-hot ``labels`` (K,) (array, list or tensor) on ``data_sample``."""
    data_sample.set_field(torch.as_tensor(np.asarray(labels), dtype=torch.float32), IMAGE_LABELS)


def stack_image_labels(data_samples: Sequence) -> torch.Tensor:
    """Return the image-level labels of a batch as a (B, K) float tensor.

    Raises:
        KeyError: if a sample has no ``gt_image_labels`` (e.g. a pipeline without PackWSSSInputs).
    """
    missing = [i for i, s in enumerate(data_samples) if IMAGE_LABELS not in s]
    if missing:
        raise KeyError(f'data samples {missing} carry no `{IMAGE_LABELS}`: use PackWSSSInputs in the '
                       'pipeline (or set_image_labels) so the weakly supervised losses see the labels')
    return torch.stack([s.get(IMAGE_LABELS) for s in data_samples])  # (B, K)


def sample_loss_weights(data_samples: Sequence, like: torch.Tensor) -> Optional[torch.Tensor]:
    """Per-image weights (B,) of the image-level losses from the samples' ``loss_weight`` meta key
    (set per source by ``WSSSDataset(loss_weight=...)``); None when every weight is 1.

    Args:
        like (Tensor): A tensor whose device and dtype the weights take.
    """
    weights = [float(s.metainfo.get('loss_weight', 1.0)) for s in data_samples]
    if all(w == 1.0 for w in weights):
        return None
    return like.new_tensor(weights)
