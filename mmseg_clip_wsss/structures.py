"""Where image-level labels travel.

A WSSS sample carries its image-level labels in the :class:`mmseg.structures.SegDataSample` data field
``gt_image_labels``: a float tensor of shape ``(K,)``, multi-hot over the dataset's ``classes``
(index 0 is ``'background'`` for VOC/COCO/demo and is always 1). Datasets put a numpy array under the
same key in each data info; :class:`~mmseg_clip_wsss.datasets.PackWSSSInputs` moves it into the data
sample; models read it back with :func:`stack_image_labels`.

The per-pixel confidence of a pseudo mask (stage 2, :class:`~mmseg_clip_wsss.datasets.LoadConfidenceMap`)
travels beside ``gt_sem_seg`` as the :class:`~mmengine.structures.PixelData` field ``gt_confidence``:
``(1, H, W)`` float in [0, 1]; :func:`stack_confidence` batches it for the losses.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData

IMAGE_LABELS = 'gt_image_labels'
#: Per-class confidence (K,) of soft image-level targets (e.g. confidence-weighted CLIP tags).
LABEL_CONFIDENCE = 'gt_label_confidence'
CONFIDENCE = 'gt_confidence'


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


def set_label_confidence(data_sample, confidence) -> None:
    """Store the per-class confidence (K,) in [0, 1] of a sample's image-level targets."""
    data_sample.set_field(torch.as_tensor(np.asarray(confidence), dtype=torch.float32), LABEL_CONFIDENCE)


def set_confidence(data_sample, confidence: np.ndarray) -> None:
    """Store an (H, W) uint8 confidence map (``v / 255`` = confidence) on ``data_sample``."""
    data = torch.from_numpy(np.ascontiguousarray(confidence)).float().div(255.)[None]  # (1, H, W)
    data_sample.set_data({CONFIDENCE: PixelData(data=data)})


def stack_confidence(data_samples: Sequence, size: Tuple[int, int]) -> torch.Tensor:
    """Return the confidence maps of a batch as a (B, H, W) float tensor of ``size``.

    A map smaller than ``size`` is padded at the right and bottom with 0, as mmseg's data preprocessor
    pads ``gt_sem_seg`` (with the ignore value there, so the padding never counts).

    Raises:
        KeyError: if a sample has no ``gt_confidence`` (a pipeline without LoadConfidenceMap).
    """
    missing = [i for i, s in enumerate(data_samples) if CONFIDENCE not in s]
    if missing:
        raise KeyError(f'data samples {missing} carry no `{CONFIDENCE}`: add LoadConfidenceMap after '
                       'LoadAnnotations in the train pipeline and pack with PackWSSSInputs.')
    maps = []
    for sample in data_samples:
        conf = sample.get(CONFIDENCE).data[0]  # (h, w)
        h, w = conf.shape
        if h > size[0] or w > size[1]:
            raise ValueError(f'a confidence map of size {(h, w)} is larger than its mask {size}.')
        maps.append(F.pad(conf, (0, size[1] - w, 0, size[0] - h)))
    return torch.stack(maps)  # (B, H, W)


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


def image_label_weights(data_samples: Sequence, like: torch.Tensor) -> Optional[torch.Tensor]:
    """Weights of the image-level losses: the source's ``loss_weight`` of each image times, where a
    sample carries one, its per-class ``gt_label_confidence`` (soft targets such as
    confidence-weighted CLIP tags, :func:`mmseg_clip_wsss.apis.tagging.soft_tags`).

    Args:
        data_samples (Sequence[SegDataSample]): The batch.
        like (Tensor): (B, K) targets whose shape, device and dtype the weights take.

    Returns:
        Tensor | None: (B, K) when a sample carries a confidence, else the (B,) per-image weights of
        :func:`sample_loss_weights` (None when every weight is 1).
    """
    per_image = sample_loss_weights(data_samples, like)
    if not any(LABEL_CONFIDENCE in s for s in data_samples):
        return per_image
    weight = torch.ones_like(like)
    for i, sample in enumerate(data_samples):
        if LABEL_CONFIDENCE in sample:
            weight[i] = sample.get(LABEL_CONFIDENCE).to(like)
    return weight if per_image is None else weight * per_image[:, None]
