"""Training-free pseudo masks from the dense zero-shot map of a frozen CLIP (MaskCLIP, SCLIP,
ClearCLIP, NACLIP), or CLIP-ES's Grad-CAM as mode ``'plain'``."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg_clip_wsss.registry import MODELS
from .training_free_clip_es import TrainingFreeCLIPES

__all__ = ['TrainingFreeDenseCLIP', 'dense_text_probabilities']


def dense_text_probabilities(embeddings: Tensor, text: Tensor, competitors: Tensor,
                             logit_scale: float) -> Tensor:
    """Per position, the softmax over text rows of ``logit_scale * cos(embedding, text)``.

    Args:
        embeddings (Tensor): (B, D, h, w) dense joint-space embeddings.
        text (Tensor): (T, D) text embeddings.
        competitors (Tensor): (B, T) bool, the rows each image's softmax runs over (others get 0).
        logit_scale (float): Temperature (SCLIP and NACLIP: 40; ClearCLIP: 50).

    Returns:
        Tensor: (B, T, h, w) probabilities, summing to 1 over each image's competitors.
    """
    emb = F.normalize(embeddings.float(), dim=1)
    logits = logit_scale * torch.einsum('bdhw,td->bthw', emb, F.normalize(text.float(), dim=-1))
    logits = logits.masked_fill(~competitors.bool()[:, :, None, None], float('-inf'))
    return logits.softmax(dim=1)


@MODELS.register_module()
class TrainingFreeDenseCLIP(TrainingFreeCLIPES):
    """Pseudo masks of a frozen CLIP with no training, from any dense zero-shot mode.

    ``dense_mode`` is the backbone's (:class:`CLIPVisionBackbone`, :mod:`...backbones.dense_modes`):
    ``'plain'`` keeps CLIP-ES's softmax Grad-CAM with class-aware affinity (exactly
    :class:`TrainingFreeCLIPES`, parity included); ``'maskclip'``, ``'sclip'``, ``'clearclip'`` and
    ``'naclip'`` (ViT; ``'maskclip'`` also for a ModifiedResNet) read the class maps off the dense
    patch-text similarity instead:

    1. The dense map of the tower in that mode (B, D, h, w) and the text rows of
       :class:`TrainingFreeCLIPES` (every foreground class, every background word as a row).
    2. Per position, the softmax of ``dense_logit_scale * cos`` over the image's competitors
       (``softmax_over='labels'``: its labelled classes + the background words, as CLIP-ES does for
       its Grad-CAM; ``'all'``: every class + the background words, for images without labels).
    3. The map of a labelled class is its probability where a foreground row wins the argmax, 0
       where a background word wins. Resized bilinearly to the input size.

    With the protocol's ``bg_mode='threshold'`` and ``normalise=False`` (the dense configs), a pixel
    is then the argmax over the present classes + background, and background also where the winning
    class's probability is below ``bg_threshold`` (the ``prob_thd`` of SCLIP, ClearCLIP and NACLIP's
    code). The protocol's refinement (dense CRF, PAR) refines them as it refines CLIP-ES's CAMs.

    Differences from the papers' code, each a named option or the protocol's: their inference slides
    224-px (SCLIP, NACLIP) or 448-px (ClearCLIP) windows over an image resized to a short side of 336
    or 448 and scores every class of the dataset; here the protocol's scales and flips run on whole
    images and the softmax runs over the image's labelled classes (``softmax_over``), because the
    pseudo masks of weakly supervised segmentation know them. PAMR (SCLIP and NACLIP's optional
    refinement) is not offered; the protocol's CRF or PAR is. The class-aware affinity
    (``affinity``) applies to the Grad-CAM of mode ``'plain'`` only.

    Args:
        dense_mode (str): The backbone's dense mode. Defaults to 'plain'.
        dense_cfg (dict, optional): The backbone's ``dense_cfg`` (switches of the mode). Defaults to
            None.
        dense_logit_scale (float, optional): Temperature of the dense softmax; None takes the CLIP's
            learned ``logit_scale.exp()``. Defaults to 40 (SCLIP's and NACLIP's; ClearCLIP's code uses
            50, SCLIP's VOC21 config 65).
        **kwargs: :class:`TrainingFreeCLIPES`'s arguments (``backbone``, ``text_encoder``,
            ``class_names``, ``background_words``, ``softmax_over``, ...).

    Raises:
        ValueError: an unknown dense mode (from the backbone), or ``softmax_over='none'`` with a dense
            mode (the dense map needs competitors).
    """

    def __init__(self, backbone: dict, dense_mode: str = 'plain', dense_cfg: Optional[dict] = None,
                 dense_logit_scale: Optional[float] = 40.0, **kwargs):
        backbone = dict(backbone, dense_mode=dense_mode, dense_cfg=dense_cfg)
        super().__init__(backbone=backbone, **kwargs)
        if dense_mode != 'plain' and self.softmax_over == 'none':
            raise ValueError(f'TrainingFreeDenseCLIP: dense_mode={dense_mode!r} needs '
                             "softmax_over='labels' or 'all' (the dense map is a softmax over text rows); "
                             "'none' is the Grad-CAM's.")
        self.dense_mode = dense_mode
        self.dense_logit_scale = float(dense_logit_scale or self.backbone.logit_scale)

    def compute_cams(self, inputs: Tensor, image_labels: Tensor) -> Tensor:
        """Class maps of normalised images, restricted to their labels (works under ``torch.no_grad``).

        Args:
            inputs (Tensor): (B, 3, H, W) images normalised with the CLIP's mean and std.
            image_labels (Tensor): (B, K) multi-hot labels in the channel order of ``class_names``.

        Returns:
            Tensor: (B, K, H, W) in [0, 1]; zero for absent classes and the background channel.
        """
        if self.dense_mode == 'plain':
            return super().compute_cams(inputs, image_labels)
        if image_labels.dim() != 2 or image_labels.shape[1] != self.num_classes:
            raise ValueError(f'TrainingFreeDenseCLIP: image_labels must be (B, {self.num_classes}), got '
                             f'{tuple(image_labels.shape)}.')
        image_labels = image_labels.to(inputs.device)
        _, competitors = self._rows(image_labels)
        with torch.no_grad():
            text = self.text_encoder()  # (T, D)
            dense = self.backbone.dense_embeddings(self._resize_inputs(inputs))  # (B, D, h, w)
            probs = dense_text_probabilities(dense, text, competitors, self.dense_logit_scale)
        num_fg = len(self.foreground)
        foreground_wins = (probs.argmax(dim=1) < num_fg)[:, None]  # (B, 1, h, w)
        cams = probs.new_zeros(probs.shape[0], self.num_classes, *probs.shape[-2:])
        cams[:, self.foreground] = probs[:, :num_fg] * foreground_wins
        cams = F.interpolate(cams, size=inputs.shape[-2:], mode='bilinear', align_corners=False)
        return cams * (image_labels > 0).to(cams)[:, :, None, None]

    def extra_repr(self) -> str:
        return f'dense_mode={self.dense_mode!r}, dense_logit_scale={self.dense_logit_scale}'
