"""Corpus -> pretraining -> evaluation, with the caching that makes the pretrained CLIP an asset.

``tools/pretrain_clip.py`` and ``tools/eval_clip.py`` are thin command lines over
:func:`pretrain_from_world` and :func:`evaluate_checkpoint`; ``make demo`` calls them once and reuses
``<out_dir>/clip.pt`` afterwards (``--fresh`` redoes it).

``<out_dir>`` holds ``corpus.npz`` (the captioned corpus), ``corpus.json`` (the world and corpus
settings it was drawn with: a cached corpus is reused only when they match), ``latest.pth``
(resumable state), ``clip.pt`` (the open_clip state dict) and ``pretrain.json`` (settings, seconds,
final loss and temperature).
"""
import json
import os
import os.path as osp
import time
from dataclasses import asdict, replace
from typing import Dict, Optional

import torch
from tqdm import tqdm

from mmseg_clip_wsss.datasets.atomic_files import write_json_atomically
from mmseg_clip_wsss.datasets.synthetic.world import WorldConfig
from mmseg_clip_wsss.models.open_clip_models import load_open_clip
from mmseg_clip_wsss.datasets.synthetic.corpus import CaptionCorpus, CorpusConfig, build_corpus, load_corpus, save_corpus
from mmseg_clip_wsss.models.clip_windows import window_scores
from mmseg_clip_wsss.models.text.zero_shot import class_embeddings
from .evaluate import multilabel_map, read_split_images, retrieval_recall_at_1
from .train import PretrainConfig, pretrain_clip, settings_differences

__all__ = ['corpus_for', 'pretrain_from_world', 'evaluate_checkpoint', 'write_json', 'same_settings']


def write_json(path: str, data: Dict) -> str:
    """Write ``data`` as indented JSON, atomically."""
    return write_json_atomically(path, data)


def same_settings(recorded: Optional[Dict], settings: Dict) -> bool:
    """Whether the settings a cached result records are ``settings``. A field that holds None is
    the same as a field that is absent, so a setting added since the record was written (whose
    default is None, e.g. ``PretrainConfig.pretrained``) does not invalidate it."""
    return recorded is not None and not settings_differences(recorded, settings)


def corpus_for(world: WorldConfig, cfg: CorpusConfig, path: str, workers: int = 1,
               fresh: bool = False, show_progress: bool = True) -> CaptionCorpus:
    """The corpus of ``world`` drawn with ``cfg``: read from ``path`` if it was made with the same
    world and settings (recorded in ``<path without .npz>.json``), else drawn and written there."""
    record_path = osp.splitext(path)[0] + '.json'
    record = dict(world=world.to_dict(), corpus=asdict(cfg))
    record = json.loads(json.dumps(record))  # tuples -> lists, as read back
    if not fresh and osp.isfile(path) and osp.isfile(record_path):
        with open(record_path) as f:
            if same_settings(json.load(f), record):  # (a corpus written before class_words: the world's)
                return replace(load_corpus(path), class_words=tuple(c.words for c in world.classes + world.unseen))
    bar = tqdm(total=cfg.num_pairs, desc='captioned corpus', disable=not show_progress, dynamic_ncols=True)
    corpus = build_corpus(world, cfg, workers=workers, progress=bar.update)
    bar.close()
    save_corpus(corpus, path)
    write_json(record_path, record)
    return corpus


def pretrain_from_world(world: WorldConfig, out_dir: str, corpus_cfg: Optional[CorpusConfig] = None,
                        pretrain_cfg: Optional[PretrainConfig] = None, workers: int = 2, resume: bool = True,
                        fresh: bool = False, show_progress: bool = True) -> Dict:
    """Draw (or reuse) the corpus of ``world`` and pretrain a CLIP on it (or reuse ``clip.pt``).

    Args:
        world (WorldConfig): The world to caption.
        out_dir (str): Output folder (see the module docstring).
        corpus_cfg (CorpusConfig, optional): Corpus settings. Defaults to ``CorpusConfig()``.
        pretrain_cfg (PretrainConfig, optional): Schedule. Defaults to ``PretrainConfig()``.
        workers (int): Processes drawing the corpus. Defaults to 2.
        resume (bool): Continue an interrupted pretraining from ``latest.pth``. Defaults to True.
        fresh (bool): Redo the corpus and the pretraining even where their results exist.
        show_progress (bool): Progress bars.

    Returns:
        dict: ``pretrain.json``'s content: ``checkpoint``, ``seconds`` (corpus + pretraining wall
        time of the run that made the checkpoint), ``corpus_seconds``, ``train_seconds``, ``loss``,
        ``logit_scale`` and the settings; ``reused`` (True) where ``clip.pt`` was not made again
        (``checkpoint`` then names it under ``out_dir``, wherever the record was written).
    """
    corpus_cfg = corpus_cfg or CorpusConfig()
    pretrain_cfg = pretrain_cfg or PretrainConfig()
    summary_path = osp.join(out_dir, 'pretrain.json')
    settings = json.loads(json.dumps(dict(world=world.to_dict(), corpus=asdict(corpus_cfg),
                                          pretrain=asdict(pretrain_cfg))))
    if not fresh and osp.isfile(summary_path) and osp.isfile(osp.join(out_dir, 'clip.pt')):
        with open(summary_path) as f:
            done = json.load(f)
        if same_settings(done.get('settings'), settings):
            return dict(done, checkpoint=osp.join(out_dir, 'clip.pt'), reused=True)
        changed = '; '.join(settings_differences(done.get('settings') or {}, settings))
        print(f'[pretrain_clip] {summary_path} was made with other settings ({changed}): pretraining '
              'again (its clip.pt is replaced)', flush=True)
    start = time.time()
    corpus = corpus_for(world, corpus_cfg, osp.join(out_dir, 'corpus.npz'), workers, fresh, show_progress)
    corpus_seconds = time.time() - start
    if fresh and osp.isfile(osp.join(out_dir, 'latest.pth')):
        os.remove(osp.join(out_dir, 'latest.pth'))
    result = pretrain_clip(corpus, pretrain_cfg, out_dir, resume=resume and not fresh,
                           show_progress=show_progress)
    summary = dict(result, corpus_seconds=round(corpus_seconds, 1), train_seconds=result['seconds'],
                   seconds=round(time.time() - start, 1), settings=settings)
    write_json(summary_path, summary)
    return summary


def evaluate_checkpoint(checkpoint: Optional[str], model_name: str, world: WorldConfig, data_root: str,
                        split: str = 'val', heldout: Optional[CaptionCorpus] = None,
                        random_seed: int = 0) -> Dict:
    """Zero-shot figures of a CLIP checkpoint (None: the random tower of ``random_seed``).

    Returns:
        dict: ``zero_shot_map`` (%, over the labelled classes of ``split``), ``per_class_ap``,
        and with ``heldout`` the retrieval recalls (:func:`retrieval_recall_at_1`).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_seed)
        model = load_open_clip(model_name, checkpoint, warn_random=False).eval()
    names = [c.name for c in world.classes]
    text = class_embeddings(model, model_name, [c.words for c in world.classes])
    images, labels = read_split_images(data_root, split, names)
    result = multilabel_map(window_scores(model, images, text).numpy(), labels)
    out = dict(zero_shot_map=round(result['mAP'], 2),
               per_class_ap={n: round(a, 2) for n, a in zip(names, result['per_class'])})
    if heldout is not None:
        out.update({k: round(v, 2) if isinstance(v, float) else v
                    for k, v in retrieval_recall_at_1(model, model_name, heldout).items()})
    return out
