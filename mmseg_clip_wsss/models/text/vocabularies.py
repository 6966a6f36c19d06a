"""Readable prompt names and background words for the CLIP text side.

A vocabulary name (``'voc'``, ``'coco'``, ``'demo'``) stands for the class list of that dataset, read
from the dataset's ``METAINFO`` (:func:`mmseg_clip_wsss.datasets.dataset_classes`), so that row ``k``
of the text embeddings is class ``k`` of the dataset. What goes into a prompt is the *readable* name:
``'tvmonitor'`` is prompted as ``'tv monitor'``, ``'hair drier'`` as ``'hair dryer'``, and so on (see
:data:`PROMPT_NAMES`).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmseg_clip_wsss.datasets.class_lists import dataset_classes
from mmseg_clip_wsss.datasets.class_names import check_distinct_class_names
from mmseg_clip_wsss.datasets.synthetic.world import WORLD_PRESETS

__all__ = [
    'BACKGROUND_WORDS', 'PROMPT_NAMES', 'resolve_class_names', 'resolve_class_prompts',
    'default_background_words', 'readable_name', 'DESCRIPTION_WORDS'
]

#: Readable prompt names for dataset spellings that CLIP reads badly (keys are lower case,
#: underscores already turned into spaces). Names not listed are prompted as they are.
PROMPT_NAMES = {
    'tvmonitor': 'tv monitor',
    'pottedplant': 'potted plant',
    'diningtable': 'dining table',
    'motorbike': 'motorbike',
    'aeroplane': 'aeroplane',
    'tv': 'television',
    'hair drier': 'hair dryer',
    'mouse': 'computer mouse',
    'remote': 'remote control',
    'cell phone': 'cell phone',
    'couch': 'couch',
    'sports ball': 'sports ball',
}

#: Words for stuff that is never a foreground object (CLIP-ES style background prompts).
#: Each word is prompted like a class and the background row is their normalised mean.
BACKGROUND_WORDS: Tuple[str, ...] = ('ground', 'land', 'grass', 'tree', 'building', 'wall', 'sky',
                                     'lake', 'water', 'river', 'sea', 'railway', 'railroad', 'keyboard',
                                     'helmet', 'cloud', 'house', 'mountain', 'ocean', 'road', 'rock',
                                     'street', 'valley', 'bridge', 'sign')

ClassNames = Union[str, Sequence[Union[str, Sequence[str]]]]


def readable_name(name: str, readable: bool = True) -> str:
    """The prompt-ready spelling of one class name (``'tvmonitor'`` -> ``'tv monitor'``).

    Underscores become spaces, whitespace is collapsed and :data:`PROMPT_NAMES` is applied. With
    ``readable=False`` the name is prompted exactly as written (only checked): CLIP-ES prompts
    ``'diningtable'`` and ``'pottedplant'`` so, and their text rows differ from the readable ones.

    Raises:
        ValueError: for a name that is no non-empty string.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f'class_names: every class name must be a non-empty string, got {name!r}.')
    if not readable:
        return name
    clean = ' '.join(name.replace('_', ' ').split())
    return PROMPT_NAMES.get(clean.lower(), clean)


def resolve_class_prompts(class_names: ClassNames, source: str = 'class_names',
                          readable: bool = True) -> List[List[str]]:
    """All prompt names of every class (one list of synonyms per class).

    Args:
        class_names (str | Sequence[str | Sequence[str]]): ``'voc'``, ``'coco'``, or a list with
            one entry per class; an entry is a name or a list of synonyms (e.g.
            ``['tv monitor', 'television']``) that are all prompted and averaged.
        source (str): Where the names come from, for the messages. Defaults to ``'class_names'``.
        readable (bool): Apply :func:`readable_name` (``'diningtable'`` -> ``'dining table'``);
            False prompts every name as written. Defaults to True.

    Returns:
        list[list[str]]: For every class, its prompt names (at least one).

    Raises:
        ValueError: an empty list or synonym list, a name that is no non-empty string.
        DuplicateClassNameError: two classes whose (first) names are the same name once case,
            spacing and separators are ignored, or are prompted alike (``'tvmonitor'`` and
            ``'tv monitor'``, ``'tv'`` and ``'television'``); the rule of
            :mod:`mmseg_clip_wsss.datasets.class_names`.
    """
    if isinstance(class_names, str):
        class_names = dataset_classes(class_names)
    if class_names is None or len(class_names) == 0:
        raise ValueError(f'{source} is empty: give a vocabulary name (\'voc\', \'coco\') or a '
                         'non-empty list of class names.')
    prompts, given = [], []
    for entry in class_names:
        synonyms = [entry] if isinstance(entry, str) else list(entry)
        if not synonyms:
            raise ValueError(f'{source}: a synonym list must hold at least one name.')
        prompts.append([readable_name(s, readable) for s in synonyms])
        given.append(synonyms[0])
    check_distinct_class_names(given, source, spellings=[p[0] for p in prompts])
    return prompts


