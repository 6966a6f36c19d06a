"""The generated demo world as a set of parameters, and the scenes drawn from it.

A world is a list of object classes -- each a shape painted with a surface texture in a colour --
scattered over cluttered ground (smooth colour noise, faint patterns, blobs and lines in background
*and* object colours). :class:`WorldConfig` names everything that decides what a class looks like and
how images are composed: image size, which cue decides the class (``shape``: every object gets a
random texture; ``shape+texture``: each class has its own texture, possibly shared with others;
``texture``: every object gets a random shape), which classes co-occur, and classes that only the
captioned CLIP corpus shows (``unseen``, for open-vocabulary evaluation). :func:`draw_scene` draws one
scene and returns the image, the per-pixel owner map and what is where (for masks, boxes and
captions).
"""
import dataclasses
import json
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DatasetError, MissingDatasetFileError

__all__ = ['SHAPES', 'TEXTURES', 'OBJECT_COLOURS', 'COLOUR_NAMES', 'ObjectClass', 'WorldConfig', 'read_demo_info',
           'SceneObject', 'Scene', 'draw_scene', 'world_preset', 'WORLD_PRESETS', 'load_world',
           'resolve_world']

#: Object colours (RGB), shared by all classes, and their names in captions.
OBJECT_COLOURS = np.array([[215, 45, 40], [240, 145, 35], [230, 210, 55], [60, 175, 75],
                           [45, 185, 200], [55, 90, 215], [165, 75, 195], [230, 230, 225]],
                          dtype=np.float32)
COLOUR_NAMES = ('red', 'orange', 'yellow', 'green', 'teal', 'blue', 'purple', 'white')
#: Muted background colours (RGB).
BACKGROUND_COLOURS = np.array([[110, 100, 85], [80, 110, 70], [95, 95, 112], [135, 122, 100],
                               [70, 86, 96], [120, 104, 120], [60, 72, 60], [142, 136, 126]],
                              dtype=np.float32)


# --------------------------------------------------------------------------------------------
# shapes and textures, in object coordinates (u, v) (pixels, rotated), vectorised over the grid
# --------------------------------------------------------------------------------------------
def _polygon(u, v, radius, sides, apothem):
    angles = -np.pi / 2 + 2 * np.pi * np.arange(sides) / sides
    inside = np.ones(u.shape, dtype=bool)
    for a in angles:  # one half-plane per side
        inside &= u * np.cos(a) + v * np.sin(a) <= apothem * radius
    return inside


def _star(u, v, radius):
    phi = np.arctan2(v, u)
    return np.hypot(u, v) <= radius * (0.4 + 0.6 * np.abs(np.cos(2.5 * phi))**3)


def _cross(u, v, radius):
    w = 0.3 * radius
    return ((np.abs(u) <= w) & (np.abs(v) <= radius)) | ((np.abs(v) <= w) & (np.abs(u) <= radius))


def _heart(u, v, radius):
    x, y = u / radius, -v / radius + 0.15
    return (x * x + y * y - 0.6)**3 - 1.2 * x * x * y**3 <= 0


def _arrow(u, v, radius):
    shaft = (np.abs(v) <= 0.22 * radius) & (u >= -radius) & (u <= 0.2 * radius)
    head = (u >= 0.2 * radius) & (u <= radius) & (np.abs(v) <= 0.9375 * (radius - u))
    return shaft | head


#: Shape masks: ``name -> f(u, v, radius) -> bool mask``.
SHAPES = {
    'disc': lambda u, v, r: np.hypot(u, v) <= r,
    'ring': lambda u, v, r: (np.hypot(u, v) <= r) & (np.hypot(u, v) >= 0.55 * r),
    'square': lambda u, v, r: np.maximum(np.abs(u), np.abs(v)) <= 0.78 * r,
    'triangle': lambda u, v, r: _polygon(u, v, r, 3, 0.5),
    'hexagon': lambda u, v, r: _polygon(u, v, r, 6, 0.87),
    'star': _star,
    'cross': _cross,
    'crescent': lambda u, v, r: (np.hypot(u, v) <= r) & (np.hypot(u - 0.45 * r, v) > 0.8 * r),
    'heart': _heart,
    'arrow': _arrow,
    'diamond': lambda u, v, r: np.abs(u) / r + np.abs(v) / (0.6 * r) <= 1,
    'bar': lambda u, v, r: (np.abs(u) <= r) & (np.abs(v) <= 0.3 * r),
}


