"""Multi-positive contrastive loss between pooled image embeddings and class text embeddings."""
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg_clip_wsss.engine.dist import all_gather_rows
from mmseg_clip_wsss.registry import register_seg_and_det
from .utils import check_loss_name, check_temperature, foreground_columns, similarity_scale


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
    """Image-text contrastive loss with several positives per image, over the global batch.

    The image embedding (e.g. the spatially pooled pixel embedding) is scored against every class text
    embedding by cosine similarity x scale. Image -> text: the classes present in the image are the
    positives of a softmax over classes. Text -> image (``symmetric=True``): for each class present in
    the batch, the images containing it are the positives of a softmax over the batch's images. The
    background channel (present everywhere) is left out with ``ignore_background=True``.

    In distributed training the image embeddings and labels of every rank are gathered first
    (differentiably), so the loss and its gradients are those of one process holding the whole
    batch: 1 rank x batch 4 gives what 2 ranks x batch 2 give.

    The scale rule (:meth:`scale`): a configured ``temperature`` fixes the scale to ``1 / temperature``
    and a ``logit_scale`` passed by the caller is not used; ``temperature=None`` uses the caller's
    ``logit_scale`` (e.g. the learnable scale of :class:`TextGuidedHead`, as in CLIP).

    Args:
        temperature (float, optional): Fixed temperature, > 0; None: the caller's ``logit_scale``.
            Defaults to 0.07.
        symmetric (bool): Average the image -> text and text -> image terms. Defaults to True.
        ignore_background (bool): Leave the background class out. Defaults to True.
        background_index (int, optional): Index of the background class; None when the class list has
            no background. The head sets it to the segmentor's. Defaults to 0.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        loss_name (str): Name of the loss item. Defaults to ``'loss_itc'``.
    """

    def __init__(self,
                 temperature: Optional[float] = 0.07,
                 symmetric: bool = True,
                 ignore_background: bool = True,
                 background_index: Optional[int] = 0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_itc'):
        super().__init__()
        self.temperature = check_temperature('ImageTextContrastiveLoss', temperature)
        self.symmetric = symmetric
        self.ignore_background = ignore_background
        self.background_index = background_index
        self.loss_weight = loss_weight
        self._loss_name = check_loss_name('ImageTextContrastiveLoss', loss_name)

    def scale(self, logit_scale: Optional[Union[Tensor, float]] = None) -> Union[Tensor, float]:
        """The multiplier of the cosine similarities (see the class docstring for the rule).

        Raises:
            ValueError: with ``temperature=None`` and no ``logit_scale``.
        """
        return similarity_scale('ImageTextContrastiveLoss', self.temperature, logit_scale)

    def forward(self,
                image_embeds: Tensor,
                text_embeds: Tensor,
                image_labels: Tensor,
                logit_scale: Optional[Union[Tensor, float]] = None) -> Tensor:
        """Compute the loss.

        Args:
            image_embeds (Tensor): Image embeddings of this rank, (B, D) (normalised here).
            text_embeds (Tensor): Class text embeddings, (K, D) (normalised here; the same on every
                rank).
            image_labels (Tensor): Multi-hot labels of this rank, (B, K).
            logit_scale (Tensor | float, optional): See :meth:`scale`.

        Returns:
            Tensor: The weighted scalar loss (the same on every rank).
        """
        scale = self.scale(logit_scale)
        image_embeds = all_gather_rows(image_embeds, differentiable=True)  # (sum_r B_r, D)
        image_labels = all_gather_rows(image_labels)  # (sum_r B_r, K)
        # float32 whatever the autocast dtype: the softmax needs the precision
        with torch.autocast(device_type=image_embeds.device.type, enabled=False):
            images = F.normalize(image_embeds.float(), dim=1)
            cosine = images @ F.normalize(text_embeds.float(), dim=1).t()  # (B, K)
        logits = scale * cosine
        positives = image_labels > 0  # (B, K)
        keep = foreground_columns(logits.shape[1], self.background_index, logits.device)
        if self.ignore_background and keep is not None:
            logits, positives = logits[:, keep], positives[:, keep]
        loss = _multi_positive_nce(logits, positives)
        if self.symmetric:
            loss = 0.5 * (loss + _multi_positive_nce(logits.t(), positives.t()))
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        """Name of the loss item."""
        return self._loss_name
