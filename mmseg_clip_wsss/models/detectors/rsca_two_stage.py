"""Two-stage detector that trains its RSC-A neck by regional semantic contrast."""
from typing import Dict, Optional, Tuple, Union

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.structures import SampleList
from mmdet.structures.bbox import get_box_tensor
from torch import Tensor

from mmseg_clip_wsss.registry import DET_MODELS


def instance_image_labels(data_samples: SampleList, num_classes: int,
                          device: Optional[torch.device] = None) -> Tensor:
    """Multi-hot image-level labels from the instance labels of every sample.

    Args:
        data_samples (list[DetDataSample]): Samples with ``gt_instances.labels`` (N_i,) in [0, K).
        num_classes (int): K.
        device (torch.device, optional): Device of the result. Defaults to the labels' device.

    Returns:
        Tensor: (B, K) float, 1 where the image holds at least one instance of the class.
    """
    rows = []
    for i, sample in enumerate(data_samples):
        labels = sample.gt_instances.labels.long()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f'sample {i}: instance labels {labels.unique().tolist()} are outside '
                             f'[0, {num_classes}); the neck/bbox head num_classes must match the '
                             "dataset's classes.")
        row = torch.zeros(num_classes, device=labels.device)
        row[labels] = 1.0
        rows.append(row)
    out = torch.stack(rows)  # (B, K)
    return out if device is None else out.to(device)


def box_activation_maps(data_samples: SampleList, num_classes: int, feat_size: Tuple[int, int],
                        input_size: Tuple[int, int], device: Optional[torch.device] = None) -> Tensor:
    """Class activation maps made of the ground-truth boxes.

    A cell of the (h, w) grid over the padded batch input (H, W) is 1 for class k when it overlaps
    a box of class k (so every box with a positive area covers at least one cell), else 0.

    Args:
        data_samples (list[DetDataSample]): Samples with ``gt_instances.bboxes`` (N_i, 4) in input
            pixels (x1, y1, x2, y2) and ``gt_instances.labels`` (N_i,).
        num_classes (int): K.
        feat_size (tuple[int, int]): (h, w) of the maps.
        input_size (tuple[int, int]): (H, W) of the padded batch input.
        device (torch.device, optional): Device of the result.

    Returns:
        Tensor: (B, K, h, w) float in {0, 1}.
    """
    h, w = feat_size
    stride_y, stride_x = input_size[0] / h, input_size[1] / w
    maps = []
    for sample in data_samples:
        boxes = get_box_tensor(sample.gt_instances.bboxes).float().to(device)  # (N, 4)
        labels = sample.gt_instances.labels.long().to(boxes.device)  # (N, )
        cells_y = torch.arange(h, device=boxes.device, dtype=torch.float32) * stride_y  # (h, )
        cells_x = torch.arange(w, device=boxes.device, dtype=torch.float32) * stride_x  # (w, )
        in_y = (cells_y[None] < boxes[:, 3:4]) & (cells_y[None] + stride_y > boxes[:, 1:2])  # (N, h)
        in_x = (cells_x[None] < boxes[:, 2:3]) & (cells_x[None] + stride_x > boxes[:, 0:1])  # (N, w)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # (N, )
        masks = (in_y[:, :, None] & in_x[:, None, :] & valid[:, None, None]).float()  # (N, h, w)
        cams = torch.zeros(num_classes, h, w, device=boxes.device)
        cams.index_add_(0, labels, masks)
        maps.append(cams.clamp_(max=1.0))
    return torch.stack(maps)  # (B, K, h, w)


class _NeckOutputs(tuple):
    """The neck's output levels, handed to ``TwoStageDetector.loss`` in place of the images (its
    only use of them is :meth:`RSCATwoStageDetector.extract_feat`)."""


@DET_MODELS.register_module()
class RSCATwoStageDetector(TwoStageDetector):
    """mmdet ``TwoStageDetector`` (Faster / Mask R-CNN) with the RSC-A regional contrast.

    Forward, RPN, RoI heads and prediction are mmdet's. In :meth:`loss` the neck
    (:class:`RSCAFPN` / :class:`RSCANeck`) also returns its fused map, and
    ``neck.region_contrast_loss(fused, cams, image_labels)`` adds the region-memory InfoNCE loss
    (``neck.loss_region_nce``) and updates the memory bank, with

    - ``image_labels`` (B, K): multi-hot labels derived from ``gt_instances.labels`` -- the same
      labels whether the boxes are ground truth or come from stage-1 pseudo masks;
    - ``cams`` (B, K, h, w): the boxes of every class rasterised on the fused map's grid
      (:func:`box_activation_maps`), so each region embedding is the mean fused feature inside the
      class's boxes.

    Configs swap ``type='FasterRCNN'`` / ``'MaskRCNN'`` for ``'RSCATwoStageDetector'``; the other keys
    are the same.

    Args:
        region_contrast (bool): Add the neck's regional contrast loss and memory update in training.
            Defaults to True.
        **kwargs: ``TwoStageDetector`` arguments (``backbone``, ``neck``, ``rpn_head``, ``roi_head``,
            ``train_cfg``, ``test_cfg``, ``data_preprocessor``, ``init_cfg``).
    """

    def __init__(self, region_contrast: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.region_contrast = bool(region_contrast)
        if self.region_contrast and not (self.with_neck and hasattr(self.neck, 'region_contrast_loss')):
            raise ValueError('RSCATwoStageDetector: region_contrast=True needs an RSC-A neck '
                             "(neck=dict(type='RSCAFPN', ...)); set region_contrast=False for other "
                             'necks.')
        if self.region_contrast:
            head_classes = getattr(getattr(self.roi_head, 'bbox_head', None), 'num_classes', None)
            if isinstance(head_classes, int) and head_classes != self.neck.num_classes:
                raise ValueError(f'RSCATwoStageDetector: neck.num_classes={self.neck.num_classes} but '
                                 f'roi_head.bbox_head.num_classes={head_classes}; set both to the number '
                                 'of detection classes.')

    def extract_feat(self, batch_inputs: Union[Tensor, _NeckOutputs]) -> Tuple[Tensor]:
        """Backbone + neck of images (B, 3, H, W); neck outputs that :meth:`loss` computed already
        pass through."""
        if isinstance(batch_inputs, _NeckOutputs):
            return tuple(batch_inputs)
        return super().extract_feat(batch_inputs)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """mmdet's two-stage losses plus ``neck.loss_region_nce`` (see the class docstring).

        The neck runs once, returning its outputs and its fused map; mmdet's losses get the outputs
        (through :meth:`extract_feat`), the regional contrast the fused map.

        Args:
            batch_inputs (Tensor): (B, 3, H, W).
            batch_data_samples (list[DetDataSample]): Samples with ``gt_instances``.

        Returns:
            dict[str, Tensor]: Losses.
        """
        if not self.region_contrast:
            return super().loss(batch_inputs, batch_data_samples)
        outs, fused = self.neck(self.backbone(batch_inputs), return_fused=True)
        losses = super().loss(_NeckOutputs(outs), batch_data_samples)
        num_classes = self.neck.num_classes
        labels = instance_image_labels(batch_data_samples, num_classes, fused.device)  # (B, K)
        cams = box_activation_maps(batch_data_samples, num_classes, fused.shape[-2:],
                                   batch_inputs.shape[-2:], fused.device)  # (B, K, h, w)
        region_losses = self.neck.region_contrast_loss(fused, cams, labels)
        losses.update({f'neck.{k}': v for k, v in region_losses.items()})
        return losses
