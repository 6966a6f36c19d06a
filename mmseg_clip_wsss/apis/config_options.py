"""The values of ``--cfg-options KEY=VALUE`` (and of the demo's option strings), parsed as mmengine's
``DictAction`` parses them but with the spaces inside a string kept: mmengine removes every space of a
value first, so a prompt template ``a photo of a {}.`` became ``aphotoofa{}.``. And a value, or an
element of a list, in matching quotes is kept whole, commas and brackets included
(``KEY="'a photo of a {}, small.'"``, ``KEY="['a, b', c]"``; a number in quotes is still the
number, as in mmengine): mmengine splits at every comma, so such a text could not be given."""
from typing import Any, Dict, List, Sequence

from mmengine.config import DictAction

__all__ = ['parse_option_value', 'options_dict']


def parse_option_value(val: str) -> Any:
    """``val`` as mmengine's ``DictAction`` parses it, spaces inside a string kept.

    Args:
        val (str): The text after ``KEY=``.

    Returns:
        list | tuple | int | float | bool | None | str: ``'...'`` or ``"..."``: the text between the
        quotes kept whole (no list, no brackets; a number, boolean or ``None`` as mmengine parses
        them, else the string); ``[...]`` or ``a,b``: a list, ``(...)``: a tuple (elements parsed the same
        way, nested), else the number, boolean, ``None`` or the string (its outer spaces and stray
        quotes stripped).

    Raises:
        ValueError: the brackets of ``val`` do not pair.
    """
    val = val.strip()
    closes = _bracket_pairs(val)
    if len(val) > 1 and val[0] in _QUOTES and closes.get(0) == len(val) - 1:  # kept whole
        return DictAction._parse_int_float_bool(val[1:-1])
    if not closes:  # mmengine strips stray quotes at the ends
        val = val.strip(_QUOTES)
    bracketed = bool(val) and val[0] in '([' and closes.get(0) == len(val) - 1
    inner = val[1:-1] if bracketed else val
    if not bracketed and _top_level_commas(inner, closes, 0) == []:
        return DictAction._parse_int_float_bool(val)
    offset = 1 if bracketed else 0
    bounds = [-1] + _top_level_commas(inner, closes, offset) + [len(inner)]
    parts = [inner[a + 1:b] for a, b in zip(bounds, bounds[1:])]
    if not parts[-1].strip():  # mmengine: `a,` is ['a'], `[]` is []
        parts = parts[:-1]
    values = [parse_option_value(part) for part in parts]
    return tuple(values) if bracketed and val[0] == '(' else values


def options_dict(options: Sequence[str]) -> Dict[str, Any]:
    """``KEY=VALUE`` strings (``--cfg-options`` syntax) as a dict for ``Config.merge_from_dict``, each
    value parsed by :func:`parse_option_value`."""
    return {key: parse_option_value(value) for key, value in (o.split('=', 1) for o in options)}


_QUOTES = '\'"'


def _bracket_pairs(text: str) -> Dict[int, int]:
    """The index of the closing bracket of each opening ``(`` / ``[`` of ``text``, and of the closing
    quote of each quote that opens an element (at the start, or after ``[``, ``(`` or ``,`` and
    spaces) and is closed by the same quote later; nothing inside quotes is a bracket.

    Raises:
        ValueError: a bracket of ``text`` is not closed, closed by the other kind, or closes nothing.
    """
    pairs, opened, i = {}, [], -1
    while i + 1 < len(text):
        i += 1
        char = text[i]
        if char in _QUOTES and text[:i].rstrip()[-1:] in ('', '[', '(', ','):
            end = text.find(char, i + 1)
            if end > 0:
                pairs[i], i = end, end
                continue
        if char in '([':
            opened.append(i)
        elif char in ')]':
            if not opened or text[opened[-1]] != {')': '(', ']': '['}[char]:
                raise ValueError(f'the {char!r} at position {i} of {text!r} closes no bracket')
            pairs[opened.pop()] = i
    if opened:
        raise ValueError(f'the {text[opened[-1]]!r} at position {opened[-1]} of {text!r} is never closed')
    return pairs


def _top_level_commas(inner: str, closes: Dict[int, int], offset: int) -> List[int]:
    """The indices of the commas of ``inner`` outside any bracket (``closes``: :func:`_bracket_pairs` of
    the text ``inner`` starts at ``offset`` of)."""
    commas, i = [], 0
    while i < len(inner):
        if i + offset in closes:  # a bracket or a quote: to its end
            i = closes[i + offset] - offset
        elif inner[i] == ',':
            commas.append(i)
        i += 1
    return commas
