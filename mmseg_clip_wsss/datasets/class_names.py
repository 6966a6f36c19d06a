"""One rule for the class names of a list: every name must name a class of its own.

Two names name the same class when they are equal once case, spacing and the separators ``'_'`` and
``'-'`` are ignored: ``'dog'`` and ``'Dog '``, ``'tvmonitor'`` and ``'tv monitor'``, ``'potted_plant'``
and ``'potted-plant'``. A CLIP text tower prompts such names alike, so their rows of a text classifier
are (nearly) the same vector, their scores tie and the argmax picks one of them by position. Every place
that takes class names (dataset ``metainfo`` classes, the text encoder with hand-written or learned
prompts and its :meth:`set_class_names`, the config check, the inferencer and ``tools/segment.py``)
refuses such a list with :func:`check_distinct_class_names`, naming both names, and compares two class
lists by :func:`class_name_key`.
"""
import re
from typing import Dict, Optional, Sequence

from .errors import DatasetError

__all__ = ['DuplicateClassNameError', 'class_name_key', 'check_distinct_class_names']

_IGNORED = re.compile(r'[\s_\-]+')


class DuplicateClassNameError(DatasetError):
    """Two names of a class list name the same class (see :func:`class_name_key`). A
    :class:`~mmseg_clip_wsss.datasets.errors.DatasetError` (a ``ValueError``), so the command lines
    print it without a traceback."""


def class_name_key(name: str) -> str:
    """The form under which two class names are compared: lower case (``casefold``), without
    whitespace, ``'_'`` or ``'-'`` (``'Tv_Monitor '`` -> ``'tvmonitor'``).

    Args:
        name (str): A class name.

    Returns:
        str: Its key.
    """
    return _IGNORED.sub('', name).casefold()


def check_distinct_class_names(names: Sequence[str], source: str,
                               spellings: Optional[Sequence[str]] = None) -> None:
    """Refuse a class list in which two names name the same class.

    Args:
        names (Sequence[str]): The class names as the user gave them, in class order.
        source (str): Where the list comes from, for the message (e.g. ``'model.text_encoder.class_names'``).
        spellings (Sequence[str], optional): What is compared instead of ``names`` (one per name), e.g.
            the readable prompt names of the text encoder (``'tv'`` is prompted as ``'television'``).
            Defaults to ``names``.

    Raises:
        DuplicateClassNameError: naming both names, their class indices and the fix.
    """
    spellings = list(names) if spellings is None else list(spellings)
    seen: Dict[str, int] = {}
    for j, spelling in enumerate(spellings):
        key = class_name_key(spelling)
        i = seen.setdefault(key, j)
        if i == j:
            continue
        prompted = '' if class_name_key(names[i]) == class_name_key(names[j]) else \
            f' (both prompted as {spellings[j]!r})'
        raise DuplicateClassNameError(
            f'{source}: class names {names[i]!r} (class {i}) and {names[j]!r} (class {j}) are the same '
            f"name once case, spaces, '_' and '-' are ignored{prompted}: their text embeddings would "
            'be the same row and their scores would tie. Give each class once; two classes need names '
            'that differ in their words.')