def _texture_tone(texture: str, u, v, period: float, radius: float) -> np.ndarray:
    """Mix weight of the main colour (1) vs the second tone (0) of a texture, (H, W) float32."""
    if texture == 'stripes':
        return (np.mod(u / period, 1.0) < 0.5).astype(np.float32)
    if texture == 'checks':
        return ((np.floor(u / period) + np.floor(v / period)) % 2 == 0).astype(np.float32)
    if texture == 'dots':
        du = np.mod(u / period, 1.0) - 0.5
        dv = np.mod(v / period, 1.0) - 0.5
        return (du * du + dv * dv > 0.32**2).astype(np.float32)
    if texture == 'solid':  # shaded: brighter in the middle
        return np.clip(0.78 + 0.22 * (1 - np.hypot(u, v) / radius), 0, 1).astype(np.float32)
    raise ValueError(f'no texture {texture!r}; known: {TEXTURES}')


#: Surface textures (two tones of the object's colour).
TEXTURES = ('stripes', 'checks', 'dots', 'solid')


@dataclass(frozen=True)
class ObjectClass:
    """One class of the world.

    Args:
        name (str): Class name (dataset spelling; also the caption word).
        shape (str, optional): Key of :data:`SHAPES`; None: every object gets a random shape of the
            world's shape pool (the texture decides the class).
        texture (str, optional): One of :data:`TEXTURES`; None: every object gets a random texture
            (the shape decides the class).
        synonyms (tuple[str]): Other words for the class in captions and prompts.
    """
    name: str
    shape: Optional[str]
    texture: Optional[str]
    synonyms: Tuple[str, ...] = ()

    def __post_init__(self):
        if self.shape is not None and self.shape not in SHAPES:
            raise ValueError(f'ObjectClass {self.name!r}: unknown shape {self.shape!r}; known: '
                             f'{sorted(SHAPES)}')
        if self.texture is not None and self.texture not in TEXTURES:
            raise ValueError(f'ObjectClass {self.name!r}: unknown texture {self.texture!r}; known: '
                             f'{TEXTURES}')
        if self.shape is None and self.texture is None:
            raise ValueError(f'ObjectClass {self.name!r}: give a shape, a texture or both (one of '
                             'them has to decide the class).')

    @property
    def words(self) -> Tuple[str, ...]:
        """The class name and its synonyms."""
        return (self.name, ) + tuple(self.synonyms)


