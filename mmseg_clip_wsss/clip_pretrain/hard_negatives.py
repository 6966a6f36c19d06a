"""Hard negative captions: each caption with its class words swapped for other classes.

A batch of 128 random pairs rarely holds two captions that differ only in the class named, so the
contrastive loss can be met by texture, colour or count words alone; the demo world gives several
classes the same texture, and only the shape tells them apart. NegCLIP (Yuksekgonul et al., "When
and Why Vision-Language Models Behave like Bags-of-Words", ICLR 2023) adds, for every image, a
caption changed in one respect as an extra negative of the image-to-text direction. Here the change
is the class: every class a caption names is replaced by another class (the same one wherever it
occurs, singular or plural, name or synonym), the other words kept -- "a close-up of a striped
disc." becomes "a close-up of a striped heart.".

The swapped caption's claims (:class:`~mmseg_clip_wsss.datasets.synthetic.captions.Claims`) are the
original's with the classes mapped, so a negative that happens to be true of another image of the
batch counts as that image's positive (``truth_matrix(..., caption_class_set=...)``).
"""
import re
from typing import Dict, List, Sequence, Tuple

import numpy as np

from mmseg_clip_wsss.datasets.synthetic.captions import _plural  # the caption writer's plural

__all__ = ['class_swap_negatives', 'CAPTION_CLAIM_FIELDS']

#: The claim fields that describe the caption (the others describe the image).
CAPTION_CLAIM_FIELDS = ('class_set', 'count_claims', 'descriptors')


def _class_forms(class_words: Sequence[Sequence[str]]) -> Tuple[re.Pattern, Dict[str, Tuple[int, bool]]]:
    """One pattern matching every class word or its plural as a whole word (longer forms first:
    'crescent moon' before 'crescent'), and each form's (class, plural)."""
    forms = {}
    for k, words in enumerate(class_words):
        for w in words:
            forms.setdefault(_plural(w), (k, True))
            forms.setdefault(w, (k, False))
    ordered = sorted(forms, key=len, reverse=True)
    return re.compile(r'\b(' + '|'.join(re.escape(f) for f in ordered) + r')\b'), forms


def _fix_articles(text: str) -> str:
    """'a' / 'an' as the next word needs it (a swap may change the word after the article), the
    article's capital kept."""
    def article(m: re.Match) -> str:
        word = 'an' if m.group(2).lower() in 'aeiou' else 'a'
        return (word.capitalize() if m.group(1)[0] == 'A' else word) + ' ' + m.group(2)

    return re.sub(r'\b(a|an|A|An) (\w)', article, text)


def class_swap_negatives(captions: Sequence[str], claims: Dict[str, np.ndarray],
                         class_words: Sequence[Sequence[str]], seed: int = 0
                         ) -> Tuple[List[str], Dict[str, np.ndarray], np.ndarray]:
    """One class-swapped negative per caption.

    Args:
        captions (Sequence[str]): N captions.
        claims (dict[str, np.ndarray]): Their claims, stacked (``class_set`` (N,) bitmasks over the
            classes of ``class_words``, ``count_claims`` (N, C), ``descriptors`` (N, D, 2)).
        class_words (Sequence[Sequence[str]]): Per class of the claims' vocabulary, its name (the
            word written into a negative) and synonyms.
        seed (int): Seed of the replacement classes. Defaults to 0.

    Returns:
        tuple: the N negative captions; their caption claims (``class_set``, ``count_claims``,
        ``descriptors``, the classes mapped); (N,) bool ``valid``: False where a caption names no
        class (a ground caption), names more classes than are left to swap in, or where a named
        class's word was not found in the text (that caption's negative is its own text).

    Raises:
        ValueError: the claims lack a caption field or name a class outside ``class_words``.
    """
    missing = [f for f in CAPTION_CLAIM_FIELDS if f not in claims]
    if missing:
        raise ValueError(f'class_swap_negatives: the claims lack {missing}; hard negatives need the '
                         'claims of a generated corpus (tools/pretrain_clip.py draws them).')
    num_classes = len(class_words)
    pattern, forms = _class_forms(class_words)
    rng = np.random.default_rng(seed)
    out = {f: claims[f].copy() for f in CAPTION_CLAIM_FIELDS}
    negatives, valid = [], np.zeros(len(captions), dtype=bool)
    for i, caption in enumerate(captions):
        bits = int(claims['class_set'][i])
        if bits >> num_classes:
            raise ValueError(f'class_swap_negatives: caption {i} ({caption!r}) names a class beyond the '
                             f'{num_classes} of class_words.')
        named = [k for k in range(num_classes) if bits >> k & 1]
        others = [k for k in range(num_classes) if not bits >> k & 1]
        if not named or len(others) < len(named):
            negatives.append(caption)
            continue
        mapping = dict(zip(named, rng.choice(others, size=len(named), replace=False).tolist()))
        swapped = set()

        def swap(match: re.Match) -> str:
            k, plural = forms[match.group(1)]
            if k not in mapping:
                return match.group(1)
            swapped.add(k)
            name = class_words[mapping[k]][0]
            return _plural(name) if plural else name

        text = pattern.sub(swap, caption)
        if swapped != set(named):
            negatives.append(caption)
            continue
        negatives.append(_fix_articles(text))
        valid[i] = True
        out['class_set'][i] = sum(1 << mapping[k] for k in named)
        counts = claims['count_claims'][i]
        out['count_claims'][i] = 0
        for k, new in mapping.items():
            out['count_claims'][i, new] = counts[k]
        desc = out['descriptors'][i]
        desc[:, 0] = [mapping.get(int(k), int(k)) for k in desc[:, 0]]
    return negatives, out, valid
