"""Training-free CLIP pseudo masks in the manner of CLIP-ES (Lin et al., CVPR 2023)."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor

from ..clip_es import (class_aware_affinity_refine, minmax_normalise, sinkhorn_affinity,
                                         softmax_grad_cam)
from mmseg_clip_wsss.datasets.class_names import class_name_key
from mmseg_clip_wsss.registry import MODELS
from mmseg_clip_wsss.structures import stack_image_labels
from ..text.vocabularies import BACKGROUND_WORDS, ClassNames, resolve_class_prompts

__all__ = ['TrainingFreeCLIPES']

_SOFTMAX = ('labels', 'all', 'none')
_AFFINITY = ('attention', 'none')


@MODELS.register_module()
class TrainingFreeCLIPES(BaseModel):
    """CAMs of a frozen CLIP with no training: softmax Grad-CAM + class-aware attention affinity.

    It needs no checkpoint: ``tools/make_pseudo_masks.py CONFIG --out-dir D --eval`` builds it from
    the config (the open_clip weights come from ``backbone.pretrained``) and runs the usual pseudo-mask
    protocol (:class:`~mmseg_clip_wsss.cam.CAMProtocol`) on its :meth:`compute_cams`.

    Per image (CLIP-ES, Lin et al., "CLIP is Also an Efficient Segmenter", CVPR 2023):

    1. Text rows: every foreground class (its names and synonyms in every template, averaged by
       :class:`CLIPPromptTextEncoder`) and every background word as a row of its own.
    2. The image embedding: the tower run to its last block; ``pool='patch_mean'`` takes the mean of
       the last block's patch tokens after ``ln_post`` and ``proj`` (CLIP-ES's choice), ``'tower'``
       the tower's own pooling (class token / attention pooling).
    3. Softmax Grad-CAM (:func:`~mmseg_clip_wsss.models.clip_es.softmax_grad_cam`) of each labelled
       class on ``logit_scale * cos(image, text)``, with the softmax over ``softmax_over``: the
       image's labelled classes + the background words (``'labels'``, CLIP-ES's released code), all
       classes + background words (``'all'``) or no softmax (``'none'``, plain Grad-CAM). ViT: the
       gradient is taken at the last block's ``ln_1`` output; ModifiedResNet: at the last stage.
    4. Class-aware affinity (``affinity='attention'``): ViT -- the mean self-attention of the last
       ``affinity_layers`` blocks (heads averaged, class token dropped), made doubly stochastic
       (``sinkhorn_iters``), symmetrised and squared (``affinity_power``), restricted per class to its
       CAM boxes (``box_threshold``). A ModifiedResNet has no patch self-attention; its attention
       pooling's query and key projections, applied at every position, give the attention map
       instead (the pooling attends from one query only; MaskCLIP reads its values the same way).
       ``affinity='none'`` skips the step.

    The CAMs (B, K, H, W) are min-max normalised per class, zero for classes absent from the labels
    and for the background channel (the protocol's threshold makes the background).

    Args:
        backbone (dict): A :class:`CLIPVisionBackbone` config (frozen; any ``out_indices``).
        text_encoder (dict): A :class:`CLIPPromptTextEncoder` config without ``class_names`` (filled
            in here: the foreground classes + the background words); the same open_clip model.
        class_names (str | Sequence): The dataset's classes in channel order (vocabulary name or list;
            an entry may be a list of synonyms), including the background class at
            ``background_index``.
        background_words (Sequence[str]): Background rows of the softmax. Defaults to
            :data:`BACKGROUND_WORDS` (CLIP-ES's list).
        softmax_over (str): ``'labels'``, ``'all'`` or ``'none'``. Defaults to ``'labels'``.
        pool (str): ``'patch_mean'`` or ``'tower'``. Defaults to ``'patch_mean'``.
        logit_scale (float, optional): Temperature of the scores; None takes the CLIP's learned
            ``logit_scale.exp()`` (100 for OpenAI's weights). Defaults to None.
        affinity (str): ``'attention'`` or ``'none'``. Defaults to ``'attention'``.
        affinity_layers (int): ViT blocks whose attention is averaged. Defaults to 8.
        sinkhorn_iters (int): Column/row normalisation rounds. Defaults to 3.
        affinity_power (int): Power of the symmetrised transition matrix. Defaults to 2.
        box_threshold (float): CAM fraction whose regions' boxes bound the affinity. Defaults to 0.4.
        background_index (int, optional): Background channel of ``class_names``. Defaults to 0.
        data_preprocessor (dict, optional): The segmentation data preprocessor (CLIP's mean and std).
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    #: ``tools/make_pseudo_masks.py`` runs it without a checkpoint.
    training_free = True

    def __init__(self,
                 backbone: dict,
                 text_encoder: dict,
                 class_names: ClassNames,
                 background_words: Sequence[str] = BACKGROUND_WORDS,
                 softmax_over: str = 'labels',
                 pool: str = 'patch_mean',
                 logit_scale: Optional[float] = None,
                 affinity: str = 'attention',
                 affinity_layers: int = 8,
                 sinkhorn_iters: int = 3,
                 affinity_power: int = 2,
                 box_threshold: float = 0.4,
                 background_index: Optional[int] = 0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if softmax_over not in _SOFTMAX:
            raise ValueError(f'TrainingFreeCLIPES: softmax_over={softmax_over!r} must be one of {_SOFTMAX}.')
        if pool not in ('patch_mean', 'tower'):
            raise ValueError(f"TrainingFreeCLIPES: pool={pool!r} must be 'patch_mean' or 'tower'.")
        if affinity not in _AFFINITY:
            raise ValueError(f'TrainingFreeCLIPES: affinity={affinity!r} must be one of {_AFFINITY}.')
        self.backbone = MODELS.build(dict(backbone, frozen=True))
        if self.backbone.arch == 'resnet' and pool == 'patch_mean':
            pool = 'tower'  # a ModifiedResNet has no patch tokens to average: its attention pooling
        prompts = resolve_class_prompts(class_names)
        self.num_classes = len(prompts)
        self.background_index = background_index
        self.foreground = [k for k in range(self.num_classes) if k != background_index]
        taken = {class_name_key(n) for k in self.foreground for n in prompts[k]}
        words = [w for w in background_words if class_name_key(w) not in taken]  # rows of their own
        text_cfg = dict(text_encoder, class_names=[prompts[k] for k in self.foreground] +
                        [[w] for w in words])
        self.text_encoder = MODELS.build(text_cfg)
        self.requires_grad_(False)
        self.num_background_words = len(words)
        self.softmax_over = softmax_over
        self.pool = pool
        self.logit_scale = float(logit_scale or self.backbone.logit_scale)
        self.affinity = affinity
        self.affinity_layers = int(affinity_layers)
        self.sinkhorn_iters = int(sinkhorn_iters)
        self.affinity_power = int(affinity_power)
        self.box_threshold = float(box_threshold)

    def train(self, mode: bool = True):
        """Always in eval mode: nothing here trains."""
        return super().train(False)

    # ------------------------------------------------------------------ text rows
    def _rows(self, image_labels: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """Targets and softmax competitors over the text rows (foreground classes, background words).

        Returns:
            tuple: targets (B, T) bool and competitors (B, T) bool or None.
        """
        labels = image_labels[:, self.foreground] > 0  # (B, K - 1)
        words = labels.new_ones(labels.shape[0], self.num_background_words)  # (B, W)
        targets = torch.cat([labels, torch.zeros_like(words)], dim=1)
        if self.softmax_over == 'none':
            return targets, None
        classes = labels if self.softmax_over == 'labels' else torch.ones_like(labels)
        return targets, torch.cat([classes, words], dim=1)

    # ------------------------------------------------------------------ ViT
    def _vit_last_block_inputs(self, inputs: Tensor) -> Tuple[Tensor, List[Tensor], Tuple[int, int]]:
        """Tokens entering the last block and the head-averaged attention (B, N, N) of every block
        before it (only as many as the affinity uses)."""
        bb = self.backbone
        x, hw = bb.vit_tokens(inputs)  # (B, N, C)
        blocks = bb.transformer.resblocks
        attentions = []
        for i, block in enumerate(blocks[:-1]):
            if self.affinity == 'attention' and i >= len(blocks) - self.affinity_layers:
                x, attn = _block_with_attention(block, x)
                attentions.append(attn)
            else:
                x = block(x)
        return x, attentions, hw

    def _vit_cams(self, inputs: Tensor, text: Tensor, targets: Tensor,
                  competitors: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        bb = self.backbone
        x, attentions, (h, w) = self._vit_last_block_inputs(inputs)
        block = bb.transformer.resblocks[-1]
        if self.affinity == 'attention':
            attentions.append(_block_with_attention(block, x)[1])

        def embed(normed: Tensor) -> Tensor:  # the last block from its ln_1 output on
            out = x + block.ls_1(block.attn(normed, normed, normed, need_weights=False)[0])
            out = out + block.ls_2(block.mlp(block.ln_2(out)))  # (B, N, C)
            if self.pool == 'patch_mean':
                return bb.vit_project(out[:, 1:]).mean(dim=1)
            return bb.pool_tokens(out)

        cams = softmax_grad_cam(block.ln_1(x), embed, text, targets, competitors, self.logit_scale,
                                num_prefix=1)  # (B, T, h * w)
        affinity = None
        if attentions:
            attn = torch.stack(attentions).mean(dim=0)[:, 1:, 1:]  # (B, n, n)
            affinity = sinkhorn_affinity(attn, self.sinkhorn_iters, self.affinity_power)
        return cams.reshape(*cams.shape[:2], h, w), affinity

    # ------------------------------------------------------------------ ModifiedResNet
    def _resnet_cams(self, inputs: Tensor, text: Tensor, targets: Tensor,
                     competitors: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        bb = self.backbone
        x = bb.stem(inputs)
        x = bb.layer4(bb.layer3(bb.layer2(bb.layer1(x))))  # (B, C, h, w)
        b, c, h, w = x.shape

        def embed(tokens: Tensor) -> Tensor:
            return bb.attention_pool(tokens.transpose(1, 2).reshape(b, c, h, w))

        cams = softmax_grad_cam(x.flatten(2).transpose(1, 2), embed, text, targets, competitors,
                                self.logit_scale)  # (B, T, h * w)
        affinity = None
        if self.affinity == 'attention':
            affinity = sinkhorn_affinity(_pool_self_attention(bb, x), self.sinkhorn_iters,
                                         self.affinity_power)
        return cams.reshape(b, -1, h, w), affinity

    # ------------------------------------------------------------------ CAMs
    def compute_cams(self, inputs: Tensor, image_labels: Tensor) -> Tensor:
        """CAMs of normalised images, restricted to their labels (works under ``torch.no_grad``).

        Args:
            inputs (Tensor): (B, 3, H, W) images normalised with the CLIP's mean and std.
            image_labels (Tensor): (B, K) multi-hot labels in the channel order of ``class_names``.

        Returns:
            Tensor: (B, K, H, W) in [0, 1]; zero for absent classes and the background channel.
        """
        if image_labels.dim() != 2 or image_labels.shape[1] != self.num_classes:
            raise ValueError(f'TrainingFreeCLIPES: image_labels must be (B, {self.num_classes}), got '
                             f'{tuple(image_labels.shape)}.')
        with torch.no_grad():
            text = self.text_encoder()  # (T, D)
        targets, competitors = self._rows(image_labels.to(inputs.device))
        with torch.no_grad():
            cams_of = self._vit_cams if self.backbone.arch == 'vit' else self._resnet_cams
            rows, affinity = cams_of(inputs, text, targets, competitors)  # (B, T, h, w)
        rows = minmax_normalise(rows[:, :len(self.foreground)])  # (B, K - 1, h, w)
        if affinity is not None:
            rows = class_aware_affinity_refine(rows, affinity, self.box_threshold)
        cams = rows.new_zeros(rows.shape[0], self.num_classes, *rows.shape[-2:])
        cams[:, self.foreground] = rows
        cams = F.interpolate(cams, size=inputs.shape[-2:], mode='bilinear', align_corners=False)
        return minmax_normalise(cams) * (image_labels > 0).to(cams)[:, :, None, None]

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor') -> Union[Tensor, Dict]:
        """``mode='tensor'``: :meth:`compute_cams` with the samples' ``gt_image_labels``.

        Raises:
            ValueError: for ``mode='loss'`` (nothing trains) or ``'predict'``.
        """
        if mode != 'tensor':
            raise ValueError(f"TrainingFreeCLIPES: mode={mode!r} is not supported; it only makes CAMs "
                             "(mode='tensor', or tools/make_pseudo_masks.py).")
        return self.compute_cams(inputs, stack_image_labels(data_samples).to(inputs.device))


def _block_with_attention(block, x: Tensor) -> Tuple[Tensor, Tensor]:
    """An open_clip ``ResidualAttentionBlock`` on (B, N, C) tokens, also returning its
    head-averaged attention (B, N, N)."""
    normed = block.ln_1(x)
    out, attn = block.attn(normed, normed, normed, need_weights=True, average_attn_weights=True)
    x = x + block.ls_1(out)
    return x + block.ls_2(block.mlp(block.ln_2(x))), attn


def _pool_self_attention(backbone, x: Tensor) -> Tensor:
    """Self-attention among the positions of a ModifiedResNet's last stage (B, C, h, w), from its
    attention pooling's query and key projections (heads averaged) -> (B, h * w, h * w)."""
    pool = backbone.attnpool
    b, c, h, w = x.shape
    pos = backbone.resize_pool_pos_embed((h, w))[1:]  # (h * w, C)
    tokens = x.flatten(2).transpose(1, 2) + pos.to(x.dtype)  # (B, n, C)
    heads = pool.num_heads
    q = pool.q_proj(tokens).reshape(b, -1, heads, c // heads).transpose(1, 2)  # (B, heads, n, c')
    k = pool.k_proj(tokens).reshape(b, -1, heads, c // heads).transpose(1, 2)
    attn = (q @ k.transpose(-2, -1) / (c // heads) ** 0.5).softmax(dim=-1)  # (B, heads, n, n)
    return attn.mean(dim=1)
