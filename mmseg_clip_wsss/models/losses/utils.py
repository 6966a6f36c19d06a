"""Checks and column selection shared by the losses."""
from typing import Optional

import torch
from torch import Tensor

__all__ = ['check_loss_name', 'foreground_columns']


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
