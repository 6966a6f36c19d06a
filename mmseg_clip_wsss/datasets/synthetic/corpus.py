"""The captioned image corpus of a generated world, for contrastive (CLIP) pretraining.

Every pair is drawn from a fresh scene of the world (its labelled *and* its unseen classes, with a
seed of its own, never the WSSS images), in one of three kinds:

- ``crop``: a window of 0.3-0.6 of the image side around one object (jittered), resized to the
  CLIP's input size; the caption names every object at least half inside the window. Windows are
  relative to the image side, so objects appear at the scale they have in the world's images.
- ``scene``: the whole image, resized; the caption names all its objects, with counts, positions,
  relations and the ground.
- ``ground``: the window of a few tries that holds the fewest object pixels; captioned with the
  clutter vocabulary when no object is at least half inside it.

The result is deterministic for the same arguments (pair ``i`` uses the generator seeded with
``(seed, i)``), whatever the number of worker processes.
"""
import json
import multiprocessing as mp
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from .world import WorldConfig, draw_scene
from .captions import CaptionStyle, Claims, caption_ground, caption_objects

__all__ = ['CorpusConfig', 'CaptionCorpus', 'build_corpus', 'load_corpus', 'save_corpus']

PAIR_KINDS = ('crop', 'scene', 'ground')
_CLAIM_FIELDS = ('class_set', 'counts', 'objects', 'count_claims', 'descriptors')


@dataclass
class CorpusConfig:
    """How the corpus is drawn.

    Args:
        num_pairs (int): Image-caption pairs. Defaults to 20000.
        image_size (int): Side of the stored images (the CLIP's input size). Defaults to 64.
        kind_probs (tuple[float]): Chance of a ``crop``, ``scene`` and ``ground`` pair.
        window (tuple[float, float]): Crop side as a fraction of the scene side.
        seed (int): Seed (the WSSS data uses others). Defaults to 1000.
        style (CaptionStyle): Word probabilities of the captions.
    """
    num_pairs: int = 20000
    image_size: int = 64
    kind_probs: Tuple[float, float, float] = (0.75, 0.15, 0.1)
    window: Tuple[float, float] = (0.3, 0.6)
    seed: int = 1000
    style: CaptionStyle = field(default_factory=CaptionStyle)


@dataclass
class CaptionCorpus:
    """Images and captions of an image-caption corpus, with what each caption claims when known.

    ``images`` (N, S, S, 3) uint8 RGB; ``captions`` list of N str; ``claims`` (optional): the fields
    of :class:`~mmseg_clip_wsss.datasets.synthetic.captions.Claims` stacked over the pairs, which tell
    the captions that are true of other images too (a generated corpus has them; real pairs do not);
    ``class_names``: the vocabulary (labelled then unseen classes) the claims index; ``class_words``:
    per class, the words the captions use for it (its name, then its synonyms; empty: the names
    alone, as in a corpus written before the field).
    """
    images: np.ndarray
    captions: List[str]
    claims: Optional[Dict[str, np.ndarray]] = None
    class_names: Tuple[str, ...] = ()
    class_words: Tuple[Tuple[str, ...], ...] = ()

    def words_of_classes(self) -> List[Tuple[str, ...]]:
        """Per class of ``class_names``, its caption words (the name alone where none are known)."""
        return [tuple(w) for w in self.class_words] if self.class_words else [(n, ) for n in self.class_names]

    def __len__(self) -> int:
        return len(self.captions)


def _window(rng, scene, size: int, win: int, kind: str) -> Tuple[int, int]:
    """Top-left corner of a ``win`` window: around an object (jittered) or on the emptiest ground."""
    if kind == 'ground':
        tries = [tuple(int(v) for v in rng.integers(0, size - win + 1, 2)) for _ in range(8)]
        filled = [int((scene.owner[y:y + win, x:x + win] >= 0).sum()) for x, y in tries]
        return tries[int(np.argmin(filled))]
    obj = scene.objects[rng.integers(len(scene.objects))]
    cx, cy = (c + rng.uniform(-0.15, 0.15) * win for c in obj.centre)
    return (int(np.clip(round(cx - win / 2), 0, size - win)), int(np.clip(round(cy - win / 2), 0, size - win)))


