"""Plain CAM classifier head (the text-free baseline)."""
from typing import List, Optional, Tuple, Union

import torch.nn as nn
from torch import Tensor

from mmseg_clip_wsss.registry import MODELS
from .weak_decode_head import WeakDecodeHead


@MODELS.register_module()
class CAMClassifierHead(WeakDecodeHead):
    """A multi-label 1x1-conv classifier applied at every pixel: its output *is* the CAM.

    ``num_convs`` optional 3x3 conv blocks, then a 1x1 conv to K logits per pixel -> (B, K, H, W).
    With global average pooling in ``loss_mlc`` this is exactly the classic CAM network (GAP + linear
    classifier, whose weights applied per pixel give the class activation maps). No text, no memory.
    Class embeddings passed to :meth:`forward` are ignored, so the same segmentor runs it.

    Args:
        in_channels (int): Channels of the selected input feature.
        channels (int): Channels of the conv blocks (unused when ``num_convs=0``).
        num_classes (int): Number of classes K.
        num_convs (int): 3x3 conv blocks before the classifier. Defaults to 0.
        in_index (int): Input feature index. Defaults to -1 (the backbone's last level).
        dropout_ratio (float): Dropout before the classifier. Defaults to 0.
        **kwargs: :class:`WeakDecodeHead` / ``BaseDecodeHead`` arguments.
    """

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 num_classes: int,
                 num_convs: int = 0,
                 in_index: int = -1,
                 dropout_ratio: float = 0.0,
                 **kwargs):
        kwargs.setdefault('loss_mlc', dict(type='MultiLabelScoreLoss', pooling='gap'))
        super().__init__(in_channels=in_channels, channels=channels, num_classes=num_classes,
                         in_index=in_index, dropout_ratio=dropout_ratio, **kwargs)
        self.convs, out_channels = self.conv_stack(num_convs)
        self.classifier = nn.Conv2d(out_channels, num_classes, 1, bias=False)

    def forward(self, inputs: Union[List[Tensor], Tuple[Tensor]], text_embeds: Optional[Tensor] = None,
                return_embeds: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Per-pixel class logits (B, K, H, W) [, the features they come from (B, C, H, W)]."""
        x = self.convs(self._transform_inputs(inputs))  # (B, C, H, W)
        if self.dropout is not None:
            x = self.dropout(x)
        scores = self.classifier(x)  # (B, K, H, W)
        return (scores, x) if return_embeds else scores
