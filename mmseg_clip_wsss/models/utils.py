"""Small helpers shared by the model modules."""
from typing import Optional

__all__ = ['with_background_index']


def with_background_index(cfg: Optional[dict], background_index: Optional[int],
                          owner: str) -> Optional[dict]:
    """A copy of the module config ``cfg`` that carries ``background_index``.

    The segmentor's ``background_index`` is the one source of truth: it is handed down to the head,
    which hands it to its losses, and to the neck. A sub-config that names another value is a
    contradiction and raises.

    Args:
        cfg (dict, optional): Config of the module to build; None passes through.
        background_index (int, optional): The background class index; None when the class list has
            no background.
        owner (str): Who hands it down, for the message (e.g. ``'TextGuidedHead'``).

    Returns:
        dict | None: ``cfg`` with ``background_index`` set.

    Raises:
        ValueError: if ``cfg`` sets a different ``background_index``.
    """
    if cfg is None:
        return None
    cfg = cfg.copy()
    if cfg.get('background_index', background_index) != background_index:
        raise ValueError(f'{owner}: {cfg.get("type")} sets background_index='
                         f'{cfg["background_index"]!r} but {owner} has {background_index!r}: set it '
                         'once, as model.background_index of the segmentor.')
    cfg['background_index'] = background_index
    return cfg
