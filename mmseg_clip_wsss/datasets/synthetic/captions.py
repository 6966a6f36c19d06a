"""Captions of generated scenes, and what each caption claims (to tell which images it is true of).

A caption names a set of objects the way a person would: a class word (the name or a synonym),
optionally colour, texture and size words, counts ("two discs"), a position in the picture, or a
relation between two objects ("a disc to the left of a star"), in one of several sentence templates.
Crops of the ground get captions from the clutter vocabulary (:data:`GROUND_WORDS`: lines, blobs,
plain or noisy ground), which background prompts can use.

Beside the text, :func:`caption_objects` returns the caption's *claims* as small integer arrays
(:class:`Claims`): which classes it names (exhaustively), the counts it states, and the attributes it
gives each object. :func:`truth_matrix` turns the claims of a batch into ``T[i, j] = 1`` when caption
``j`` is true of image ``i`` -- the targets of :class:`MultiPositiveClipLoss`. Positions and relations
are not checked (two captions that differ only there count as describing the same images).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from torch import Tensor

from .world import COLOUR_NAMES, TEXTURES, SceneObject

__all__ = ['GROUND_WORDS', 'CaptionStyle', 'Claims', 'caption_objects', 'caption_ground', 'truth_matrix',
           'attribute_bits', 'MAX_OBJECTS']

#: Words for the ground and its clutter (never an object class).
GROUND_WORDS = ('ground', 'background', 'lines', 'blobs', 'noise', 'stripes on the ground')
TEXTURE_WORDS = {'stripes': ('striped', ), 'checks': ('checkered', 'checked'),
                 'dots': ('dotted', 'spotted'), 'solid': ('plain', 'solid')}
SIZE_WORDS = {'small': ('small', 'little', 'tiny'), 'large': ('large', 'big')}
NUMBER_WORDS = {2: 'two', 3: 'three', 4: 'four', 5: 'five', 6: 'six'}
TEMPLATES = ('{}.', 'a photo of {}.', 'an image of {}.', 'there is {} in the picture.',
             'a picture showing {}.', '{} on the ground.', 'a drawing of {}.', 'a close-up of {}.')
GROUND_CAPTIONS = ('a patch of ground.', 'mottled ground.', 'the background.', 'plain ground.',
                   'a patch of noisy ground with lines.', 'ground with blobs and lines.',
                   'an empty background.', 'noisy ground.', 'lines on the ground.')
GROUND_PHRASES = ('on mottled ground', 'on a noisy background', 'among lines and blobs',
                  'on a cluttered background', 'with lines behind')
POSITIONS = (('in the top left corner', 'at the top', 'in the top right corner'),
             ('on the left', 'in the middle', 'on the right'),
             ('in the bottom left corner', 'at the bottom', 'in the bottom right corner'))
#: At most this many objects / descriptors per caption are kept in the claims.
MAX_OBJECTS = 6
# attribute bits: colours, then textures, then the two sizes
_TEXTURE_BIT = len(COLOUR_NAMES)
_SIZE_BIT = {'small': _TEXTURE_BIT + len(TEXTURES), 'large': _TEXTURE_BIT + len(TEXTURES) + 1}
SMALL, LARGE = 0.15, 0.21  # radius (fraction of the image side) below / above which sizes are named


@dataclass
class CaptionStyle:
    """How often each kind of word goes into a caption (probabilities).

    Colour words are rare on purpose: every colour is shared by all classes, and frequent colour
    words let the contrastive objective be met by matching colours instead of classes.
    """
    colour: float = 0.1
    texture: float = 0.35
    size: float = 0.25
    synonym: float = 0.3
    count: float = 0.8
    position: float = 0.2
    relation: float = 0.3
    ground_phrase: float = 0.3


@dataclass
class Claims:
    """What a caption claims about its image, as arrays (``C`` classes of the vocabulary).

    ``class_set``: bitmask of the classes named (the caption names every visible object);
    ``counts`` (C,): objects of each class in the image; ``objects`` (MAX_OBJECTS, 2): (class,
    attribute bits) of each object; ``count_claims`` (C,): counts the caption states (0: none);
    ``descriptors`` (MAX_OBJECTS, 2): (class, attribute bits the caption requires); -1 pads.
    """
    class_set: int
    counts: np.ndarray
    objects: np.ndarray
    count_claims: np.ndarray
    descriptors: np.ndarray


def attribute_bits(obj: SceneObject) -> int:
    """The attribute bits an object has: its colour, texture and (if named) size."""
    bits = (1 << obj.colour) | (1 << (_TEXTURE_BIT + TEXTURES.index(obj.texture)))
    size = _size_of(obj)
    return bits | (1 << _SIZE_BIT[size]) if size else bits


def _size_of(obj: SceneObject):
    return 'small' if obj.radius < SMALL else 'large' if obj.radius > LARGE else None


def _article(text: str) -> str:
    return f"{'an' if text[0] in 'aeiou' else 'a'} {text}"


def _plural(word: str) -> str:
    return word + 'es' if word.endswith(('s', 'sh', 'ch', 'x')) else word + 's'


def _join(items: List[str]) -> str:
    return items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]


def _pick(rng: np.random.Generator, words: Sequence[str]) -> str:
    return words[rng.integers(len(words))]


def _describe(rng: np.random.Generator, obj: SceneObject, style: CaptionStyle) -> Tuple[str, int]:
    """Noun phrase of one object and the attribute bits it claims."""
    words, claimed = [], 0
    size = _size_of(obj)
    if size and rng.random() < style.size:
        words.append(_pick(rng, SIZE_WORDS[size]))
        claimed |= 1 << _SIZE_BIT[size]
    if rng.random() < style.colour:
        words.append(COLOUR_NAMES[obj.colour])
        claimed |= 1 << obj.colour
    if rng.random() < style.texture:
        words.append(_pick(rng, TEXTURE_WORDS[obj.texture]))
        claimed |= 1 << (_TEXTURE_BIT + TEXTURES.index(obj.texture))
    noun = _pick(rng, obj.cls.words) if rng.random() < style.synonym else obj.cls.name
    return _article(' '.join(words + [noun])), claimed


def _position(obj: SceneObject, image_size: int) -> str:
    col, row = (min(2, int(3 * c / image_size)) for c in obj.centre)
    return POSITIONS[row][col]


def _relation(a: SceneObject, b: SceneObject) -> str:
    dx, dy = b.centre[0] - a.centre[0], b.centre[1] - a.centre[1]
    if abs(dx) > abs(dy):
        return 'to the left of' if dx > 0 else 'to the right of'
    return 'above' if dy > 0 else 'below'


def caption_objects(rng: np.random.Generator, objects: Sequence[SceneObject], class_index: Dict[str, int],
                    style: CaptionStyle, image_size: int, whole_image: bool) -> Tuple[str, Claims]:
    """A caption that names every object of ``objects``, and its claims.

    Args:
        rng (np.random.Generator): Random generator.
        objects (Sequence[SceneObject]): The visible objects (at least one).
        class_index (dict): Class name -> index in the vocabulary (C classes).
        style (CaptionStyle): Word probabilities.
        image_size (int): Side of the scene the objects' centres refer to.
        whole_image (bool): The caption describes a whole scene (positions, relations and ground
            phrases are used), not a crop.

    Returns:
        tuple[str, Claims]
    """
    by_class: Dict[str, List[SceneObject]] = {}
    for obj in objects:
        by_class.setdefault(obj.cls.name, []).append(obj)
    parts, descriptors, count_claims = [], [], {}
    names = list(by_class)
    rng.shuffle(names)
    for name in names:
        group = by_class[name]
        if len(group) >= 2 and len(group) in NUMBER_WORDS and rng.random() < style.count:
            parts.append(f'{NUMBER_WORDS[len(group)]} {_plural(name)}')
            count_claims[class_index[name]] = len(group)
            descriptors.append((class_index[name], 0))
            continue
        for obj in group:
            phrase, claimed = _describe(rng, obj, style)
            if whole_image and len(objects) == 1 and rng.random() < style.position:
                phrase = f'{phrase} {_position(obj, image_size)}'
            parts.append(phrase)
            descriptors.append((class_index[name], claimed))
    body = _join(parts)
    if whole_image and len(objects) == 2 and len(by_class) == 2 and rng.random() < style.relation:
        (phrase_a, bits_a), (phrase_b, bits_b) = (_describe(rng, o, style) for o in objects)
        body = f'{phrase_a} {_relation(*objects)} {phrase_b}'
        descriptors = [(class_index[objects[0].cls.name], bits_a),
                       (class_index[objects[1].cls.name], bits_b)]
        count_claims = {}
    text = _pick(rng, TEMPLATES).format(body)
    if whole_image and rng.random() < style.ground_phrase:
        text = f'{text[:-1]} {_pick(rng, GROUND_PHRASES)}.'
    return text, _claims(objects, class_index, count_claims, descriptors)


def caption_ground(rng: np.random.Generator, num_classes: int) -> Tuple[str, Claims]:
    """A caption of a crop that shows no object, and its (empty) claims."""
    return _pick(rng, GROUND_CAPTIONS), _claims([], {}, {}, [], num_classes)


def _claims(objects, class_index, count_claims, descriptors, num_classes=None) -> Claims:
    num_classes = len(class_index) if num_classes is None else num_classes
    if num_classes > 63:
        raise ValueError(f'captions: {num_classes} classes do not fit the 63-bit class sets.')
    counts = np.zeros(num_classes, np.int8)
    obj_arr = np.full((MAX_OBJECTS, 2), -1, np.int64)
    class_set = 0
    for k, obj in enumerate(objects):
        c = class_index[obj.cls.name]
        class_set |= 1 << c
        counts[c] += 1
        if k < MAX_OBJECTS:
            obj_arr[k] = (c, attribute_bits(obj))
    claims_arr = np.zeros(num_classes, np.int8)
    for c, n in count_claims.items():
        claims_arr[c] = n
    desc = np.full((MAX_OBJECTS, 2), -1, np.int64)
    for k, (c, bits) in enumerate(descriptors[:MAX_OBJECTS]):
        desc[k] = (c, bits)
    return Claims(class_set, counts, obj_arr, claims_arr, desc)


def truth_matrix(class_set: Tensor, counts: Tensor, objects: Tensor, count_claims: Tensor,
                 descriptors: Tensor, caption_class_set: Optional[Tensor] = None) -> Tensor:
    """``T[i, j]``: caption ``j`` is true of image ``i`` (the stacked :class:`Claims` of a batch).

    True when both name the same classes, every count caption ``j`` states is the count in image
    ``i``, and every object caption ``j`` describes has a match of the same class in image ``i``
    with all the attributes it claims.

    Args:
        class_set (Tensor): (N,) int64 bitmasks (the classes in each image, which its caption names).
        counts (Tensor): (N, C) objects per class.
        objects (Tensor): (N, O, 2) (class, attribute bits), -1 padded.
        count_claims (Tensor): (M, C) stated counts (0: none).
        descriptors (Tensor): (M, D, 2) (class, claimed bits), -1 padded.
        caption_class_set (Tensor, optional): (M,) the classes each caption names, for captions
            other than the images' own (:mod:`mmseg_clip_wsss.clip_pretrain.hard_negatives`); None:
            ``class_set`` (M = N).

    Returns:
        Tensor: (N, M) bool; without ``caption_class_set`` the diagonal is True for captions of
        their own images.
    """
    caption_class_set = class_set if caption_class_set is None else caption_class_set
    same_classes = class_set[:, None] == caption_class_set[None, :]  # (Ni, Nj)
    stated = count_claims[None, :, :]  # (1, Nj, C)
    counts_ok = ((stated == 0) | (counts[:, None, :] == stated)).all(dim=2)  # (Ni, Nj)
    obj_cls, obj_bits = objects[..., 0], objects[..., 1]  # (Ni, O)
    desc_cls, desc_bits = descriptors[..., 0], descriptors[..., 1]  # (Nj, D)
    match = (desc_cls[None, :, :, None] == obj_cls[:, None, None, :]) & (
        (desc_bits[None, :, :, None] & obj_bits[:, None, None, :]) == desc_bits[None, :, :, None])
    described = match.any(dim=3) | (desc_cls[None] < 0)  # (Ni, Nj, D)
    return same_classes & counts_ok & described.all(dim=2)
