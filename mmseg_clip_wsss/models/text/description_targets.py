"""Soft image-level targets from free-text descriptions: what each description says is in the image.

Each description gives per-class evidence from two sources:

* a cheap prior, word matches: the description contains a class word or synonym as a whole word
  (singular or plural; ``'two circles'`` matches ``disc`` when ``'circle'`` is one of its words);
* the CLIP text tower: the description's embedding against the class prompt embeddings, a softmax
  over the foreground classes (temperature ``clip_temperature``), as in CLIP's zero-shot classifier
  (Radford et al., ICML 2021) -- but with a description in place of the image.

``evidence = prior_weight * match + (1 - prior_weight) * softmax``. A class is *named* by an image's
descriptions when its evidence in one of them reaches ``name_threshold``. The text tower alone can name
a class only when ``1 - prior_weight >= name_threshold``; with the defaults (``prior_weight=0.6``,
``name_threshold=0.5``) it cannot: a word match names a class and the text tower decides how strongly
(0.6 to 1), and a description that names no known class ('a busy picture', 'something round') gives no
positive target. A lower ``prior_weight`` (say 0.3) lets a confident text tower name classes that no
word matches (paraphrases the word lists miss).

Descriptions name only some of the objects, so an unnamed class is not surely absent: its target is
0 with a confidence of ``negative_weight * (1 - max softmax)`` -- lower for the classes a vague
description hints at ('something round' leans towards disc, ring and crescent). Most classes of a
vocabulary are absent from any one image, so an unnamed class is almost always absent (98.4 % of the
unnamed classes of the demo's described pool; a COCO image holds 3.5 of 80 classes on average): the default
``negative_weight=1.0`` trusts an absence as a label would, the hint aside. A named class has
confidence 1; the background column (when the class list has one) is target 1, confidence 1, as in
the image-level multi-hot labels.
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from mmseg_clip_wsss.registry import MODELS
from .vocabularies import DESCRIPTION_WORDS, readable_name

__all__ = ['DescriptionTargets', 'class_word_pattern']


def class_word_pattern(words: Sequence[str]) -> 're.Pattern':
    """A regular expression that finds any of ``words`` as whole words, singular or plural.

    Case and spacing are ignored (``'plus sign'`` matches ``'Plus  signs'``); plural forms are
    ``+s`` and ``+es``; irregular plurals (``'people'``) are words of their own.

    Raises:
        ValueError: no word.
    """
    alternatives = ['\\s+'.join(re.escape(part) for part in w.lower().split()) for w in words if w.strip()]
    if not alternatives:
        raise ValueError('DescriptionTargets: every class needs at least one word.')
    return re.compile(r'\b(?:' + '|'.join(sorted(alternatives, key=len, reverse=True)) + r')(?:e?s)?\b')


@MODELS.register_module()
class DescriptionTargets(nn.Module):
    """Soft image-level targets with a confidence from the descriptions of each image.

    See the module docstring for the rule. No parameter learns; the class prompt embeddings and the
    description embeddings come from the caller (e.g. :meth:`CLIPPromptTextEncoder.forward` and
    :meth:`CLIPPromptTextEncoder.encode_texts`).

    Args:
        class_words (Sequence[str | Sequence[str]]): Per class (dataset order), its name or its name
            and synonyms, e.g. ``[['background'], ['disc', 'circle'], ...]``.
        prior_weight (float): Weight of the word matches in the evidence, in [0, 1]. Defaults to 0.6.
        name_threshold (float): Evidence at which a description names a class, in (0, 1].
            Defaults to 0.5.
        clip_temperature (float): Temperature of the softmax over class similarities (CLIP's
            logit scale 100 is 0.01). Defaults to 0.01.
        negative_weight (float): Confidence of "absent" for an unnamed class that the text tower
            does not hint at, in [0, 1]. Defaults to 1.0 (0.5 gave pseudo masks 2 to 8 mIoU lower in
            the label-scarcity study, docs/benchmarks.md).
        background_index (int, optional): The background column (target 1, confidence 1; never
            matched); None: no background. Defaults to 0.
        extra_words (str | dict, optional): More words per class: a vocabulary of
            :data:`~mmseg_clip_wsss.models.text.vocabularies.DESCRIPTION_WORDS` (``'coco'``,
            ``'voc'``) or ``{class name: words}``; a class is found by its name as the dataset spells
            it or as it is prompted (``'tv'`` or ``'television'``), and that name becomes a word of
            the class too. Defaults to None.
    """

    def __init__(self,
                 class_words: Sequence,
                 prior_weight: float = 0.6,
                 name_threshold: float = 0.5,
                 clip_temperature: float = 0.01,
                 negative_weight: float = 1.0,
                 background_index: Optional[int] = 0,
                 extra_words: Union[str, Dict[str, Sequence[str]], None] = None):
        super().__init__()
        if not 0.0 <= prior_weight <= 1.0 or not 0.0 < name_threshold <= 1.0:
            raise ValueError('DescriptionTargets: prior_weight must be in [0, 1] and name_threshold in (0, 1], '
                             f'got {prior_weight} and {name_threshold}.')
        if clip_temperature <= 0 or not 0.0 <= negative_weight <= 1.0:
            raise ValueError('DescriptionTargets: clip_temperature must be > 0 and negative_weight in [0, 1], '
                             f'got {clip_temperature} and {negative_weight}.')
        self.class_words: List[List[str]] = [[w] if isinstance(w, str) else list(w) for w in class_words]
        self._add_words(extra_words)
        self.num_classes = len(self.class_words)
        if background_index is not None and not 0 <= background_index < self.num_classes:
            raise ValueError(f'DescriptionTargets: background_index {background_index} is not a column of '
                             f'{self.num_classes} classes.')
        self.background_index = background_index
        self.patterns = [None if k == background_index else class_word_pattern(words)
                         for k, words in enumerate(self.class_words)]
        self.prior_weight, self.name_threshold = float(prior_weight), float(name_threshold)
        self.clip_temperature, self.negative_weight = float(clip_temperature), float(negative_weight)

    def _add_words(self, extra_words: Union[str, Dict[str, Sequence[str]], None]) -> None:
        """Add ``extra_words`` to the classes they name (see the class docstring)."""
        if isinstance(extra_words, str):
            if extra_words not in DESCRIPTION_WORDS:
                raise ValueError(f'DescriptionTargets: extra_words={extra_words!r} is not a vocabulary of '
                                 f'DESCRIPTION_WORDS ({sorted(DESCRIPTION_WORDS)}); give one or a dict.')
            extra_words = DESCRIPTION_WORDS[extra_words]
        for name, words in (extra_words or {}).items():
            keys = {name.lower(), readable_name(name).lower()}
            owners = [k for k, cls in enumerate(self.class_words) if keys & {w.lower() for w in cls}]
            if not owners:
                raise ValueError(f'DescriptionTargets: extra_words names the class {name!r}, which is not '
                                 'in the class list; fix the name or the class list.')
            self.class_words[owners[0]] += [name] + list(words)

    def word_matches(self, descriptions: Sequence[str]) -> Tensor:
        """(N, K) float: 1 where description ``n`` contains a word of class ``k`` (0 for background)."""
        matches = torch.zeros(len(descriptions), self.num_classes)
        for n, text in enumerate(descriptions):
            text = text.lower()
            for k, pattern in enumerate(self.patterns):
                if pattern is not None and pattern.search(text):
                    matches[n, k] = 1.0
        return matches

    def _foreground(self) -> Tensor:
        keep = torch.ones(self.num_classes, dtype=torch.bool)
        if self.background_index is not None:
            keep[self.background_index] = False
        return keep

    def clip_evidence(self, description_embeds: Tensor, class_embeds: Tensor) -> Tensor:
        """(N, K) softmax over the foreground classes of the cosine similarities / temperature
        (0 in the background column).

        Args:
            description_embeds (Tensor): (N, D) description embeddings.
            class_embeds (Tensor): (K, D) class prompt embeddings.
        """
        keep = self._foreground().to(class_embeds.device)
        cosine = nn.functional.normalize(description_embeds.float(), dim=-1) @ \
            nn.functional.normalize(class_embeds.float(), dim=-1).t()  # (N, K)
        probs = torch.zeros_like(cosine)
        probs[:, keep] = (cosine[:, keep] / self.clip_temperature).softmax(dim=-1)
        return probs

    def evidence(self, descriptions: Sequence[str], description_embeds: Optional[Tensor] = None,
                 class_embeds: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Per-description evidence and text-tower softmax, both (N, K) float32 on the CPU.

        Without embeddings the evidence is the word matches alone (and the softmax is 0).
        """
        matches = self.word_matches(descriptions)
        if description_embeds is None or class_embeds is None:
            return matches, torch.zeros_like(matches)
        probs = self.clip_evidence(description_embeds.detach(), class_embeds.detach()).cpu()
        return self.prior_weight * matches + (1.0 - self.prior_weight) * probs, probs

    def forward(self, descriptions: Sequence[Sequence[str]], description_embeds: Optional[Tensor] = None,
                class_embeds: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Targets and confidences of a batch of images.

        Args:
            descriptions (Sequence[Sequence[str]]): Per image, its descriptions (>= 1 each).
            description_embeds (Tensor, optional): (sum_i N_i, D) the embeddings of every
                description, image by image in order. None: word matches alone.
            class_embeds (Tensor, optional): (K, D) class prompt embeddings.

        Returns:
            tuple[Tensor, Tensor]: ``targets`` (B, K) in [0, 1] (0 for every class not named) and
            ``confidence`` (B, K) in [0, 1], float32 on the device of ``class_embeds`` (CPU
            without).

        Raises:
            ValueError: an image without descriptions, or embeddings that do not match them.
        """
        counts = [len(d) for d in descriptions]
        if not counts or min(counts) < 1:
            raise ValueError('DescriptionTargets: every image needs at least one description.')
        flat = [text for per_image in descriptions for text in per_image]
        if description_embeds is not None and description_embeds.shape[0] != len(flat):
            raise ValueError(f'DescriptionTargets: {description_embeds.shape[0]} description embeddings for '
                             f'{len(flat)} descriptions.')
        evidence, probs = self.evidence(flat, description_embeds, class_embeds)
        per_image = torch.split(evidence, counts)
        best = torch.stack([e.max(dim=0).values for e in per_image])  # (B, K)
        hint = torch.stack([p.max(dim=0).values for p in torch.split(probs, counts)])  # (B, K)
        named = best >= self.name_threshold
        targets = torch.where(named, best, torch.zeros_like(best))
        confidence = torch.where(named, torch.ones_like(best), self.negative_weight * (1.0 - hint))
        if self.background_index is not None:
            targets[:, self.background_index] = 1.0
            confidence[:, self.background_index] = 1.0
        device = class_embeds.device if class_embeds is not None else 'cpu'
        return targets.to(device), confidence.to(device)
