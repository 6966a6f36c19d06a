"""Shared plumbing of the decode heads that learn from image-level labels."""
from abc import abstractmethod
from typing import Dict, List, Optional, Tuple, Union

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.utils import ConfigType, SampleList
from torch import Tensor

from mmseg_clip_wsss.registry import MODELS
from mmseg_clip_wsss.structures import image_label_weights, stack_image_labels
from ..utils import with_background_index

_SUPERVISIONS = ('weak', 'full')


class WeakDecodeHead(BaseDecodeHead):
    """A :class:`BaseDecodeHead` with a weakly supervised (image-level) and a fully supervised mode.

    Subclasses implement :meth:`forward` ``(inputs, text_embeds=None, return_embeds=False)`` returning
    score maps (B, K, H, W) (and pixel embeddings (B, D, H, W) with ``return_embeds``).

    - ``supervision='weak'``: :meth:`loss` reads the image-level labels of the data samples
      (:func:`~mmseg_clip_wsss.structures.stack_image_labels`) and returns :meth:`loss_weak`.
    - ``supervision='full'``: :meth:`loss` is mmseg's per-pixel ``loss_by_feat`` on ``gt_sem_seg``
      with the ``loss_decode`` config (cross-entropy by default).

    The inherited ``conv_seg`` classifier is removed; subclasses build their own scoring layers.

    Args:
        supervision (str): ``'weak'`` or ``'full'``. Defaults to ``'weak'``.
        loss_mlc (dict): Config of the multi-label loss on the score maps (weak mode). Defaults to
            ``dict(type='MultiLabelScoreLoss')``.
        background_index (int, optional): Index of the background class, handed to the losses;
            None when the class list has no background. :class:`WSSSEncoderDecoder` sets it to its
            own. Defaults to 0.
        **kwargs: :class:`BaseDecodeHead` arguments (``in_channels``, ``channels``, ``num_classes``,
            ``loss_decode`` for the full mode, ...).
    """

    def __init__(self,
                 supervision: str = 'weak',
                 loss_mlc: ConfigType = dict(type='MultiLabelScoreLoss'),
                 background_index: Optional[int] = 0,
                 init_cfg=None,
                 **kwargs):
        if supervision not in _SUPERVISIONS:
            raise ValueError(f'{type(self).__name__}: supervision={supervision!r} must be one of '
                             f'{_SUPERVISIONS}.')
        super().__init__(init_cfg=init_cfg, **kwargs)
        del self.conv_seg  # unused: the subclasses score pixels their own way
        self.supervision = supervision
        self.background_index = background_index
        self.loss_mlc = self.build_weak_loss(loss_mlc)

    def conv_stack(self, num_convs: int) -> Tuple[nn.Sequential, int]:
        """``num_convs`` 3x3 conv blocks (the head's conv, norm and act configs): the first from
        ``in_channels``, the others from ``channels``.

        Returns:
            tuple: the blocks (an empty ``nn.Sequential`` for 0) and the channels they output.
        """
        convs = [ConvModule(self.in_channels if i == 0 else self.channels, self.channels, 3, padding=1,
                            conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
                 for i in range(num_convs)]
        return nn.Sequential(*convs), self.channels if num_convs > 0 else self.in_channels

    def build_weak_loss(self, cfg: Optional[ConfigType]):
        """Build a weak loss of this head with the head's ``background_index`` (None: no loss)."""
        cfg = with_background_index(cfg, self.background_index, type(self).__name__)
        return MODELS.build(cfg) if cfg is not None else None

    @property
    def is_weak(self) -> bool:
        """Whether the head is trained from image-level labels."""
        return self.supervision == 'weak'

    @abstractmethod
    def forward(self, inputs: Union[List[Tensor], Tuple[Tensor]], text_embeds: Optional[Tensor] = None,
                return_embeds: bool = False):
        """Score maps (B, K, H, W) (and pixel embeddings (B, D, H, W) with ``return_embeds``)."""

    def loss_weak(self, score_maps: Tensor, pixel_embeds: Tensor, text_embeds: Optional[Tensor],
                  image_labels: Tensor, weight: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Image-level losses.

        Args:
            score_maps (Tensor): (B, K, H, W).
            pixel_embeds (Tensor): (B, D, H, W), the features the scores are computed from.
            text_embeds (Tensor, optional): (K, D) class embeddings (text heads only).
            image_labels (Tensor): (B, K) multi-hot labels (or soft targets in [0, 1]).
            weight (Tensor, optional): (B,) per-image weights of the multi-label loss (the loss weight
                of each image's source), or (B, K) per-image and per-class weights (source weight x
                the confidence of a description's targets or of soft CLIP tags). Defaults to None (all 1).

        Returns:
            dict[str, Tensor]: Named losses.
        """
        self._check_labels(image_labels)
        return {self.loss_mlc.loss_name: self.loss_mlc(score_maps, image_labels.to(score_maps.dtype),
                                                       weight=weight)}

    def loss(self, inputs: Union[List[Tensor], Tuple[Tensor]], batch_data_samples: SampleList,
             train_cfg: ConfigType, text_embeds: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Forward and compute the losses of the configured supervision mode.

        Args:
            inputs (list[Tensor]): Multi-level features.
            batch_data_samples (list[SegDataSample]): With ``gt_image_labels`` (weak mode) or
                ``gt_sem_seg`` (full mode).
            train_cfg (dict): Training config (unused).
            text_embeds (Tensor, optional): (K, D) class embeddings (text heads only).

        Returns:
            dict[str, Tensor]: Named losses.
        """
        if self.is_weak:
            score_maps, pixel_embeds = self.forward(inputs, text_embeds, return_embeds=True)
            labels = stack_image_labels(batch_data_samples).to(score_maps.device)
            return self.loss_weak(score_maps, pixel_embeds, text_embeds, labels,
                                  image_label_weights(batch_data_samples, labels))
        return self.loss_by_feat(self.forward(inputs, text_embeds), batch_data_samples)

    def predict(self, inputs: Union[List[Tensor], Tuple[Tensor]], batch_img_metas: List[dict],
                test_cfg: ConfigType, text_embeds: Optional[Tensor] = None) -> Tensor:
        """Score maps resized to the (padded) input size, (B, K, H, W)."""
        return self.predict_by_feat(self.forward(inputs, text_embeds), batch_img_metas)

    def _check_labels(self, image_labels: Tensor) -> None:
        """Raise a ValueError unless ``image_labels`` is (B, num_classes)."""
        if image_labels.dim() != 2 or image_labels.shape[1] != self.num_classes:
            raise ValueError(f'{type(self).__name__}: image labels of shape {tuple(image_labels.shape)} '
                             f'do not match num_classes={self.num_classes} (expected (B, K)).')
