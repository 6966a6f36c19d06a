"""open_clip's contrastive loss with several positives per image and per caption."""
from typing import Optional

import torch
from open_clip.loss import ClipLoss
from torch import Tensor

__all__ = ['MultiPositiveClipLoss']


class MultiPositiveClipLoss(ClipLoss):
    """:class:`open_clip.loss.ClipLoss` whose targets may hold several positives per row.

    In a generated corpus many captions describe more than their own image ("a disc." is true of
    every image of one disc); counting those pairs as negatives teaches the model to tell apart
    what the captions do not. With a target matrix ``T`` (``T[i, j] = 1`` when caption ``j`` is
    true of image ``i``) each direction is a cross-entropy against the row-normalised targets, as in
    UniCL (Yang et al., "Unified Contrastive Learning in Image-Text-Label Space", CVPR 2022)::

        loss = ( CE(logits_per_image, T / T.sum(1)) + CE(logits_per_text, T.t() / T.t().sum(1)) ) / 2

    With ``targets=None`` (or the identity) it is exactly ``ClipLoss``. ``negative_features`` add
    captions that only the image-to-text direction ranks (hard negatives, NegCLIP; one process only).
    The logits, the learnable temperature (``logit_scale``) and the multi-process gather are open_clip's own
    (:meth:`ClipLoss.get_logits`); with ``world_size > 1`` and ``local_loss=False`` the targets must
    cover the gathered batch.

    Args:
        **kwargs: :class:`open_clip.loss.ClipLoss` arguments.
    """

    def forward(self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor,
                targets: Optional[Tensor] = None, logit_bias: Optional[Tensor] = None,
                output_dict: bool = False, negative_features: Optional[Tensor] = None,
                negative_targets: Optional[Tensor] = None):
        """Contrastive loss of normalised features.

        Args:
            image_features (Tensor): (N, D) L2-normalised image embeddings.
            text_features (Tensor): (N, D) L2-normalised caption embeddings.
            logit_scale (Tensor): Multiplicative scale (``exp`` of the learnable log-scale).
            targets (Tensor, optional): (N_img, N_txt) non-negative; every row and column needs a
                positive (the diagonal, for paired data). None: the identity.
            logit_bias (Tensor, optional): See ``ClipLoss``.
            output_dict (bool): Return ``{'contrastive_loss': loss}``.
            negative_features (Tensor, optional): (M, D) L2-normalised embeddings of extra captions
                (hard negatives, :mod:`.hard_negatives`): more columns of the image-to-text
                cross-entropy only (NegCLIP); not gathered across processes.
            negative_targets (Tensor, optional): (N_img, M) which extra captions are true of which
                images (a swapped caption may describe another image); None: none is.

        Returns:
            Tensor | dict: The loss.

        Raises:
            ValueError: targets of the wrong shape, a row/column without a positive, negative
                features with world_size > 1 or negative_targets of the wrong shape.
        """
        if negative_features is not None and self.world_size > 1:
            raise ValueError('MultiPositiveClipLoss: negative_features are not gathered across processes; '
                             'pretrain with hard negatives in one process (world_size=1).')
        if targets is None and negative_features is None:
            return super().forward(image_features, text_features, logit_scale, logit_bias, output_dict)
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale,
                                                            logit_bias)
        if targets is None:
            targets = torch.eye(*logits_per_image.shape, device=logits_per_image.device)
        if targets.shape != logits_per_image.shape:
            raise ValueError(f'MultiPositiveClipLoss: targets {tuple(targets.shape)} must match the logits '
                             f'{tuple(logits_per_image.shape)} (images x captions).')
        targets = targets.to(logits_per_image)
        if bool((targets.sum(1) <= 0).any()) or bool((targets.sum(0) <= 0).any()):
            raise ValueError('MultiPositiveClipLoss: every image and every caption needs a positive '
                             '(for paired data, the diagonal).')
        image_targets = targets
        if negative_features is not None:
            extra = logit_scale * image_features @ negative_features.t()  # (N_img, M)
            if logit_bias is not None:
                extra = extra + logit_bias
            if negative_targets is None:
                negative_targets = extra.new_zeros(extra.shape)
            if negative_targets.shape != extra.shape:
                raise ValueError(f'MultiPositiveClipLoss: negative_targets {tuple(negative_targets.shape)} '
                                 f'must be (images, extra captions) = {tuple(extra.shape)}.')
            logits_per_image = torch.cat([logits_per_image, extra], dim=1)
            image_targets = torch.cat([targets, negative_targets.to(targets)], dim=1)
        image_to_text = -(image_targets / image_targets.sum(1, keepdim=True) *
                          logits_per_image.log_softmax(1)).sum(1).mean()
        t = targets.t()
        text_to_image = -(t / t.sum(1, keepdim=True) * logits_per_text.log_softmax(1)).sum(1).mean()
        loss = (image_to_text + text_to_image) / 2
        return {'contrastive_loss': loss} if output_dict else loss
