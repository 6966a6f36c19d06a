"""Image-text InfoNCE between images (or their regions) and their descriptions, over the global batch."""
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg_clip_wsss.engine.dist import all_gather_rows
from mmseg_clip_wsss.registry import register_seg_and_det
from .utils import check_loss_name, check_temperature, similarity_scale

__all__ = ['DescriptionContrastiveLoss', 'region_text_similarity']


def region_text_similarity(regions: Tensor, texts: Tensor, region_mask: Optional[Tensor] = None) -> Tensor:
    """Cosine similarity of every image to every text: the best-matching region of the image.

    The token-wise maximum of FILIP (Yao et al., "FILIP: Fine-grained Interactive Language-Image
    Pre-Training", ICLR 2022), with one text embedding per description.

    Args:
        regions (Tensor): (N, R, D) region (or pixel) embeddings.
        texts (Tensor): (M, D) text embeddings.
        region_mask (Tensor, optional): (N, R) bool, the regions that count (an image needs one).

    Returns:
        Tensor: (N, M) cosine similarities.
    """
    cosine = torch.einsum('nrd,md->nmr', F.normalize(regions, dim=-1), F.normalize(texts, dim=-1))
    if region_mask is not None:
        cosine = cosine.masked_fill(~region_mask[:, None, :].bool(), float('-inf'))
    return cosine.max(dim=2).values


@register_seg_and_det
class DescriptionContrastiveLoss(nn.Module):
    """CLIP's image-text InfoNCE between each image and the embedding of *its description*.

    Image ``i`` and description ``i`` are a positive pair, every other description of the global
    batch a negative (and the other way round, ``symmetric=True``): the loss of Radford et al.,
    "Learning Transferable Visual Models From Natural Language Supervision" (ICML 2021). Image and
    text embeddings of every rank are gathered with their gradient first, as open_clip's ``ClipLoss``
    with ``gather_with_grad=True`` and ``local_loss=False`` does: every rank computes the loss of the
    whole global batch, and after DDP averages the ranks' gradients a run of 2 ranks x batch 2 trains
    as 1 rank x batch 4.

    An image is either one embedding (B, D) -- e.g. its pooled pixel embeddings -- or a set of region
    embeddings (B, R, D) scored by its best-matching region (:func:`region_text_similarity`), so a
    description that mentions one object can match the region of that object.

    The scale rule is that of :class:`ImageTextContrastiveLoss`: a configured ``temperature`` fixes the
    scale to ``1 / temperature``; ``temperature=None`` takes the caller's ``logit_scale``.

    Args:
        temperature (float, optional): Fixed temperature, > 0; None: the caller's ``logit_scale``.
            Defaults to 0.07.
        symmetric (bool): Average the image -> text and text -> image terms. Defaults to True.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        loss_name (str): Name of the loss item. Defaults to ``'loss_desc_itc'``.
    """

    def __init__(self,
                 temperature: Optional[float] = 0.07,
                 symmetric: bool = True,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_desc_itc'):
        super().__init__()
        self.temperature = check_temperature('DescriptionContrastiveLoss', temperature)
        self.symmetric = symmetric
        self.loss_weight = loss_weight
        self._loss_name = check_loss_name('DescriptionContrastiveLoss', loss_name)

    def scale(self, logit_scale: Optional[Union[Tensor, float]] = None) -> Union[Tensor, float]:
        """The multiplier of the cosine similarities.

        Raises:
            ValueError: with ``temperature=None`` and no ``logit_scale``.
        """
        return similarity_scale('DescriptionContrastiveLoss', self.temperature, logit_scale)

    def forward(self,
                image_embeds: Tensor,
                text_embeds: Tensor,
                logit_scale: Optional[Union[Tensor, float]] = None,
                region_mask: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            image_embeds (Tensor): This rank's images, (B, D), or their regions, (B, R, D)
                (normalised here).
            text_embeds (Tensor): The embedding of one description of each image, (B, D), row ``i``
                describing image ``i``.
            logit_scale (Tensor | float, optional): See :meth:`scale`.
            region_mask (Tensor, optional): (B, R) bool, the regions that count (with 3-D
                ``image_embeds``).

        Returns:
            Tensor: The weighted scalar loss (the same on every rank); a graph-connected zero when no
            rank holds a pair (every rank must call it: it gathers).

        Raises:
            ValueError: images and descriptions of different counts.
        """
        if image_embeds.shape[0] != text_embeds.shape[0]:
            raise ValueError(f'DescriptionContrastiveLoss: {image_embeds.shape[0]} images and '
                             f'{text_embeds.shape[0]} descriptions; give one description per image.')
        scale = self.scale(logit_scale)
        images = all_gather_rows(image_embeds, differentiable=True)  # (N, D) or (N, R, D)
        texts = all_gather_rows(text_embeds, differentiable=True)  # (N, D)
        if region_mask is not None:
            region_mask = all_gather_rows(region_mask)
        with torch.autocast(device_type=images.device.type, enabled=False):
            if images.dim() == 3:
                cosine = region_text_similarity(images.float(), texts.float(), region_mask)
            else:
                cosine = F.normalize(images.float(), dim=-1) @ F.normalize(texts.float(), dim=-1).t()
        if cosine.shape[0] == 0:  # no pair on any rank: a graph-connected zero
            return images.sum() * 0.0 + texts.sum() * 0.0
        logits = scale * cosine  # (N, N)
        labels = torch.arange(logits.shape[0], device=logits.device)
        loss = F.cross_entropy(logits, labels)
        if self.symmetric:
            loss = 0.5 * (loss + F.cross_entropy(logits.t(), labels))
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        """Name of the loss item."""
        return self._loss_name