def draw_pair(rng: np.random.Generator, world: WorldConfig, cfg: CorpusConfig,
              class_index: Dict[str, int]) -> Tuple[np.ndarray, str, Claims]:
    """One image-caption pair, of a kind drawn with ``cfg.kind_probs`` (see the module docstring)."""
    kind = PAIR_KINDS[rng.choice(len(PAIR_KINDS), p=cfg.kind_probs)]
    scene = draw_scene(rng, world, world.classes + world.unseen)
    size, out = world.image_size, cfg.image_size
    if kind == 'scene':
        image = Image.fromarray(scene.image).resize((out, out), Image.BILINEAR)
        text, claims = caption_objects(rng, scene.objects, class_index, cfg.style, size, whole_image=True)
        return np.asarray(image), text, claims
    win = int(round(rng.uniform(*cfg.window) * size))
    x, y = _window(rng, scene, size, win, kind)
    inside = scene.owner[y:y + win, x:x + win]
    visible = np.bincount(inside[inside >= 0].ravel(), minlength=len(scene.objects))
    named = [o for k, o in enumerate(scene.objects) if visible[k] >= 0.5 * o.area]
    image = np.asarray(Image.fromarray(scene.image[y:y + win, x:x + win]).resize((out, out), Image.BILINEAR))
    if not named:
        return (image, *caption_ground(rng, len(class_index)))
    return (image, *caption_objects(rng, named, class_index, cfg.style, size, whole_image=False))


def _draw_pairs(args) -> list:
    world, cfg, indices = args
    class_index = {c.name: i for i, c in enumerate(world.classes + world.unseen)}
    return [draw_pair(np.random.default_rng([cfg.seed, i]), world, cfg, class_index) for i in indices]


def build_corpus(world: WorldConfig, cfg: CorpusConfig, workers: int = 1, progress=None) -> CaptionCorpus:
    """Draw the corpus of ``world``.

    Args:
        world (WorldConfig): The world (its labelled and unseen classes are captioned).
        cfg (CorpusConfig): Size, kinds, windows, seed and caption style.
        workers (int): Processes drawing pairs (the result does not depend on it). Defaults to 1.
        progress (callable, optional): Called with the number of pairs done after every chunk.

    Returns:
        CaptionCorpus
    """
    chunk = 250
    jobs = [(world, cfg, range(s, min(s + chunk, cfg.num_pairs))) for s in range(0, cfg.num_pairs, chunk)]
    pairs = []
    if workers > 1:
        with mp.get_context('fork').Pool(workers) as pool:
            for part in pool.imap(_draw_pairs, jobs):
                pairs += part
                if progress:
                    progress(len(part))
    else:
        for job in jobs:
            part = _draw_pairs(job)
            pairs += part
            if progress:
                progress(len(part))
    claims = {f: np.stack([np.asarray(getattr(p[2], f)) for p in pairs]) for f in _CLAIM_FIELDS}
    classes = world.classes + world.unseen
    return CaptionCorpus(np.stack([p[0] for p in pairs]), [p[1] for p in pairs], claims,
                         tuple(c.name for c in classes), tuple(c.words for c in classes))


def save_corpus(corpus: CaptionCorpus, path: str) -> str:
    """Write ``corpus`` to an ``.npz`` file (atomically: a temporary name, then a rename)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp.npz'
    np.savez(tmp, images=corpus.images, captions=np.array(corpus.captions),
             class_names=np.array(corpus.class_names), class_words=np.array(json.dumps(corpus.class_words)),
             **(corpus.claims or {}))
    os.replace(tmp, path)
    return path


def load_corpus(path: str) -> CaptionCorpus:
    """Read a corpus written by :func:`save_corpus`."""
    with np.load(path) as data:
        claims = {f: data[f] for f in _CLAIM_FIELDS} if _CLAIM_FIELDS[0] in data.files else None
        words = json.loads(str(data['class_words'])) if 'class_words' in data.files else ()
        return CaptionCorpus(data['images'], [str(c) for c in data['captions']], claims,
                             tuple(str(c) for c in data['class_names']), tuple(tuple(w) for w in words))