@dataclass
class WorldConfig:
    """Everything that decides what the images of a generated world look like.

    Args:
        classes (tuple[ObjectClass]): The labelled classes, in dataset order after ``'background'``.
        unseen (tuple[ObjectClass]): Classes that never appear in a WSSS label file; the captioned
            CLIP corpus and the open-vocabulary split show them. Defaults to ().
        image_size (int): Image side in pixels. Defaults to 128.
        cooccurring (tuple[tuple[str, str]]): Pairs of class names that often appear together.
        cooccur_prob (float): Chance that an image of 2+ objects is built around such a pair.
        num_objects_probs (tuple[float]): Chance of 1, 2, 3, 4 objects per image.
        radius_range (tuple[float, float]): Object radius as a fraction of the image side.
        shape_pool (tuple[str]): Shapes drawn for classes without a shape (texture-decided worlds).
        texture_period (tuple[float, float]): Texture period in pixels at ``image_size`` 128 (scaled
            with the image side).
    """
    classes: Tuple[ObjectClass, ...]
    unseen: Tuple[ObjectClass, ...] = ()
    image_size: int = 128
    cooccurring: Tuple[Tuple[str, str], ...] = ()
    cooccur_prob: float = 0.5
    num_objects_probs: Tuple[float, ...] = (0.3, 0.35, 0.2, 0.15)
    radius_range: Tuple[float, float] = (0.10, 0.26)
    shape_pool: Tuple[str, ...] = ('disc', 'square', 'triangle', 'star', 'cross', 'hexagon')
    texture_period: Tuple[float, float] = (3.5, 6.0)

    def __post_init__(self):
        self.classes = tuple(self.classes)
        self.unseen = tuple(self.unseen)
        names = [c.name for c in self.classes + self.unseen]
        if len(set(names)) != len(names) or 'background' in names:
            raise ValueError(f'WorldConfig: class names must be unique and not "background", got {names}')
        if self.image_size < 32:
            raise ValueError(f'WorldConfig: image_size {self.image_size} is too small for the shapes and '
                             'textures; use >= 32')
        for a, b in self.cooccurring:
            if a not in names[:len(self.classes)] or b not in names[:len(self.classes)]:
                raise ValueError(f'WorldConfig: co-occurring pair ({a}, {b}) names a class that is not '
                                 'labelled')

    @property
    def class_names(self) -> Tuple[str, ...]:
        """``('background', <labelled classes>...)``: the dataset's class list."""
        return ('background', ) + tuple(c.name for c in self.classes)

    def to_dict(self) -> dict:
        """JSON-ready description (written into ``demo_info.json``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> 'WorldConfig':
        d = dict(d)
        d['classes'] = tuple(ObjectClass(**{**c, 'synonyms': tuple(c.get('synonyms', ()))})
                             for c in d['classes'])
        d['unseen'] = tuple(ObjectClass(**{**c, 'synonyms': tuple(c.get('synonyms', ()))})
                            for c in d.get('unseen', ()))
        for key in ('cooccurring', ):
            d[key] = tuple(tuple(p) for p in d.get(key, ()))
        for key in ('num_objects_probs', 'radius_range', 'shape_pool', 'texture_period'):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


_DEMO_CLASSES = (
    ObjectClass('disc', 'disc', 'stripes', ('circle', )),
    ObjectClass('ring', 'ring', 'checks', ('hoop', )),
    ObjectClass('square', 'square', 'dots'),
    ObjectClass('triangle', 'triangle', 'stripes'),
    ObjectClass('star', 'star', 'solid'),
    ObjectClass('cross', 'cross', 'checks', ('plus sign', )),
    ObjectClass('hexagon', 'hexagon', 'solid'),
    ObjectClass('crescent', 'crescent', 'dots', ('crescent moon', )),
)
_DEMO_UNSEEN = (
    ObjectClass('heart', 'heart', 'stripes'),
    ObjectClass('arrow', 'arrow', 'dots'),
    ObjectClass('diamond', 'diamond', 'checks', ('rhombus', )),
    ObjectClass('bar', 'bar', 'solid', ('rectangle', )),
)
_DEMO_COOCCURRING = (('disc', 'ring'), ('star', 'cross'), ('square', 'triangle'), ('hexagon', 'crescent'))


def _retextured(classes, textures):
    return tuple(dataclasses.replace(c, texture=t) for c, t in zip(classes, textures))


#: Named worlds. ``demo`` is the world of ``make demo``; the others differ in what decides the class.
WORLD_PRESETS: Dict[str, WorldConfig] = {
    # every texture shared by two classes that seldom co-occur: texture + shape decide
    'demo': WorldConfig(_DEMO_CLASSES, _DEMO_UNSEEN, 128, _DEMO_COOCCURRING),
    # each co-occurring pair shares its texture: inside an image only the shape tells them apart
    'shared-pairs-160': WorldConfig(
        _retextured(_DEMO_CLASSES, ('stripes', 'stripes', 'dots', 'dots', 'checks', 'checks', 'solid',
                                    'solid')), _DEMO_UNSEEN, 160, _DEMO_COOCCURRING),
    # every object a random texture: only the shape decides
    'shape-only-96': WorldConfig(_retextured(_DEMO_CLASSES, (None, ) * 8),
                                 _retextured(_DEMO_UNSEEN, (None, ) * 4), 96, _DEMO_COOCCURRING),
}


def world_preset(name: str) -> WorldConfig:
    """A copy of a named world (:data:`WORLD_PRESETS`)."""
    if name not in WORLD_PRESETS:
        raise ValueError(f'unknown world {name!r}; known: {sorted(WORLD_PRESETS)}')
    return dataclasses.replace(WORLD_PRESETS[name])


# --------------------------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled uniform noise: a smooth (size, size) field in [0, 1]."""
    grid = rng.random((cells + 1, cells + 1))  # (c+1, c+1)
    pos = np.linspace(0, cells, size, dtype=np.float64)  # (S,)
    i0 = np.minimum(np.floor(pos).astype(int), cells - 1)
    t = pos - i0  # (S,)
    rows = grid[i0] * (1 - t)[:, None] + grid[i0 + 1] * t[:, None]  # (S, c+1)
    return rows[:, i0] * (1 - t)[None] + rows[:, i0 + 1] * t[None]  # (S, S)


def _segment_distance(xx, yy, p0, p1):
    """Distance of every pixel to the segment p0-p1 (x, y)."""
    d = p1 - p0
    t = ((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1]) / max(float(d @ d), 1e-6)
    t = np.clip(t, 0, 1)
    return np.hypot(xx - (p0[0] + t * d[0]), yy - (p0[1] + t * d[1]))


