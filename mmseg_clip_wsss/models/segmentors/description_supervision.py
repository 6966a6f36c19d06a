"""What a weakly supervised segmentor learns from the descriptions of images that carry no labels.

A batch may mix images with image-level labels (``gt_image_labels``) and images with descriptions
(the ``captions`` meta key of :class:`~mmseg_clip_wsss.datasets.ImageTextDataset` /
:class:`~mmseg_clip_wsss.datasets.ImageTextShards` samples). :class:`DescriptionSupervision` gives
every image its image-level targets and per-class weights -- labels with weight 1, or the soft
targets and confidences of :class:`~mmseg_clip_wsss.models.text.DescriptionTargets` -- times the
source's ``loss_weight``; and the description contrastive loss between each described image and one
of its descriptions (:class:`~mmseg_clip_wsss.models.losses.DescriptionContrastiveLoss`).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg_clip_wsss.registry import MODELS
from mmseg_clip_wsss.structures import IMAGE_LABELS, image_label_weights

__all__ = ['DescriptionSupervision', 'CAPTIONS_KEY']

#: Meta key of the descriptions of a sample (packed by ``PackWSSSInputs``).
CAPTIONS_KEY = 'captions'


def _captions(sample) -> Optional[List[str]]:
    captions = sample.metainfo.get(CAPTIONS_KEY)
    return list(captions) if captions else None


class DescriptionSupervision(nn.Module):
    """Targets for labelled and described images, and the description contrastive loss.

    Args:
        class_words (Sequence[Sequence[str]]): Per class, its words (the text encoder's class
            prompts: name and synonyms).
        targets (dict, optional): Options of :class:`DescriptionTargets` (``type`` may be left out;
            ``class_words`` and ``background_index`` default to the segmentor's). Defaults to
            ``dict()``.
        loss (dict, optional): A :class:`DescriptionContrastiveLoss` config; None: no contrastive
            term. Defaults to None.
        regions (int): 0: an image is its pooled pixel embedding; ``n`` > 0: the ``n`` x ``n`` grid
            of pooled regions, scored by the best-matching one. Defaults to 0.
        background_index (int, optional): The segmentor's background index. Defaults to 0.
    """

    def __init__(self, class_words: Sequence[Sequence[str]], targets: Optional[dict] = None,
                 loss: Optional[dict] = None, regions: int = 0, background_index: Optional[int] = 0):
        super().__init__()
        cfg = dict(type='DescriptionTargets', class_words=[list(w) for w in class_words],
                   background_index=background_index)
        cfg.update(targets or {})
        self.targets = MODELS.build(cfg)
        self.loss = MODELS.build(loss) if loss is not None else None
        if regions < 0:
            raise ValueError(f'WSSSEncoderDecoder: description_regions must be >= 0, got {regions}.')
        self.regions = int(regions)

    def image_targets(self, data_samples: Sequence, text_encoder, class_embeds: Tensor,
                      device) -> Tuple[Tensor, Optional[Tensor]]:
        """Targets (B, K) and weights ((B, K), or (B,)/None when no image is described).

        Raises:
            KeyError: a sample with neither labels nor descriptions.
        """
        described = [i for i, s in enumerate(data_samples) if IMAGE_LABELS not in s]
        missing = [i for i in described if _captions(data_samples[i]) is None]
        if missing:
            raise KeyError(f'data samples {missing} carry neither `{IMAGE_LABELS}` nor `{CAPTIONS_KEY}`: use '
                           'PackWSSSInputs with a labelled dataset or an image-text dataset.')
        k = class_embeds.shape[0]
        labels = torch.zeros(len(data_samples), k, device=device)
        weight = torch.ones(len(data_samples), k, device=device)
        for i, sample in enumerate(data_samples):
            if i not in described:
                labels[i] = sample.get(IMAGE_LABELS).to(device)
        source = image_label_weights(data_samples, labels)  # (B,), (B, K) with soft tags, or None
        if not described:
            return labels, source
        texts = [_captions(data_samples[i]) for i in described]
        embeds = text_encoder.encode_texts([t for per_image in texts for t in per_image])
        targets, confidence = self.targets(texts, embeds, class_embeds.detach())
        labels[described], weight[described] = targets.to(device), confidence.to(device)
        if source is None:
            return labels, weight
        return labels, weight * (source if source.dim() == 2 else source[:, None])

    def _image_embeds(self, pixel_embeds: Tensor) -> Tensor:
        pixels = F.normalize(pixel_embeds, dim=1)  # (B, D, H, W)
        if not self.regions:
            return pixels.mean(dim=(2, 3))  # (B, D)
        return F.adaptive_avg_pool2d(pixels, self.regions).flatten(2).transpose(1, 2)  # (B, n*n, D)

    def contrastive_loss(self, pixel_embeds: Tensor, data_samples: Sequence, text_encoder,
                         logit_scale) -> Dict[str, Tensor]:
        """The description contrastive loss of the described images (one random description each).

        Every rank must call it (the loss gathers across ranks), also with no described image.
        """
        described = [i for i, s in enumerate(data_samples) if IMAGE_LABELS not in s and _captions(s)]
        images = self._image_embeds(pixel_embeds[described])
        if described:
            chosen = []
            for i in described:
                captions = _captions(data_samples[i])
                chosen.append(captions[int(torch.randint(len(captions), ()))])
            texts = text_encoder.encode_texts(chosen).to(images)
        else:
            texts = images.new_zeros(0, text_encoder.embed_dim)
        return {self.loss.loss_name: self.loss(images, texts, logit_scale)}
