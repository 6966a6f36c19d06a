"""Multi-positive contrastive loss between pooled image embeddings and class text embeddings."""
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg_clip_wsss.registry import register_seg_and_det


def _multi_positive_nce(logits: Tensor, positives: Tensor) -> Tensor:
    """Mean over rows with a positive of ``-mean_{p in positives} log_softmax(logits)[p]``.

    Args:
        logits (Tensor): (N, M) similarity logits.
        positives (Tensor): (N, M) bool, the positives of each row.

    Returns:
        Tensor: Scalar (a graph-connected zero when no row has a positive).
    """
    rows = positives.any(dim=1)  # (N,)
    if not bool(rows.any()):
        return logits.sum() * 0.0
    logits, positives = logits[rows], positives[rows]
    log_prob = logits.log_softmax(dim=1)  # (N', M)
    pos = positives.to(log_prob.dtype)
    return -((log_prob * pos).sum(dim=1) / pos.sum(dim=1)).mean()


@register_seg_and_det
class ImageTextContrastiveLoss(nn.Module):
    """Image-text contrastive loss with several positives per image.

    The image embedding (e.g. the spatially pooled pixel embedding) is scored against every class text
    embedding by cosine similarity x scale. Image -> text: the classes present in the image are the
    positives of a softmax over classes. Text -> image (``symmetric=True``): for each class present in
    the batch, the images containing it are the positives of a softmax over the batch's images. The
    background channel (present everywhere) is left out with ``ignore_background=True``.

    Args:
        temperature (float, optional): Fixed temperature (scale = 1 / temperature). If None, the
            caller passes ``logit_scale`` (e.g. the head's learnable scale). Defaults to 0.07.
        symmetric (bool): Average the image -> text and text -> image terms. Defaults to True.
        ignore_background (bool): Leave the background class out. Defaults to True.
        background_index (int): Index of the background class. Defaults to 0.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        loss_name (str): Name of the loss item. Defaults to ``'loss_itc'``.
    """

    def __init__(self,
                 temperature: Optional[float] = 0.07,
                 symmetric: bool = True,
                 ignore_background: bool = True,
                 background_index: int = 0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_itc'):
        super().__init__()
        if temperature is not None and temperature <= 0:
            raise ValueError('ImageTextContrastiveLoss: temperature must be > 0 or None, got '
                             f'{temperature}.')
        if not loss_name.startswith('loss_'):
            raise ValueError('ImageTextContrastiveLoss: loss_name must start with "loss_", got '
                             f'{loss_name!r}.')
        self.temperature = temperature
        self.symmetric = symmetric
        self.ignore_background = ignore_background
        self.background_index = background_index
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self,
                image_embeds: Tensor,
                text_embeds: Tensor,
                image_labels: Tensor,
                logit_scale: Optional[Union[Tensor, float]] = None) -> Tensor:
        """Compute the loss.

        Args:
            image_embeds (Tensor): Image embeddings, (B, D) (normalised here).
            text_embeds (Tensor): Class text embeddings, (K, D) (normalised here).
            image_labels (Tensor): Multi-hot labels, (B, K).
            logit_scale (Tensor | float, optional): Scale used when ``temperature`` is None.

        Returns:
            Tensor: The weighted scalar loss.
        """
        if self.temperature is not None:
            scale = 1.0 / self.temperature
        elif logit_scale is None:
            raise ValueError('ImageTextContrastiveLoss: temperature=None needs a logit_scale argument '
                             '(or set a fixed temperature in the loss config).')
        else:
            scale = logit_scale
        # float32 whatever the autocast dtype: the softmax needs the precision
        with torch.autocast(device_type=image_embeds.device.type, enabled=False):
            images = F.normalize(image_embeds.float(), dim=1)
            cosine = images @ F.normalize(text_embeds.float(), dim=1).t()  # (B, K)
        logits = scale * cosine
        positives = image_labels > 0  # (B, K)
        if self.ignore_background:
            keep = torch.ones(logits.shape[1], dtype=torch.bool, device=logits.device)
            keep[self.background_index] = False
            logits, positives = logits[:, keep], positives[:, keep]
        loss = _multi_positive_nce(logits, positives)
        if self.symmetric:
            loss = 0.5 * (loss + _multi_positive_nce(logits.t(), positives.t()))
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        """Name of the loss item."""
        return self._loss_name
