"""Open-vocabulary and tagging figures of the demo (inference only).

- **Open vocabulary**: the ``openvocab`` split of a generated dataset has GT masks over
  ``demo_info.json['open_vocab_classes']``: background, the labelled classes and the ``unseen`` ones
  that no WSSS label file names (the CLIP corpus shows them). A stage-1 model is asked for all of them
  by name (:meth:`WSSSEncoderDecoder.set_class_names`): ``open_vocab_unseen_miou`` is the mIoU over the
  unseen classes, ``open_vocab_seen_miou`` over background + the labelled ones, both from the same
  prediction. The same figures with the model told which classes each image holds (its true
  image-level labels: ``*_true_labels``) separate drawing the classes from finding them.
- **Closest seen class** baseline: a closed-vocabulary model knows only the labelled names. It segments
  with them, and each unseen class is scored as the labelled class whose text embedding (same learned
  prompts) is nearest to the unseen name's: IoU(pred == nearest seen, GT == unseen), averaged over the
  unseen classes (``open_vocab_closest_seen_miou``).
- **Head + dense map** (with a combination config, :mod:`.combined_open_vocab`): the trained names
  scored by the head, the unseen ones by the CLIP's dense zero-shot map, calibrated against each other
  on another split (``open_vocab_combined_{unseen,seen,all}_miou``).
- **Tagging**: zero-shot tags from the CLIP (:mod:`mmseg_clip_wsss.apis.tagging`), thresholds chosen on
  the train split, ``tagging_map`` (and micro precision / recall at the thresholds) on the val split.

``python -m mmseg_clip_wsss.cli.open_vocab CONFIG CHECKPOINT [--data-root data/demo] [--clip CLIP]
[--combine COMBINE_CONFIG] [--calibration FILE] [--out figures.json]`` prints them as JSON (``make demo``
runs it on its stage-1 model).
"""
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mmseg_clip_wsss.apis.inferencer import WSSSInferencer
from mmseg_clip_wsss.apis.preflight import read_config
from mmseg_clip_wsss.apis.tagging import CLIPTagger, best_f1_thresholds, precision_recall, tag_names
from mmseg_clip_wsss.cam.evaluate import compute_miou, mean_class_iou
from mmseg_clip_wsss.clip_pretrain.evaluate import multilabel_map, read_split_images
from mmseg_clip_wsss.structures import set_image_labels
from mmseg_clip_wsss.datasets.data_root import check_data_root
from mmseg_clip_wsss.datasets.synthetic.world import load_world, read_demo_info
from .combined_open_vocab import combined_open_vocab_figures, read_split

__all__ = ['open_vocab_figures', 'tagging_figures', 'closest_seen_iou']


def _predict(inferencer: WSSSInferencer, images: Sequence[np.ndarray],
             labels: Optional[np.ndarray] = None) -> List[np.ndarray]:
    """(H, W) label maps of RGB images; with (N, K) image-level ``labels`` the model is told which
    classes each image holds (the CAMs of those classes), otherwise it finds them itself."""
    preds = []
    for i, rgb in enumerate(images):
        data = next(inferencer.preprocess([np.ascontiguousarray(rgb[..., ::-1])]))
        if labels is not None:
            set_image_labels(data['data_samples'][0], labels[i])
        with torch.no_grad():
            preds.append(inferencer.model.test_step(data)[0].pred_sem_seg.data[0].cpu().numpy())
    return preds


def _true_labels(gts: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """(N, K) multi-hot of the classes in GT masks, background always on."""
    labels = np.zeros((len(gts), num_classes), dtype=np.float32)
    for i, gt in enumerate(gts):
        labels[i, [k for k in np.unique(gt) if k < num_classes]] = 1
    labels[:, 0] = 1
    return labels


def closest_seen_iou(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], nearest: Dict[int, int]) -> Dict[int, float]:
    """IoU (%) of each unseen GT class ``u`` against the prediction of its stand-in ``nearest[u]``.

    Args:
        preds (Sequence[np.ndarray]): (H, W) labels over the seen classes.
        gts (Sequence[np.ndarray]): (H, W) GT labels over seen + unseen classes (255 ignored).
        nearest (dict[int, int]): unseen GT index -> seen prediction index.
    """
    inter = dict.fromkeys(nearest, 0)
    union = dict.fromkeys(nearest, 0)
    for pred, gt in zip(preds, gts):
        valid = gt != 255
        for u, s in nearest.items():
            a, b = (gt == u) & valid, (pred == s) & valid
            inter[u] += int((a & b).sum())
            union[u] += int((a | b).sum())
    return {u: 100.0 * inter[u] / max(union[u], 1) for u in nearest}


def tagging_figures(clip_checkpoint: str, data_root: str, threshold_split: str = 'train',
                    eval_split: str = 'val') -> Dict:
    """Zero-shot tagging of ``eval_split`` with thresholds chosen on ``threshold_split``.

    Returns:
        dict: ``tagging_map``, ``tagging_precision``, ``tagging_recall`` (%).
    """
    world = load_world(data_root)
    tagger = CLIPTagger(clip_checkpoint, [list(c.words) for c in world.classes])
    names = tagger.class_names
    images, labels = read_split_images(data_root, threshold_split, names)
    thresholds = best_f1_thresholds(tagger.scores(images), labels)
    images, labels = read_split_images(data_root, eval_split, names)
    scores = tagger.scores(images)
    pr = precision_recall(tag_names(scores, thresholds, names), labels, names)
    return dict(tagging_map=round(multilabel_map(scores, labels)['mAP'], 2),
                tagging_precision=round(pr['precision'], 2), tagging_recall=round(pr['recall'], 2))