def resolve_class_names(class_names: ClassNames) -> List[str]:
    """Prompt-ready names, one per class, in dataset order.

    Args:
        class_names (str | Sequence[str | Sequence[str]]): ``'voc'``, ``'coco'`` or a list of class
            names (an entry may be a list of synonyms; its first name is returned).

    Returns:
        list[str]: e.g. ``resolve_class_names('voc')[-1] == 'tv monitor'``.
    """
    return [synonyms[0] for synonyms in resolve_class_prompts(class_names)]


def default_background_words(foreground_names: Optional[Sequence[str]] = None) -> List[str]:
    """:data:`BACKGROUND_WORDS` minus any word that is a foreground class of the vocabulary.

    (``'keyboard'`` is a COCO class, so it is no background word for COCO.)

    Args:
        foreground_names (Sequence[str], optional): Prompt names of the foreground classes.

    Returns:
        list[str]: The background words to prompt.
    """
    taken = {n.lower() for n in (foreground_names or [])}
    return [w for w in BACKGROUND_WORDS if w not in taken]


#: Words people use for the classes in descriptions, beyond the class names (COCO captions speak of
#: "a man on a bike", not "a person on a bicycle"), per vocabulary: ``{vocabulary: {class: words}}``.
#: Read by :class:`~mmseg_clip_wsss.models.text.DescriptionTargets` (``extra_words='coco'``).
DESCRIPTION_WORDS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    'coco': {
        'person': ('man', 'men', 'woman', 'women', 'people', 'boy', 'girl', 'child', 'children', 'kid',
                   'guy', 'lady', 'ladies', 'player', 'skier', 'surfer', 'skateboarder', 'snowboarder'),
        'bicycle': ('bike', 'cyclist'), 'motorcycle': ('motorbike', 'motor bike', 'scooter'),
        'airplane': ('plane', 'jet', 'aircraft', 'airliner'), 'boat': ('ship', 'sailboat', 'canoe', 'kayak'),
        'traffic light': ('stop light', 'traffic signal'), 'fire hydrant': ('hydrant', ),
        'bird': ('seagull', 'pigeon', 'duck', 'parrot'), 'cat': ('kitten', 'kitty'), 'dog': ('puppy', ),
        'horse': ('pony', ), 'sheep': ('lamb', ), 'cow': ('cattle', 'bull', 'calf'),
        'backpack': ('back pack', ), 'umbrella': ('parasol', ), 'handbag': ('purse', ), 'tie': ('necktie', ),
        'suitcase': ('luggage', ), 'skis': ('ski', ), 'sports ball': ('ball', 'soccer ball', 'football'),
        'baseball bat': ('bat', ), 'baseball glove': ('mitt', 'glove'), 'surfboard': ('surf board', ),
        'tennis racket': ('racket', 'racquet'), 'wine glass': ('glass of wine', ), 'cup': ('mug', ),
        'sandwich': ('burger', 'sub'), 'hot dog': ('hotdog', ), 'donut': ('doughnut', ),
        'cake': ('cupcake', ), 'couch': ('sofa', ), 'potted plant': ('plant', 'houseplant'),
        'dining table': ('table', ), 'tv': ('television', 'tv'), 'laptop': ('computer', ),
        'remote': ('remote control', 'controller'), 'cell phone': ('phone', 'cellphone', 'smartphone'),
        'mouse': ('computer mouse', ), 'oven': ('stove', ), 'refrigerator': ('fridge', ), 'teddy bear': ('teddy', 'stuffed animal'),
        'hair drier': ('hair dryer', 'blow dryer'), 'toothbrush': ('tooth brush', ),
    },
    'voc': {
        'aeroplane': ('airplane', 'plane', 'jet'), 'bicycle': ('bike', ), 'boat': ('ship', 'sailboat'),
        'diningtable': ('table', 'dining table'), 'motorbike': ('motorcycle', 'motor bike'),
        'person': ('man', 'men', 'woman', 'women', 'people', 'boy', 'girl', 'child', 'children', 'kid'),
        'pottedplant': ('plant', 'potted plant'), 'sofa': ('couch', ), 'tvmonitor': ('tv', 'monitor',
                                                                                    'television', 'screen'),
    },
    # the synonyms of the demo world's classes, as its describer uses them
    'demo': {c.name: tuple(c.synonyms) for c in WORLD_PRESETS['demo'].classes if c.synonyms},
}
