"""Multi-label loss of image embeddings against class prompts, with the background prompts as every
class's negative prompt (DualCoOp-style, asymmetric loss)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg_clip_wsss.registry import MODELS
from .utils import check_loss_name

__all__ = ['BackgroundNegativePromptLoss']


@MODELS.register_module()
class BackgroundNegativePromptLoss(nn.Module):
    """Multi-label classification of global image embeddings by positive and negative prompts.

    DualCoOp (Sun, Hu and Saenko, "DualCoOp: Fast Adaptation to Multi-Label Recognition with Limited
    Annotations", NeurIPS 2022) learns a positive and a negative prompt per class and scores class
    ``k``'s presence as the two-way softmax of the image's similarity to them, trained with the
    asymmetric loss (ASL; Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021).
    Here the negative prompt of every class is the set of *background prompts* (the background words,
    prompted with the learned context), pooled by log-sum-exp:

    ``p_k = exp(s_k) / (exp(s_k) + sum_w exp(s_w))``, ``s = logit_scale * cos(image, row)``,

    which is CLIP-ES's softmax restricted to class ``k`` and the background words: the background
    rows learn to explain what an absent class would, the class rows what a present one does. The
    loss is ASL on ``p``:

    ``-[y (1 - p)^gamma_pos log p + (1 - y) p_m^gamma_neg log(1 - p_m)]``, ``p_m = max(p - clip, 0)``,

    summed over the classes and averaged over the images. ``gamma_pos = gamma_neg = clip = 0`` is the
    binary cross-entropy.

    Given region embeddings (B, n, D) instead of image embeddings (B, D), the logit
    ``s_k - logsumexp_w s_w`` is computed at every position and max-pooled over the positions
    (multiple-instance learning): a class is present where some region beats the background prompts,
    and absent where the background prompts beat it everywhere.

    Args:
        gamma_pos (float): Focusing exponent of the positives. Defaults to 0 (ASL's choice).
        gamma_neg (float): Focusing exponent of the negatives. Defaults to 2.
        clip (float): Probability margin shifted off the negatives (ASL), in [0, 1). Defaults to 0.05.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        loss_name (str): Name of the loss item (starts with ``loss_``). Defaults to
            ``'loss_prompt_asl'``.
    """

    def __init__(self, gamma_pos: float = 0.0, gamma_neg: float = 2.0, clip: float = 0.05,
                 loss_weight: float = 1.0, loss_name: str = 'loss_prompt_asl'):
        super().__init__()
        if gamma_pos < 0 or gamma_neg < 0:
            raise ValueError(f'BackgroundNegativePromptLoss: gamma_pos={gamma_pos} and '
                             f'gamma_neg={gamma_neg} must be >= 0.')
        if not 0 <= clip < 1:
            raise ValueError(f'BackgroundNegativePromptLoss: clip={clip} must be in [0, 1).')
        self.gamma_pos, self.gamma_neg, self.clip = float(gamma_pos), float(gamma_neg), float(clip)
        self.loss_weight = float(loss_weight)
        self._loss_name = check_loss_name('BackgroundNegativePromptLoss', loss_name)

    @property
    def loss_name(self) -> str:
        return self._loss_name

    @staticmethod
    def presence_logits(image: Tensor, text: Tensor, num_classes: int, logit_scale: float,
                        mask: Optional[Tensor] = None) -> Tensor:
        """``log p_k - log(1 - p_k)`` of every class: its score minus the log-sum-exp of the
        background rows' scores (region embeddings: at every position, then the maximum).

        Args:
            image (Tensor): (B, D) image embeddings or (B, n, D) region embeddings.
            text (Tensor): (T, D) text rows: ``num_classes`` class rows, then the background rows.
            num_classes (int): Number of class rows (the rest are background rows, at least one).
            logit_scale (float): Multiplier of the cosine similarities.
            mask (Tensor, optional): (B, n) bool, the valid positions of padded region embeddings.

        Returns:
            Tensor: (B, num_classes) logits.
        """
        if not 0 < num_classes < text.shape[0]:
            raise ValueError(f'BackgroundNegativePromptLoss: {text.shape[0]} text rows with '
                             f'{num_classes} class rows leave no background row; give background '
                             'words (the negative prompts).')
        sims = logit_scale * F.normalize(image.float(), dim=-1) @ F.normalize(text.float(), dim=-1).t()
        negative = torch.logsumexp(sims[..., num_classes:], dim=-1, keepdim=True)  # (B, [n,] 1)
        logits = sims[..., :num_classes] - negative  # (B, [n,] K)
        if logits.dim() == 3:
            if mask is not None:
                logits = logits.masked_fill(~mask.bool()[:, :, None], float('-inf'))
            logits = logits.amax(dim=1)  # (B, K)
        return logits

    def forward(self, image: Tensor, text: Tensor, labels: Tensor, logit_scale: float,
                mask: Optional[Tensor] = None) -> Tensor:
        """The loss.

        Args:
            image (Tensor): (B, D) image embeddings or (B, n, D) region embeddings.
            text (Tensor): (T, D) class rows (K = ``labels.shape[1]``) then background rows.
            labels (Tensor): (B, K) multi-hot labels of the class rows.
            logit_scale (float): Multiplier of the cosine similarities (CLIP's).
            mask (Tensor, optional): (B, n) bool, the valid positions of padded region embeddings.

        Returns:
            Tensor: scalar loss.
        """
        logits = self.presence_logits(image, text, labels.shape[1], logit_scale, mask)  # (B, K)
        y = labels.to(logits.dtype)
        p = logits.sigmoid()
        loss_pos = F.logsigmoid(logits) * (1 - p).pow(self.gamma_pos)
        p_neg = (p - self.clip).clamp(min=0) if self.clip > 0 else p
        loss_neg = torch.log((1 - p_neg).clamp(min=1e-8)) * p_neg.pow(self.gamma_neg)
        loss = -(y * loss_pos + (1 - y) * loss_neg).sum(dim=1).mean()
        return self.loss_weight * loss
