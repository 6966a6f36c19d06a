"""Zero-shot multi-label tags of unlabelled images from a CLIP (:func:`tag_images`, ``tools/tag_images.py``).

Every class is scored by the CLIP's zero-shot window score
(:func:`mmseg_clip_wsss.models.clip_windows.window_scores` against the prompt-ensemble class
embeddings of :func:`~mmseg_clip_wsss.models.text.zero_shot.class_embeddings`); an image is tagged
with every class whose score reaches that class's threshold. The thresholds are chosen on a labelled
split (:func:`choose_thresholds`) and saved as JSON, so the same tags can be made again later. By
default (rule ``'shared'``, :func:`shared_f1_thresholds`) every class's scores are standardised by
their mean and standard deviation over the images to tag (no label read) and one threshold in those
units, the best F1 over every (image, class) pair of the labelled split, serves all classes; rule
``'per-class'`` (:func:`best_f1_thresholds`) fits each class alone, which needs many labelled images:
with 30, the classes with 4-5 positives got thresholds that kept 36-39 % of their present images
(docs/benchmarks.md, "Label scarcity"). Tags
are written as an image-level label file (:mod:`mmseg_clip_wsss.datasets.image_labels`), which a WSSS
dataset reads like a converted one.

Hard tags treat a score just above its threshold like a sure one, and a false tag then trains as a
true label. Soft tags (:func:`soft_tags`) keep the tag decision but weigh it: the margin over the
threshold becomes a probability ``p = sigmoid((score - threshold) / T)`` (Platt scaling, Platt 1999,
with a temperature ``T`` shared by the classes, :func:`fit_temperature`, chosen on the same labelled
images as the thresholds), the target is ``p > 0.5`` and the per-class confidence ``|2p - 1|``: a tag
or an absence near the threshold counts for nearly nothing, a clear one fully. This is the
target-and-confidence form of the described images (:class:`~mmseg_clip_wsss.models.text.DescriptionTargets`),
written as a soft label file (:mod:`mmseg_clip_wsss.datasets.soft_labels`).
"""
import hashlib
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from mmseg_clip_wsss.clip_pretrain.evaluate import multilabel_map, read_split_images
from mmseg_clip_wsss.models.clip_windows import window_scores
from mmseg_clip_wsss.models.text.zero_shot import class_embeddings
from mmseg_clip_wsss.datasets.synthetic.world import load_world, read_demo_info
from mmseg_clip_wsss.datasets.atomic_files import write_json_atomically
from mmseg_clip_wsss.datasets.file_stamps import file_identity
from mmseg_clip_wsss.datasets.image_labels import BACKGROUND, load_image_labels, write_image_labels
from mmseg_clip_wsss.datasets.soft_labels import write_soft_labels
from mmseg_clip_wsss.models.open_clip_models import DEMO_CLIP_NAME, load_open_clip
from .inferencer import load_rgb

__all__ = ['CLIPTagger', 'best_f1_thresholds', 'shared_f1_thresholds', 'choose_thresholds', 'THRESHOLD_RULES',
           'tag_names', 'precision_recall', 'read_split', 'tag_images', 'TEMPERATURES', 'soft_tags',
           'fit_temperature']

#: Temperatures :func:`fit_temperature` chooses among (units of the CLIP's cosine score).
TEMPERATURES = (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08)
#: How :func:`choose_thresholds` fits the thresholds (the first is the default).
THRESHOLD_RULES = ('shared', 'per-class')


