"""Bbox head whose classifier is the class text embeddings (detection)."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from torch import Tensor

from mmseg_clip_wsss.registry import DET_MODELS
from ..utils import clamped_scale, register_logit_scale

BACKGROUND_MODES = ('embedding', 'bias')


@DET_MODELS.register_module()
class TextEmbeddingBBoxHead(Shared2FCBBoxHead):
    """``Shared2FCBBoxHead`` that scores RoI features against class text embeddings.

    The RoI feature goes through mmdet's two shared fcs; ``fc_cls`` (kept under mmdet's name, so its
    init config applies) projects it into the text embedding space (D). The classification logits
    (N, K + 1) are, as mmdet expects, the K object classes followed by the background
    (label ``K``)::

        objects:     scale * cos(proj(x), text_k)          k = 0 .. K-1
        background:  scale * cos(proj(x), background)      background='embedding'
                     background_bias (learnable scalar)    background='bias'

    with ``scale = exp(logit_scale)`` (learnable, clamped to ``max_logit_scale``). The K text
    embeddings come from ``text_encoder`` (a :class:`CLIPPromptTextEncoder`, whose class list is the
    detection classes without ``'background'``, e.g. ``COCO_CLASSES[1:]``); a frozen encoder is run
    once and cached, learnable prompts are run once per forward. Box regression, targets, losses and
    post-processing are mmdet's.

    Args:
        text_encoder (dict): Config of the text encoder (``type='CLIPPromptTextEncoder'``); its
            ``num_classes`` must equal ``num_classes``.
        background (str): ``'embedding'`` (a learnable unit vector scored like a class) or
            ``'bias'`` (a learnable logit shared by all RoIs). Defaults to ``'embedding'``.
        logit_scale_init (float): Initial scale (CLIP: 1 / 0.07). Defaults to 1 / 0.07.
        max_logit_scale (float): Upper clamp of the scale. Defaults to 100.
        learnable_logit_scale (bool): Learn the (log) scale. Defaults to True.
        **kwargs: ``Shared2FCBBoxHead`` arguments (``in_channels``, ``fc_out_channels``,
            ``roi_feat_size``, ``num_classes``, ``bbox_coder``, ``reg_class_agnostic``, ``loss_cls``,
            ``loss_bbox``, ...).
    """

    def __init__(self,
                 text_encoder: dict,
                 background: str = 'embedding',
                 logit_scale_init: float = 1 / 0.07,
                 max_logit_scale: float = 100.0,
                 learnable_logit_scale: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        if not self.with_cls:
            raise ValueError('TextEmbeddingBBoxHead classifies with text embeddings: with_cls must be '
                             'True.')
        if self.custom_cls_channels:
            raise ValueError('TextEmbeddingBBoxHead gives K + 1 softmax logits; use a loss_cls without '
                             'custom_cls_channels (e.g. CrossEntropyLoss).')
        if background not in BACKGROUND_MODES:
            raise ValueError(f'TextEmbeddingBBoxHead: background={background!r} must be one of '
                             f'{BACKGROUND_MODES}.')
        self.text_encoder = DET_MODELS.build(text_encoder)
        names = list(self.text_encoder.class_names)
        if names and names[0].lower() == 'background':
            raise ValueError(
                "TextEmbeddingBBoxHead: the text encoder's class_names start with 'background'; a "
                'detection class list has the object classes only (for COCO: '
                'mmseg_clip_wsss.models.text.COCO_CLASSES[1:]); the background is handled by the head.')
        if self.text_encoder.num_classes != self.num_classes:
            raise ValueError(
                f'TextEmbeddingBBoxHead: num_classes={self.num_classes} but the text encoder has '
                f'{self.text_encoder.num_classes} class names; give text_encoder.class_names one name '
                'per detection class, in dataset order.')
        self.embed_dim = int(self.text_encoder.embed_dim)
        self.background = background
        # the projection into the text space replaces the (K + 1)-way linear classifier
        self.fc_cls = nn.Linear(self.cls_last_dim, self.embed_dim)
        if background == 'embedding':
            generator = torch.Generator().manual_seed(0)
            init = torch.randn(self.embed_dim, generator=generator)
            self.background_embedding = nn.Parameter(init / init.norm())  # (D, )
        else:
            self.background_bias = nn.Parameter(torch.zeros(()))
        register_logit_scale(self, logit_scale_init, max_logit_scale, learnable_logit_scale)

    @property
    def scale(self) -> Tensor:
        """Current multiplicative logit scale, ``exp(logit_scale)`` clamped to ``max_logit_scale``."""
        return clamped_scale(self.logit_scale, self.max_logit_scale)

    def classify(self, roi_embeds: Tensor, text_embeds: Optional[Tensor] = None) -> Tensor:
        """Logits of RoI embeddings against the class text embeddings and the background.

        Args:
            roi_embeds (Tensor): Projected RoI features, (N, D).
            text_embeds (Tensor, optional): Class embeddings (K, D); None runs ``text_encoder``.

        Returns:
            Tensor: (N, K + 1) logits, background last.
        """
        if text_embeds is None:
            text_embeds = self.text_encoder()  # (K, D)
        roi_embeds = F.normalize(roi_embeds.float(), dim=1)  # (N, D)
        text_embeds = F.normalize(text_embeds.float(), dim=1)
        scale = self.scale.float()
        if self.background == 'embedding':
            background = F.normalize(self.background_embedding.float(), dim=0)[None]  # (1, D)
            return scale * roi_embeds @ torch.cat([text_embeds, background]).t()  # (N, K + 1)
        objects = scale * roi_embeds @ text_embeds.t()  # (N, K)
        background = self.background_bias.float().expand(objects.shape[0], 1)  # (N, 1)
        return torch.cat([objects, background], dim=1)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """RoI features (N, C, S, S) -> ``(cls_score (N, K + 1), bbox_pred (N, 4 or 4K))``."""
        roi_embeds, bbox_pred = super().forward(x)
        return self.classify(roi_embeds), bbox_pred
