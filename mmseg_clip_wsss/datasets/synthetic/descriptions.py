"""Descriptions of generated scenes as people write them: partial, vague, in their own words.

The captions of :mod:`.captions` name *every* object exactly (they train the demo CLIP, which needs
captions that are true of their image). People describe pictures differently, and this module writes
such descriptions for the unlabelled pool (:mod:`.described_pool`):

* several descriptions per image (COCO has five), each written on its own;
* each names only *some* of the objects (:attr:`DescriptionStyle.mention`);
* a class word or one of its synonyms (``'circle'`` for a disc), sometimes with attributes (size,
  colour, texture) and counts (``'two circles'``);
* or a *vague* word instead of the class (:attr:`DescriptionStyle.vagueness`, the knob): a generic
  one (``'a shape'``, ``'something'``) or a hint at the shape (``'something round'`` for a disc, a
  ring or a crescent; ``'something pointy'`` for a star or a triangle) that several classes share;
* now and then a description that names no object at all (``'a busy picture.'``).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from .captions import GROUND_PHRASES, NUMBER_WORDS, _article, _describe, _join, _pick, _plural, CaptionStyle
from .world import SceneObject

__all__ = ['DescriptionStyle', 'describe_scene', 'VAGUE_WORDS', 'SHAPE_HINTS', 'EMPTY_DESCRIPTIONS']

#: Vague words that fit any object (singular, plural).
VAGUE_WORDS = (('shape', 'shapes'), ('object', 'objects'), ('thing', 'things'), ('figure', 'figures'))
#: Vague words that hint at a shape (several classes share each); keyed by shape, not class.
SHAPE_HINTS: Dict[str, Sequence[str]] = {
    'disc': ('something round', 'a round shape', 'a ball'),
    'ring': ('something round', 'a round shape', 'a loop'),
    'crescent': ('something round', 'something curved'),
    'star': ('something pointy', 'a spiky shape'),
    'triangle': ('something pointy', 'a pointed shape'),
    'square': ('something with corners', 'a box', 'a block'),
    'hexagon': ('something with corners', 'a many-sided shape'),
    'cross': ('a sign', 'something with arms'),
    'heart': ('something curved', 'a rounded shape'),
    'arrow': ('something pointy', 'a pointer'),
    'diamond': ('something pointy', 'something with corners'),
    'bar': ('a block', 'a long shape'),
}
#: Descriptions that name no object.
EMPTY_DESCRIPTIONS = ('a busy picture.', 'some shapes on the ground.', 'a cluttered image.',
                      'a few things on a noisy background.', 'lines and blobs everywhere.',
                      'hard to tell what this is.')
TEMPLATES = ('{}.', 'a picture of {}.', 'there is {} here.', 'i can see {}.', 'a busy image with {}.',
             'looks like {}.', '{} in the picture.', 'an image showing {}.')


@dataclass
class DescriptionStyle:
    """How people in the generated world describe a picture (probabilities, and a count).

    Args:
        vagueness (float): The knob: the chance that an object (or a group of one class) is named by
            a vague word (:data:`VAGUE_WORDS`, :data:`SHAPE_HINTS`) instead of its class word or a
            synonym. 0: every mention names the class; 1: no description names a class.
            Defaults to 0.3.
        hint (float): The chance that a vague word hints at the shape (``'something round'``)
            rather than being generic (``'a shape'``). Defaults to 0.5.
        mention (float): The chance that each class present is mentioned in a description (at
            least one is). Defaults to 0.6.
        empty (float): The chance that a description names no object at all. Defaults to 0.05.
        per_image (int): Descriptions per image. Defaults to 5.
        words (CaptionStyle): Attribute, synonym and count words of a mention that names the
            class (see :class:`~.captions.CaptionStyle`).
    """
    vagueness: float = 0.3
    hint: float = 0.5
    mention: float = 0.6
    empty: float = 0.05
    per_image: int = 5
    words: Optional[CaptionStyle] = None

    def __post_init__(self):
        for name in ('vagueness', 'hint', 'mention', 'empty'):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'DescriptionStyle: {name} is a probability in [0, 1], got {value}.')
        if self.per_image < 1:
            raise ValueError(f'DescriptionStyle: per_image must be >= 1, got {self.per_image}.')
        if self.words is None:
            self.words = CaptionStyle(colour=0.15, texture=0.3, size=0.3, synonym=0.4, count=0.7)


def _vague(rng: np.random.Generator, group: List[SceneObject], style: DescriptionStyle) -> str:
    """A vague phrase for a group of objects of one class."""
    hints = SHAPE_HINTS.get(group[0].shape, ())
    if len(group) >= 2 and len(group) in NUMBER_WORDS:
        return f'{NUMBER_WORDS[len(group)]} {_pick(rng, VAGUE_WORDS)[1]}'
    if hints and rng.random() < style.hint:
        return _pick(rng, hints)
    return _article(_pick(rng, VAGUE_WORDS)[0])


def _named(rng: np.random.Generator, group: List[SceneObject], style: DescriptionStyle) -> List[str]:
    """Phrases that name a group of objects of one class (a count, or one phrase per object)."""
    if len(group) >= 2 and len(group) in NUMBER_WORDS and rng.random() < style.words.count:
        noun = _pick(rng, group[0].cls.words) if rng.random() < style.words.synonym else group[0].cls.name
        return [f'{NUMBER_WORDS[len(group)]} {_plural(noun)}']
    return [_describe(rng, obj, style.words)[0] for obj in group]


def describe_scene(rng: np.random.Generator, objects: Sequence[SceneObject], style: DescriptionStyle) -> str:
    """One description of a scene (see the module docstring).

    Args:
        rng (np.random.Generator): Random generator.
        objects (Sequence[SceneObject]): The scene's objects.
        style (DescriptionStyle): The describer.

    Returns:
        str: The description, lower case, ending with a full stop.
    """
    if not objects or rng.random() < style.empty:
        return _pick(rng, EMPTY_DESCRIPTIONS)
    groups: Dict[str, List[SceneObject]] = {}
    for obj in objects:
        groups.setdefault(obj.cls.name, []).append(obj)
    names = list(groups)
    rng.shuffle(names)
    mentioned = [n for n in names if rng.random() < style.mention] or names[:1]
    parts = []
    for name in mentioned:
        if rng.random() < style.vagueness:
            parts.append(_vague(rng, groups[name], style))
        else:
            parts.extend(_named(rng, groups[name], style))
    text = _pick(rng, TEMPLATES).format(_join(parts))
    if rng.random() < style.words.ground_phrase:
        text = f'{text[:-1]} {_pick(rng, GROUND_PHRASES)}.'
    return text