class CLIPTagger:
    """Per-class zero-shot scores of images from a CLIP checkpoint.

    Args:
        checkpoint (str): open_clip checkpoint (or pretrained tag).
        class_words (Sequence[Sequence[str]]): Per class, its name and synonyms (prompted and averaged).
        model_name (str): open_clip model config. Defaults to the demo CLIP.
    """

    def __init__(self, checkpoint: str, class_words: Sequence[Sequence[str]], model_name: str = DEMO_CLIP_NAME):
        self.model = load_open_clip(model_name, checkpoint, owner='CLIPTagger').eval()
        self.class_names = [words[0] for words in class_words]
        self.text = class_embeddings(self.model, model_name, class_words)  # (K, D)

    @torch.no_grad()
    def scores(self, images: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB -> (N, K) scores (best window cosine similarity)."""
        return window_scores(self.model, images, self.text).numpy()


def best_f1_thresholds(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per class, the score threshold with the best F1 on a labelled split.

    Args:
        scores (np.ndarray): (N, K) scores.
        labels (np.ndarray): (N, K) multi-hot.

    Returns:
        np.ndarray: (K,) thresholds; a class without positives gets +inf (never tagged).
    """
    thresholds = np.full(scores.shape[1], np.inf)
    for k in range(scores.shape[1]):
        positives = labels[:, k] > 0
        if not positives.any():
            continue
        order = np.argsort(-scores[:, k], kind='stable')
        hits = np.cumsum(positives[order])  # true positives when tagging the top i + 1
        f1 = 2 * hits / (np.arange(1, len(order) + 1) + positives.sum())
        best = int(np.argmax(f1))
        below = scores[order[best + 1], k] if best + 1 < len(order) else scores[order[best], k] - 1
        thresholds[k] = (scores[order[best], k] + below) / 2
    return thresholds


def shared_f1_thresholds(scores: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """One best-F1 threshold for every class, in units of each class's spread over ``reference``.

    Each class's scores are standardised, ``z = (score - mean_k) / std_k`` with the mean and standard
    deviation of class k over the reference images (the images to tag: scores only, no label); the one
    threshold ``c`` with the best F1 over every (image, class) pair of the labelled images is mapped
    back per class. One parameter fitted on N x K pairs instead of K fitted on N images each: a class
    with few (or no) positives among the labelled images still gets a threshold.

    Args:
        scores (np.ndarray): (N, K) scores of the labelled images.
        labels (np.ndarray): (N, K) their multi-hot labels.
        reference (np.ndarray): (M, K) scores of the images to tag (M >= 2).

    Returns:
        np.ndarray: (K,) thresholds ``mean_k + c * std_k`` in score units; +inf for every class when
        the labelled images hold no positive.

    Raises:
        ValueError: fewer than 2 reference images, or another number of classes.
    """
    if reference.ndim != 2 or len(reference) < 2 or reference.shape[1] != scores.shape[1]:
        raise ValueError(f'shared_f1_thresholds: reference scores must be (M >= 2, {scores.shape[1]}), '
                         f'got {reference.shape}.')
    mean, std = reference.mean(0), reference.std(0) + 1e-6
    one = best_f1_thresholds(((scores - mean) / std).reshape(-1, 1), labels.reshape(-1, 1))[0]
    return mean + one * std


def choose_thresholds(rule: str, scores: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(K,) thresholds by ``rule``: ``'shared'`` (:func:`shared_f1_thresholds`, standardised by
    ``reference``) or ``'per-class'`` (:func:`best_f1_thresholds`; ``reference`` unused).

    Raises:
        ValueError: an unknown rule.
    """
    if rule == 'shared':
        return shared_f1_thresholds(scores, labels, reference)
    if rule == 'per-class':
        return best_f1_thresholds(scores, labels)
    raise ValueError(f'threshold rule {rule!r} is unknown; choose from {list(THRESHOLD_RULES)}.')


def tag_names(scores: np.ndarray, thresholds: np.ndarray, class_names: Sequence[str],
              min_tags: int = 1) -> List[List[str]]:
    """Class names at or above their thresholds per image (at least ``min_tags``, by margin)."""
    margin = scores - thresholds[None]
    tags = []
    for row in margin:
        picked = set(np.flatnonzero(row >= 0).tolist()) | set(np.argsort(-row)[:min_tags].tolist())
        tags.append([class_names[k] for k in sorted(picked)])
    return tags


def soft_tags(scores: np.ndarray, thresholds: np.ndarray, temperature: float) -> tuple:
    """Confidence-weighted tags: targets ``p > 0.5`` and confidences ``|2p - 1|`` of
    ``p = sigmoid((scores - thresholds) / temperature)``.

    Args:
        scores (np.ndarray): (N, K) CLIP scores.
        thresholds (np.ndarray): (K,) per-class thresholds (+inf, a class without a positive among
            the labelled images: target 0 with confidence 0, nothing is known of it).
        temperature (float): > 0, in score units.

    Returns:
        tuple[np.ndarray, np.ndarray]: targets and confidences, (N, K) float32 in [0, 1].

    Raises:
        ValueError: a temperature <= 0.
    """
    if not temperature > 0:
        raise ValueError(f'soft_tags: temperature must be > 0, got {temperature}.')
    known = np.isfinite(thresholds)
    margin = np.clip((scores - np.where(known, thresholds, 0)[None]) / temperature, -50, 50)
    p = np.where(known[None], 1.0 / (1.0 + np.exp(-margin)), 0.5)
    return (p > 0.5).astype(np.float32), np.abs(2 * p - 1).astype(np.float32)


def fit_temperature(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray,
                    temperatures: Sequence[float] = TEMPERATURES) -> float:
    """The temperature of :func:`soft_tags` with the least binary cross-entropy of
    ``sigmoid((score - threshold) / T)`` against labelled images (classes with a finite threshold).

    Args:
        scores (np.ndarray): (N, K) scores of labelled images (never the images that are scored).
        labels (np.ndarray): (N, K) their multi-hot labels.
        thresholds (np.ndarray): (K,) from :func:`choose_thresholds` on the same images.
        temperatures (Sequence[float]): The candidates. Defaults to :data:`TEMPERATURES`.

    Returns:
        float: The best temperature (the largest candidate when no class has a threshold).
    """
    keep = np.isfinite(thresholds)
    if not keep.any():
        return float(max(temperatures))
    best, best_loss = None, np.inf
    for t in temperatures:
        z = np.clip((scores[:, keep] - thresholds[None, keep]) / t, -50, 50)
        y = labels[:, keep]
        loss = float(np.mean(np.logaddexp(0, z) - y * z))  # BCE with logits
        if loss < best_loss:
            best, best_loss = float(t), loss
    return best


def precision_recall(tags: Sequence[Sequence[str]], labels: np.ndarray, class_names: Sequence[str]) -> Dict:
    """Micro precision and recall (%) of tags against (N, K) multi-hot labels."""
    predicted = np.zeros_like(labels, dtype=bool)
    for i, names in enumerate(tags):
        predicted[i, [class_names.index(n) for n in names]] = True
    truth = labels > 0
    tp = float((predicted & truth).sum())
    return dict(precision=100 * tp / max(predicted.sum(), 1), recall=100 * tp / max(truth.sum(), 1))


def read_split(data_root: str, split: str, side: Optional[int] = None) -> tuple:
    """Ids and images of ``ImageSets/Segmentation/<split>.txt`` (``JPEGImages/<id>.jpg``), every image
    resized to ``side`` x ``side`` when its size differs (default: the first image's height).

    Returns:
        tuple: ids (list[str]) and images (N, S, S, 3) uint8 RGB.
    """
    with open(osp.join(data_root, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
        ids = [line.strip() for line in f if line.strip()]
    images = []
    for image_id in ids:
        rgb = load_rgb(osp.join(data_root, 'JPEGImages', f'{image_id}.jpg'))
        side = side or rgb.shape[0]
        if rgb.shape[:2] != (side, side):
            rgb = np.asarray(Image.fromarray(rgb).resize((side, side), Image.BICUBIC))
        images.append(rgb)
    return ids, np.stack(images)


def _class_words(data_root: str) -> List[List[str]]:
    """The labelled classes of a generated dataset's world with their synonyms."""
    return [list(c.words) for c in load_world(data_root).classes]


def _label_file_classes(data_root: str, names: List[str]) -> List[str]:
    """Every class a label file of ``data_root`` may name: the tagged ones, and the unseen classes of
    a generated open-vocabulary split (``demo_info.json['open_vocab_classes']``), which scoring drops."""
    info_file = osp.join(data_root, 'demo_info.json')
    extra: List[str] = []
    if osp.isfile(info_file):
        extra = list(read_demo_info(data_root).get('open_vocab_classes', []))
    return list(dict.fromkeys([BACKGROUND] + names + extra))


def _saved_thresholds(threshold_file: str, names: List[str], made_for: Dict[str, str]) -> tuple:
    """The thresholds and temperature of ``threshold_file``, checked to have been made as ``made_for``
    says (``chosen_on``, ``checkpoint`` and its stamp, ``threshold_rule`` and, for the shared rule,
    ``standardised_on`` and the stamp of those scores; a file without a rule was made per class).

    Returns:
        tuple: (K,) thresholds (a ``null`` is +inf: a class never tagged) and the temperature (None
        in a file written before soft tags).

    Raises:
        FileExistsError: they were made otherwise or lack a class of ``names``, naming the file, both
            and the fix.
        ValueError: the file is not such a JSON object (cut short, edited: a threshold that is no
            number, a temperature <= 0), naming the file, what is wrong and the fix.
    """
    fix = 'pass --overwrite to choose them again on this labelled split, or give another --thresholds'
    try:
        with open(threshold_file) as f:
            saved = json.load(f)
    except ValueError as err:
        raise ValueError(f'thresholds file {threshold_file} is not valid JSON ({err}); {fix}') from err
    if not isinstance(saved, dict) or not isinstance(saved.get('thresholds'), dict):
        raise ValueError(f'thresholds file {threshold_file} is not the JSON object tag_images writes '
                         f'({{"thresholds": {{CLASS: NUMBER, ...}}, ...}}); {fix}')
    saved.setdefault('threshold_rule', 'per-class')
    differ = [f'{key} {saved.get(key)} there, {now} now' for key, now in made_for.items() if saved.get(key) != now]
    missing = [n for n in names if n not in saved['thresholds']]
    if missing:
        differ.append(f'no threshold of {", ".join(missing)}')
    if differ:
        raise FileExistsError(f'thresholds file {threshold_file} was made for other data ({"; ".join(differ)}); '
                              f'{fix}')
    values = [saved['thresholds'][n] for n in names]
    bad = [f'{n}: {v!r}' for n, v in zip(names, values)
           if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or np.isnan(v))]
    temperature = saved.get('temperature')
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not temperature > 0):
        bad.append(f'temperature: {temperature!r} (a number > 0)')
    if bad:
        raise ValueError(f'thresholds file {threshold_file} holds values that are no thresholds '
                         f'({"; ".join(bad)}); {fix}')
    thresholds = np.array([np.inf if v is None else float(v) for v in values])
    return thresholds, None if temperature is None else float(temperature)


def _scores_stamp(scores: np.ndarray) -> str:
    """A short fingerprint of CLIP scores (rounded to 1e-5): the images and the CLIP that gave them."""
    return hashlib.sha256(np.round(scores.astype(np.float64), 5).tobytes()).hexdigest()[:16]


def _thresholds(tagger: CLIPTagger, names: List[str], threshold_file: str, labelled_root: str,
                labelled_split: str, checkpoint: str, rule: str, reference: np.ndarray, reference_on: str,
                overwrite: bool = False) -> tuple:
    """Thresholds and the soft-tag temperature: read from ``threshold_file`` if it exists and was made
    the same way (``overwrite``: chosen again; a file without a temperature, written before soft tags,
    gets it from the labelled split), else chosen on the labelled split (:func:`choose_thresholds`
    with ``rule``, standardised by the ``reference`` scores of the images to tag, ``reference_on``;
    least BCE) and written there (atomically; a class never tagged has the threshold ``null``)."""
    made_for = dict(chosen_on=f'{osp.abspath(labelled_root)}:{labelled_split}', checkpoint=osp.abspath(checkpoint),
                    checkpoint_stamp=file_identity(checkpoint) if osp.isfile(checkpoint) else checkpoint,
                    threshold_rule=rule)
    if rule == 'shared':
        made_for.update(standardised_on=reference_on, standardised_stamp=_scores_stamp(reference))
    saved = None
    if osp.isfile(threshold_file) and not overwrite:
        saved, temperature = _saved_thresholds(threshold_file, names, made_for)
        if temperature is not None:
            return saved, temperature
    images, labels = read_split_images(labelled_root, labelled_split, names)
    scores = tagger.scores(images)
    thresholds = saved if saved is not None else choose_thresholds(rule, scores, labels, reference)
    never = [n for n, t in zip(names, thresholds) if np.isinf(t)]
    if never:
        print(f'[tag_images] no image of {labelled_root}:{labelled_split} holds {", ".join(never)}: '
              f'{"they are" if len(never) > 1 else "it is"} never tagged (per-class thresholds; '
              '--threshold-rule shared gives every class one)')
    temperature = fit_temperature(scores, labels, thresholds)
    values = [None if np.isinf(t) else t for t in thresholds.tolist()]
    write_json_atomically(threshold_file, dict(thresholds=dict(zip(names, values)),
                                               temperature=temperature, **made_for,
                                               rule=f'best F1 ({rule}); temperature: least BCE'))
    return thresholds, temperature


def _score_tags(tags, scores: np.ndarray, ids: List[str], names: List[str], data_root: str,
                true_file: str) -> Dict:
    """Precision, recall and mAP of the tags against the label file ``true_file``."""
    known = _label_file_classes(data_root, names)
    truth = load_image_labels(true_file, [BACKGROUND] + names, known)
    untagged = known[len(names) + 1:]
    if untagged:
        print(f'[tag_images] scored over the {len(names)} tagged classes: true labels of '
              f'{", ".join(untagged)} (not in the vocabulary) are left out')
    labels = np.array([[n in truth[i] for n in names] for i in ids], dtype=np.float32)
    result = dict(precision_recall(tags, labels, names), mAP=multilabel_map(scores, labels)['mAP'])
    print(f"[tag_images] against {true_file}: mAP {result['mAP']:.1f}, precision "
          f"{result['precision']:.1f}, recall {result['recall']:.1f}")
    return result


def tag_images(checkpoint: str, data_root: str, out: str, split: str = 'train',
               labelled_root: Optional[str] = None, labelled_split: str = 'train',
               thresholds: Optional[str] = None, true_labels: Optional[str] = None,
               model_name: str = DEMO_CLIP_NAME, overwrite: bool = False, soft: bool = False,
               threshold_rule: str = THRESHOLD_RULES[0]) -> Dict:
    """Tag the images of ``data_root``'s ``split`` and write the tags as the label file ``out``.

    Args:
        checkpoint (str): open_clip checkpoint of the CLIP.
        data_root (str): Images to tag (VOC layout).
        out (str): Label file to write.
        split (str): Split of ``data_root`` to tag. Defaults to 'train'.
        labelled_root (str, optional): Labelled dataset whose split chooses the thresholds and whose
            world gives the class names and synonyms. Defaults to ``data_root``.
        labelled_split (str): Its split. Defaults to 'train'.
        thresholds (str, optional): Thresholds JSON, read if it exists, else written. Defaults to
            ``--out`` without its extension + ``_thresholds.json``.
        true_labels (str, optional): Label file to score the tags against. Defaults to
            ``<data_root>/ImageLabels/<split>.txt`` if it exists.
        model_name (str): open_clip model name. Defaults to the demo CLIP.
        overwrite (bool): Choose the thresholds again even if ``thresholds`` exists. Defaults to
            False: an existing file chosen on another labelled split or with another CLIP is
            refused.
        soft (bool): Write confidence-weighted tags (:func:`soft_tags`) as a soft label file
            (JSON, ``WSSSDataset(soft_label_file=...)``) instead of a label file. Defaults to False.
        threshold_rule (str): ``'shared'`` (one threshold in units of each class's spread over the
            images to tag) or ``'per-class'`` (:func:`choose_thresholds`). Defaults to 'shared'.

    Returns:
        dict: ``label_file``, ``thresholds``, ``num_images`` and, with true labels, ``precision``,
        ``recall`` (%) and ``mAP`` (%).

    Raises:
        FileExistsError: ``thresholds`` was made for another labelled split or CLIP (not with
            ``overwrite``).
        FileNotFoundError: ``data_root`` has no split file of ``split`` (before any work).
        ValueError: an unknown ``threshold_rule`` (before any work), or the shared rule with fewer than
            2 images to tag.
    """
    if threshold_rule not in THRESHOLD_RULES:
        raise ValueError(f'tag_images: threshold rule {threshold_rule!r} is unknown; choose from {list(THRESHOLD_RULES)}.')
    labelled_root = labelled_root or data_root
    if not osp.isfile(osp.join(labelled_root, 'demo_info.json')):
        raise FileNotFoundError(f'tag_images: {osp.join(labelled_root, "demo_info.json")} does not exist: the class '
                                'names and synonyms are read from the world of a generated dataset; give '
                                '--labelled-root a dataset written by tools/make_demo_data.py.')
    split_file = osp.join(data_root, 'ImageSets', 'Segmentation', f'{split}.txt')
    for root, name, option in ((data_root, split, '--split'), (labelled_root, labelled_split, '--labelled-split')):
        path = osp.join(root, 'ImageSets', 'Segmentation', f'{name}.txt')
        if not osp.isfile(path):  # before the images are scored (a minute of work)
            raise FileNotFoundError(f'tag_images: split file {path} does not exist: give a {option} of '
                                    f'{root} (its ImageSets/Segmentation/*.txt), or write that file.')
    class_words = _class_words(labelled_root)
    names = [w[0] for w in class_words]
    tagger = CLIPTagger(checkpoint, class_words, model_name)
    threshold_file = thresholds or osp.splitext(out)[0] + '_thresholds.json'
    ids, images = read_split(data_root, split)
    if threshold_rule == 'shared' and len(ids) < 2:
        raise ValueError(f'tag_images: the shared threshold rule standardises the scores over the images to '
                         f'tag, and {split_file} lists {len(ids)}: tag 2 or more, or pass --threshold-rule per-class.')
    scores = tagger.scores(images)
    cut, temperature = _thresholds(tagger, names, threshold_file, labelled_root, labelled_split, checkpoint,
                                   threshold_rule, scores, f'{osp.abspath(data_root)}:{split}', overwrite)
    note = f'zero-shot CLIP tags ({osp.basename(checkpoint)}), thresholds {threshold_file}'
    if soft:
        targets, confidence = soft_tags(scores, cut, temperature)
        write_soft_labels(out, names, {i: (t, c) for i, t, c in zip(ids, targets, confidence)},
                          note=f'confidence-weighted {note}, temperature {temperature}',
                          image_files={i: osp.join(data_root, 'JPEGImages', f'{i}.jpg') for i in ids})
        tags = [[names[k] for k in np.flatnonzero(row)] for row in targets]
    else:
        tags = tag_names(scores, cut, names)
        write_image_labels(out, dict(zip(ids, tags)), header=[note])
    result = dict(label_file=out, thresholds=threshold_file, num_images=len(ids), temperature=temperature)
    true_file = true_labels or osp.join(data_root, 'ImageLabels', f'{split}.txt')
    if osp.isfile(true_file):
        result.update(_score_tags(tags, scores, ids, names, data_root, true_file))
    print(f'[tag_images] {len(ids)} images tagged into {out} (thresholds {threshold_file})')
    return result
