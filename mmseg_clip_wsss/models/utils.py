"""Small helpers shared by the model modules."""
import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ['with_background_index', 'register_logit_scale', 'clamped_scale', 'resize_rows']


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


def register_logit_scale(module: nn.Module, init: float, max_scale: float, learnable: bool) -> None:
    """Give ``module`` a ``logit_scale`` = log(``init``) (a parameter when ``learnable``, else a buffer)
    and its ``max_logit_scale``: the CLIP-style temperature of a cosine classifier (Radford et al.,
    ICML 2021).

    Raises:
        ValueError: unless ``0 < init <= max_scale``, naming the module.
    """
    if not 0 < init <= max_scale:
        raise ValueError(f'{type(module).__name__}: need 0 < logit_scale_init ({init}) <= '
                         f'max_logit_scale ({max_scale}).')
    module.max_logit_scale = max_scale
    log_scale = torch.tensor(math.log(init))
    if learnable:
        module.logit_scale = nn.Parameter(log_scale)
    else:
        module.register_buffer('logit_scale', log_scale)


def clamped_scale(log_scale: Tensor, max_scale: float) -> Tensor:
    """The multiplicative scale ``exp(log_scale)``, clamped to ``max_scale``."""
    return log_scale.clamp(max=math.log(max_scale)).exp()


def resize_rows(maps: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """Bilinear resize of (B, C, h, w) maps whose rows are independent (e.g. the CAMs of a subset of
    the classes).

    torch's CPU bilinear kernel chooses its vectorisation by the channel count and the sizes, and
    the choices round the last bit differently. For maps of about 24x32 and more (CAMs at the input
    resolution) only exactly 3 channels take another path (torch 2.x), so a 3-row input is resized
    with a zero 4th row: a class's map then does not depend on how many classes are resized with it.
    Smaller maps can still differ in the last bit.

    Args:
        maps (Tensor): (B, C, h, w) float maps.
        size (Sequence[int]): Output (H, W).
        align_corners (bool): As for :func:`torch.nn.functional.interpolate`. Defaults to False.

    Returns:
        Tensor: (B, C, H, W).
    """
    size = (int(size[0]), int(size[1]))
    if maps.shape[1] == 0:  # no class to resize (torch refuses empty inputs)
        return maps.new_zeros(*maps.shape[:2], *size)
    if maps.shape[1] != 3:
        return F.interpolate(maps, size=size, mode='bilinear', align_corners=align_corners)
    padded = torch.cat([maps, maps.new_zeros(maps.shape[0], 1, *maps.shape[2:])], dim=1)
    return F.interpolate(padded, size=size, mode='bilinear', align_corners=align_corners)[:, :3]