def draw_background(rng: np.random.Generator, size: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Cluttered ground, (S, S, 3) float32 RGB."""
    c1, c2 = BACKGROUND_COLOURS[rng.choice(len(BACKGROUND_COLOURS), 2, replace=False)]
    c1 = c1 + rng.uniform(-15, 15, 3)
    c2 = c2 + rng.uniform(-15, 15, 3)
    field_ = _smooth_noise(rng, size, int(rng.integers(2, 6)))[..., None]  # (S, S, 1)
    img = c1 * (1 - field_) + c2 * field_  # (S, S, 3)
    detail = _smooth_noise(rng, size, int(rng.integers(10, 20)))[..., None] - 0.5
    img = img + 30 * detail
    if rng.random() < 0.35:  # faint pattern in background colours
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(9, 18) * size / 128
        coord = xx * np.cos(angle) + yy * np.sin(angle)
        img = img + rng.uniform(8, 16) * (np.mod(coord / period, 1.0) < 0.5)[..., None]
    for _ in range(int(rng.integers(1, 4))):  # irregular blobs
        colour = (BACKGROUND_COLOURS[rng.integers(len(BACKGROUND_COLOURS))] if rng.random() < 0.6
                  else OBJECT_COLOURS[rng.integers(len(OBJECT_COLOURS))] * rng.uniform(0.6, 0.9))
        cx, cy = rng.uniform(0, size, 2)
        a, b = rng.uniform(0.05, 0.16, 2) * size
        wobble = _smooth_noise(rng, size, 6) - 0.5
        blob = ((xx - cx) / a)**2 + ((yy - cy) / b)**2 < 1 + 1.5 * wobble
        img[blob] = colour + rng.normal(0, 6, 3)
    for _ in range(int(rng.integers(2, 7))):  # lines
        colour = (BACKGROUND_COLOURS[rng.integers(len(BACKGROUND_COLOURS))] * 0.7 if rng.random()
                  < 0.6 else OBJECT_COLOURS[rng.integers(len(OBJECT_COLOURS))])
        p0, p1 = rng.uniform(-0.1, 1.1, (2, 2)) * size
        line = _segment_distance(xx, yy, p0, p1) <= rng.uniform(0.6, 1.8) * size / 128
        img[line] = colour
    return img


@dataclass
class SceneObject:
    """One drawn object: its class, look and where it is (pixels)."""
    cls: ObjectClass
    shape: str
    texture: str
    colour: int  # index into OBJECT_COLOURS / COLOUR_NAMES
    radius: float  # fraction of the image side
    centre: Tuple[float, float]  # (x, y)
    area: int  # pixels of the whole shape (inside the image)
    visible: int  # pixels not hidden by later objects


@dataclass
class Scene:
    """A drawn image: ``image`` (S, S, 3) uint8 RGB, ``owner`` (S, S) int64 (object index, -1 ground)."""
    image: np.ndarray
    owner: np.ndarray
    objects: List[SceneObject]


def _pick_classes(rng: np.random.Generator, world: WorldConfig, pool: Sequence[ObjectClass]):
    """1-4 classes of ``pool``; often built around a co-occurring pair."""
    num = int(rng.choice(np.arange(1, len(world.num_objects_probs) + 1), p=world.num_objects_probs))
    by_name = {c.name: c for c in pool}
    pairs = [p for p in world.cooccurring if p[0] in by_name and p[1] in by_name]
    chosen = []
    if num >= 2 and pairs and rng.random() < world.cooccur_prob:
        chosen += [by_name[n] for n in pairs[rng.integers(len(pairs))]]
    while len(chosen) < num:
        chosen.append(pool[rng.integers(len(pool))])
    return [chosen[i] for i in rng.permutation(len(chosen))]


def draw_scene(rng: np.random.Generator, world: WorldConfig,
               pool: Optional[Sequence[ObjectClass]] = None) -> Scene:
    """Draw one image of ``world`` with 1-4 objects of ``pool`` (default: the labelled classes).

    Objects are placed so that each keeps at least 45% of its area visible (an object is dropped
    when the image is too crowded for that).

    Raises:
        RuntimeError: if not even one object fits visibly (image too small).
    """
    size = world.image_size
    pool = list(world.classes if pool is None else pool)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)  # (S, S)
    img = draw_background(rng, size, xx, yy)
    chosen = _pick_classes(rng, world, pool)
    min_visible = 40 * (size / 128)**2
    lo, hi = world.radius_range
    for attempt in range(200):
        if attempt and attempt % 50 == 0 and len(chosen) > 1:
            chosen = chosen[:-1]  # too crowded to keep every object visible: drop one
        layers = []
        owner = np.full((size, size), -1, dtype=np.int64)
        for k, cls in enumerate(chosen):
            radius = rng.uniform(lo, hi) * size
            cx, cy = rng.uniform(0.12, 0.88, 2) * size
            theta = rng.uniform(0, 2 * np.pi)
            u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
            v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
            shape = cls.shape or world.shape_pool[rng.integers(len(world.shape_pool))]
            mask = SHAPES[shape](u, v, radius)
            layers.append((cls, shape, u, v, radius, (float(cx), float(cy)), mask))
            owner[mask] = k
        visible = np.bincount(owner[owner >= 0], minlength=len(chosen))
        areas = np.array([layer[-1].sum() for layer in layers])
        if np.all((visible >= 0.45 * areas) & (visible >= min_visible)):
            break
    else:
        raise RuntimeError(f'could not place {[c.name for c in chosen]} visibly on a {size} px image; '
                           'use a larger image_size')
    objects = []
    lo_p, hi_p = world.texture_period
    for k, (cls, shape, u, v, radius, centre, mask) in enumerate(layers):
        colour = int(rng.integers(len(OBJECT_COLOURS)))
        main = OBJECT_COLOURS[colour] + rng.uniform(-12, 12, 3)
        second = main * rng.uniform(0.25, 0.45)
        period = rng.uniform(lo_p, hi_p) * size / 128
        texture = cls.texture or TEXTURES[rng.integers(len(TEXTURES))]
        tone = _texture_tone(texture, u, v, period, radius)[..., None]  # (S, S, 1)
        paint = second + (main - second) * tone  # (S, S, 3)
        img[mask] = paint[mask]
        objects.append(SceneObject(cls, shape, texture, colour, radius / size, centre, int(areas[k]),
                                   int(visible[k])))
    img = img + rng.normal(0, 4, img.shape)
    return Scene(np.clip(np.rint(img), 0, 255).astype(np.uint8), owner, objects)


def read_demo_info(data_root: str) -> Dict:
    """``<data_root>/demo_info.json``, the record of a generated dataset (world, seed, class lists).

    Raises:
        MissingDatasetFileError: no such file (not a generated dataset).
        DatasetError: the file is not a JSON object (cut short or edited), naming the file, where it
            breaks and the fix.
    """
    path = osp.join(data_root, 'demo_info.json')
    if not osp.isfile(path):
        raise MissingDatasetFileError(f'{path} does not exist: {data_root} is not a generated dataset; write one '
                                      'with tools/make_demo_data.py, or name a world with --world.')
    with open(path, encoding='utf-8', errors='replace') as f:
        text = f.read()
    try:
        info = json.loads(text)
    except json.JSONDecodeError as err:
        info, where = None, f' ({err.msg} at line {err.lineno}, column {err.colno})'
    else:
        where = ''
    if not isinstance(info, dict):
        raise DatasetError(f'{path} is not the JSON object the data generator writes{where}: it was cut short or '
                           f'edited. Write the data again with `python tools/make_demo_data.py --out {data_root} '
                           '--overwrite` and the options it was made with (--world, --seed, --num-train, '
                           '--num-val, --num-openvocab, --size): the images, masks and labels are drawn '
                           'again the same.')
    return info


def load_world(data_root: str) -> WorldConfig:
    """The world a demo dataset was drawn from (``<data_root>/demo_info.json``).

    Raises:
        FileNotFoundError: no ``demo_info.json`` (not a generated dataset).
        DatasetError: a ``demo_info.json`` that is not a JSON object.
        KeyError: a ``demo_info.json`` without a world (written by an older generator).
    """
    path = osp.join(data_root, 'demo_info.json')
    info = read_demo_info(data_root)
    if 'world' not in info:
        raise KeyError(f'{path} has no "world" entry (an older generator wrote it): write the data again '
                       'with tools/make_demo_data.py --overwrite.')
    return WorldConfig.from_dict(info['world'])


def resolve_world(data_root: Optional[str], world: Optional[str]) -> WorldConfig:
    """The preset ``world`` if given, else the world of ``data_root``'s ``demo_info.json``.

    Raises:
        ValueError: neither is given.
    """
    if world:
        return world_preset(world)
    if not data_root:
        raise ValueError('give --data-root (a generated dataset) or --world (a preset name).')
    return load_world(data_root)
