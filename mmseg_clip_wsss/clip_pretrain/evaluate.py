"""Zero-shot evaluation of a CLIP: caption retrieval and multi-label classification from class names.

- **Retrieval** on held-out pairs: image -> text and text -> image recall@1. Many generated captions
  are true of several images ("a disc."), so a retrieved item counts as a hit when it is a true match
  (the corpus's claims), not only when it is the paired one.
- **Multi-label mAP** on the images of a dataset split: every class is scored by the best-matching
  window of the image (windows of ``window`` x the image side at a stride of ``stride`` x the side,
  resized to the model's input), against the class embedding from a prompt ensemble of the class
  name and its synonyms. A window is how the corpus shows objects (object-centred crops at their
  scale in the world's images); one embedding of a whole image with 1-4 objects is matched against
  single-class prompts poorly.
"""
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from mmseg_clip_wsss.datasets.image_io import read_rgb
from mmseg_clip_wsss.datasets.image_labels import load_image_labels
from mmseg_clip_wsss.models.clip_windows import normalise_images
from mmseg_clip_wsss.models.text.text_tower import TextTower
from mmseg_clip_wsss.datasets.synthetic.captions import truth_matrix
from mmseg_clip_wsss.datasets.synthetic.corpus import CaptionCorpus
from .train import CLAIM_FIELDS, encode_captions

__all__ = ['average_precision', 'multilabel_map', 'retrieval_recall_at_1', 'read_split_images']

def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision (%) of one class: mean precision at the ranks of the positives."""
    order = np.argsort(-scores, kind='stable')
    hits = labels[order] > 0
    if not hits.any():
        return float('nan')
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(100 * precision[hits].mean())


def multilabel_map(scores: np.ndarray, labels: np.ndarray) -> Dict:
    """Mean AP (%) over the classes with at least one positive, and the per-class APs."""
    aps = [average_precision(scores[:, k], labels[:, k]) for k in range(labels.shape[1])]
    valid = [a for a in aps if not np.isnan(a)]
    return dict(mAP=float(np.mean(valid)) if valid else float('nan'), per_class=aps)


@torch.no_grad()
def retrieval_recall_at_1(model, model_name: str, corpus: CaptionCorpus, batch_size: int = 256) -> Dict:
    """Image -> text and text -> image recall@1 (%) over all pairs of ``corpus`` (true matches hit)."""
    tower = TextTower(model)
    tokens = open_clip.get_tokenizer(model_name)(corpus.captions)
    img, txt = [], []
    for i in range(0, len(corpus), batch_size):
        img.append(F.normalize(model.encode_image(normalise_images(model, corpus.images[i:i + batch_size])), dim=-1))
        txt.append(F.normalize(encode_captions(tower, tokens[i:i + batch_size]), dim=-1))
    sim = torch.cat(img) @ torch.cat(txt).t()  # (N images, N captions)
    truth = truth_matrix(*[torch.from_numpy(corpus.claims[f]) for f in CLAIM_FIELDS])
    rows = torch.arange(len(sim))
    i2t = truth[rows, sim.argmax(1)].float().mean().item()
    t2i = truth[sim.argmax(0), rows].float().mean().item()
    return dict(image_to_text_r1=100 * i2t, text_to_image_r1=100 * t2i, r1=50 * (i2t + t2i),
                num_pairs=len(corpus))


def read_split_images(data_root: str, split: str, class_names: Sequence[str],
                      label_file: Optional[str] = None) -> tuple:
    """Images and multi-hot labels of a split in the VOC layout (``ImageLabels/<split>.txt``).

    Returns:
        tuple: images (N, S, S, 3) uint8 RGB (all of one size) and labels (N, K) over
        ``class_names`` (the foreground classes, in order).
    """
    split_file = osp.join(data_root, 'ImageSets', 'Segmentation', f'{split}.txt')
    with open(split_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    labels = load_image_labels(label_file or osp.join(data_root, 'ImageLabels', f'{split}.txt'),
                               ('background', ) + tuple(class_names))
    images = np.stack([read_rgb(osp.join(data_root, 'JPEGImages', f'{i}.jpg'), fix='make the demo data again')
                       for i in ids])
    multi_hot = np.zeros((len(ids), len(class_names)), dtype=np.float32)
    for row, image_id in enumerate(ids):
        for name in labels[image_id]:
            if name != 'background':
                multi_hot[row, list(class_names).index(name)] = 1
    return images, multi_hot
