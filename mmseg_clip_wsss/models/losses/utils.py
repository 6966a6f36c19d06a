"""Checks and column selection shared by the losses."""
from typing import Optional, Union

import torch
from torch import Tensor

__all__ = ['check_loss_name', 'foreground_columns', 'check_temperature', 'similarity_scale']


def check_loss_name(owner: str, loss_name: str) -> str:
    """Return ``loss_name``; raise unless it starts with ``loss_`` (mmengine sums only those)."""
    if not loss_name.startswith('loss_'):
        raise ValueError(f'{owner}: loss_name must start with "loss_", got {loss_name!r}.')
    return loss_name


def foreground_columns(num_classes: int, background_index: Optional[int],
                       device: torch.device) -> Optional[Tensor]:
    """Bool (K,) mask of every column but the background one; None when there is no background
    (``background_index=None``: every class, including class 0, is a foreground class)."""
    if background_index is None:
        return None
    keep = torch.ones(num_classes, dtype=torch.bool, device=device)
    keep[background_index] = False
    return keep


def check_temperature(owner: str, temperature: Optional[float]) -> Optional[float]:
    """Return ``temperature``; raise unless it is None or > 0."""
    if temperature is not None and temperature <= 0:
        raise ValueError(f'{owner}: temperature must be > 0 or None, got {temperature}.')
    return temperature


def similarity_scale(owner: str, temperature: Optional[float],
                     logit_scale: Optional[Union[Tensor, float]] = None) -> Union[Tensor, float]:
    """The multiplier of the cosine similarities of a contrastive loss: ``1 / temperature`` when a
    temperature is configured (the caller's ``logit_scale`` is then not used), else ``logit_scale``.

    Raises:
        ValueError: with ``temperature=None`` and no ``logit_scale``.
    """
    if temperature is not None:
        return 1.0 / temperature
    if logit_scale is None:
        raise ValueError(f'{owner}: temperature=None needs a logit_scale argument (or set a fixed '
                         'temperature in the loss config).')
    return logit_scale