def _class_lists(data_root: str) -> Tuple[List[str], List[str]]:
    """The ``openvocab`` split's classes (seen, then unseen) and the seen (labelled) ones."""
    info = read_demo_info(data_root)
    if 'open_vocab_classes' not in info:
        raise KeyError(f'{data_root}/demo_info.json has no open_vocab_classes: write the data with '
                       'num_openvocab > 0 (tools/make_demo_data.py --num-openvocab 100).')
    return list(info['open_vocab_classes']), list(info['classes'])


def _nearest_seen(inferencer: WSSSInferencer, num_seen: int) -> Dict[int, int]:
    """Unseen class index -> the seen foreground class whose text embedding (the model's prompts) is
    nearest, for a model whose classes are the seen ones followed by the unseen ones."""
    text = inferencer.model.text_encoder()  # (K_all, D) unit rows
    similarity = text[num_seen:] @ text[1:num_seen].t()  # (unseen, seen foreground)
    return {num_seen + i: 1 + int(j) for i, j in enumerate(similarity.argmax(1).tolist())}


@torch.no_grad()
def open_vocab_figures(config: str, checkpoint: str, data_root: str, clip_checkpoint: str,
                       split: str = 'openvocab', device: str = 'cpu', combine: Optional[str] = None,
                       calibration: Optional[str] = None) -> Dict:
    """Open-vocabulary mIoU, the closest-seen baseline and the tagging mAP of a stage-1 model.

    Args:
        config (str): Stage-1 config (a text-guided head with learned prompts, shared context).
        checkpoint (str): Its trained checkpoint.
        data_root (str): Generated dataset with the ``openvocab`` split (``num_openvocab`` > 0).
        clip_checkpoint (str): The CLIP the config's image and text towers load.
        split (str): Split with open-vocabulary GT masks. Defaults to ``'openvocab'``.
        device (str): Device of the model. Defaults to 'cpu'.
        combine (str, optional): A combination config: also the ``open_vocab_combined_*`` figures of
            the head + dense zero-shot map combination (:mod:`.combined_open_vocab`). Defaults to None.
        calibration (str, optional): Its calibration file (read if it exists, else fitted on the
            config's fit split and written). Defaults to None.

    Returns:
        dict: ``open_vocab_unseen_miou``, ``open_vocab_seen_miou``, ``open_vocab_closest_seen_miou``,
        ``open_vocab_{unseen,seen}_miou_true_labels`` (the model told which classes each image holds:
        how well it draws the classes, apart from finding them), ``tagging_map`` (all %),
        ``tagging_precision``, ``tagging_recall``, ``open_vocab_per_class_iou``, ``closest_seen``
        (unseen -> the seen class standing in for it), ``open_vocab_seconds``; with ``combine`` also
        those of :func:`~.combined_open_vocab.combined_open_vocab_figures`.

    Raises:
        MissingDatasetFileError: ``data_root`` lacks a file or folder of the VOC layout it reads
            (:func:`~mmseg_clip_wsss.datasets.data_root.check_data_root`), before any model is built.
        KeyError: ``demo_info.json`` has no ``open_vocab_classes`` (data without the split).
    """
    start = time.time()
    check_data_root(data_root, splits=(split, 'train', 'val'), label_splits=('train', 'val'), demo_info=True)
    all_classes, seen = _class_lists(data_root)
    cfg = read_config(config)
    cfg.model.backbone.pretrained = cfg.model.text_encoder.pretrained = clip_checkpoint
    inferencer = WSSSInferencer(cfg, checkpoint, device=device)
    images, gts = read_split(data_root, split)

    inferencer.set_classes(all_classes)
    iou = compute_miou(_predict(inferencer, images), gts, all_classes, log_table=False)['per_class_iou']
    told = compute_miou(_predict(inferencer, images, _true_labels(gts, len(all_classes))), gts, all_classes,
                        log_table=False)['per_class_iou']
    unseen = all_classes[len(seen):]
    nearest = _nearest_seen(inferencer, len(seen))
    inferencer.set_classes(seen)
    baseline = closest_seen_iou(_predict(inferencer, images), gts, nearest)
    result = dict(
        open_vocab_unseen_miou=mean_class_iou(iou, unseen),
        open_vocab_seen_miou=mean_class_iou(iou, seen),
        open_vocab_closest_seen_miou=round(float(np.mean(list(baseline.values()))), 2),
        open_vocab_unseen_miou_true_labels=mean_class_iou(told, unseen),
        open_vocab_seen_miou_true_labels=mean_class_iou(told, seen),
        open_vocab_per_class_iou=iou,
        closest_seen={all_classes[u]: seen[s] for u, s in nearest.items()},
        closest_seen_iou={all_classes[u]: round(v, 2) for u, v in baseline.items()})
    if combine is not None:
        result.update(combined_open_vocab_figures(inferencer, combine, data_root, clip_checkpoint, split,
                                                  calibration))
    result.update(tagging_figures(clip_checkpoint, data_root))
    result['open_vocab_seconds'] = round(time.time() - start, 1)
    return result
