"""Training-free CLIP pseudo masks in the manner of CLIP-ES (Lin et al., CVPR 2023)."""
import copy
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel
from PIL import Image
from torch import Tensor

from mmseg_clip_wsss.datasets.class_names import class_name_key
from mmseg_clip_wsss.registry import MODELS
from mmseg_clip_wsss.structures import stack_image_labels
from ..clip_es import (BOX_RULES, attention_pool_grad_cam, class_aware_affinity_refine,
                       closed_form_supported, minmax_normalise, sinkhorn_affinity, softmax_grad_cam,
                       vit_last_block_grad_cam)
from ..data_preprocessor import denormalise_images, normalise_images
from ..text.learned_prompts import clip_fingerprint, load_learned_prompts, read_learned_prompts
from ..text.vocabularies import BACKGROUND_WORDS, ClassNames, resolve_class_prompts

__all__ = ['TrainingFreeCLIPES']

_SOFTMAX = ('labels', 'all', 'none')
_AFFINITY = ('attention', 'none')
_GRAD_CAM = ('closed_form', 'autograd')
_GRAD_CAM_DTYPES = (None, 'float32', 'bfloat16', 'float16')
#: Share of the pseudo-mask pixels at least whose label with ``grad_cam_dtype='bfloat16'`` is
#: float32's (the tests check it on a tiny ViT; random ViT-B/16 weights gave 99.25-99.98% in
#: docs/benchmarks.md, random weights making the rounding most visible).
GRAD_CAM_LOW_PRECISION_AGREEMENT = 0.99


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

    The CAMs (B, K, H, W) are min-max normalised per class on the patch grid, resized bilinearly to
    the input size, zero for classes absent from the labels and for the background channel (the
    protocol's background rule makes the background).

    Parity with the authors' code (linyq2117/CLIP-ES, checked step by step in docs/clip_es.md). With
    ``readable_names=False``, ``resize_to_multiple=16``, ``box_rule='clip_es'``,
    ``rescale_output=False`` and ``float16_output=True`` (the settings of ``configs/clip_es/*``, with
    the backbone's ``pos_embed_float16=True``) the CAMs are computed as its per-image pipeline
    computes them: class names prompted as written, each side rounded *up* to a multiple of 16 with
    PIL's bicubic filter, the boxes of :func:`~mmseg_clip_wsss.models.clip_es.cam_box_mask` drawn by
    its rule, the refined CAM resized once from the patch grid to the image without a second
    normalisation and stored as float16. Always as there: Grad-CAM min-max normalised twice (once per
    layer, once after averaging the layers; the 1e-7 of the denominator matters for maps of tiny
    range) and the affinity applied in its order. The project's own choices, each a named option:
    readable names (``'dining table'``), the protocol's input size (``resize_to_multiple=None``),
    boxes that keep their last row and column (``'exact'``), maps scaled to max 1 again after the
    resize (``rescale_output=True``) and float32 maps.

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
        box_threshold (float): CAM fraction whose regions' boxes bound the affinity. Defaults to 0.4
            (CLIP-ES: 0.4 on VOC, 0.7 on COCO).
        box_rule (str): How the boxes are drawn, ``'clip_es'`` or ``'exact'``
            (:func:`~mmseg_clip_wsss.cam.clip_es.cam_box_mask`). Defaults to ``'exact'``.
        readable_names (bool): Prompt readable spellings (``'diningtable'`` -> ``'dining table'``);
            False prompts the names as written (CLIP-ES). Defaults to True.
        resize_to_multiple (int, optional): Resize every input so that each side is rounded *up* to a
            multiple of it, from its 8-bit pixels with PIL's bicubic filter, before the tower (CLIP-ES:
            16); the CAMs come back at the input's own size. None: the inputs as given (the
            protocol's ``size_divisor`` makes them fit the patch grid). Defaults to None.
        float16_output (bool): Round the CAMs to float16, as CLIP-ES stores them before it decides
            the labels (with and without CRF) from the stored values. Defaults to False.
        rescale_output (bool): Min-max normalise the CAMs again after the resize to the input size
            (bilinear upsampling lowers a peak that falls between samples); CLIP-ES does not.
            Defaults to True.
        background_index (int, optional): Background channel of ``class_names``. Defaults to 0.
        prompts (str, optional): A learned-prompts file (``tools/tune_prompts.py``,
            :mod:`~mmseg_clip_wsss.models.text.learned_prompts`): the text rows are prompted with its
            learned context instead of ``text_encoder.prompt``; everything else is unchanged. The
            file must have been tuned for the same rows (classes, synonyms, background words) and
            the same CLIP, else :class:`~mmseg_clip_wsss.models.text.LearnedPromptsMismatchError`.
            None: the config's prompts (hand-written templates). Defaults to None.
        grad_cam (str): How the Grad-CAM is computed: ``'closed_form'`` (the backward pass written
            out for every class at once: ViT,
            :func:`~mmseg_clip_wsss.models.clip_es.vit_last_block_grad_cam`, the last block's, the
            attention weights of the affinity taken from the same forward pass; ModifiedResNet,
            :func:`~mmseg_clip_wsss.models.clip_es.attention_pool_grad_cam`, the attention
            pooling's) or ``'autograd'`` (one backward pass per class). The same CAMs to float
            rounding; for the ViT the closed form costs about 0.05x of a ViT-B/16 tower pass per
            class instead of 0.1x. A ViT block or pooling it does not cover
            (:func:`~mmseg_clip_wsss.models.clip_es.closed_form_supported`) uses autograd.
            Defaults to ``'closed_form'``.
        grad_cam_dtype (str, optional): ``'bfloat16'`` or ``'float16'``: the closed-form Grad-CAM of
            a ViT (the last block's forward pass, its attention for the affinity and the backward
            pass of every class) in that precision, on a copy of the last block's weights; the
            blocks before it, the scores and the rest of the pipeline stay float32. On a CPU with
            AVX512-BF16 or AMX, or a recent GPU, that part costs about half as much; elsewhere
            bfloat16 is emulated and slower. The labels differ from float32's at up to about one
            pixel in a hundred on random weights (:data:`GRAD_CAM_LOW_PRECISION_AGREEMENT`;
            docs/benchmarks.md has the figures).
            Only the ViT closed form has a per-class pass worth it (a ModifiedResNet's is a few (n, C)
            products): a ModifiedResNet tower or ``grad_cam='autograd'`` refuses it, and where the
            closed form does not apply (a pooling after ``ln_post``, an unsupported block) the
            autograd fallback runs in float32 and says so once. None or ``'float32'``: float32,
            CLIP-ES's own arithmetic. Defaults to None.
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
                 box_rule: str = 'exact',
                 readable_names: bool = True,
                 resize_to_multiple: Optional[int] = None,
                 rescale_output: bool = True,
                 float16_output: bool = False,
                 background_index: Optional[int] = 0,
                 prompts: Optional[str] = None,
                 grad_cam: str = 'closed_form',
                 grad_cam_dtype: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        _check_options(softmax_over, pool, affinity, box_rule, resize_to_multiple, grad_cam, grad_cam_dtype)
        prompts_file = prompts  # (``prompts`` names the class prompts below)
        self.backbone = MODELS.build(dict(backbone, frozen=True))
        if self.backbone.arch == 'resnet' and pool == 'patch_mean':
            pool = 'tower'  # a ModifiedResNet has no patch tokens to average: its attention pooling
        prompts = resolve_class_prompts(class_names, 'TrainingFreeCLIPES class_names', readable_names)
        self.num_classes = len(prompts)
        self.background_index = background_index
        self.foreground = [k for k in range(self.num_classes) if k != background_index]
        taken = {class_name_key(n) for k in self.foreground for n in prompts[k]}
        words = [w for w in background_words if class_name_key(w) not in taken]  # rows of their own
        text_cfg = dict(text_encoder, class_names=[prompts[k] for k in self.foreground] +
                        [[w] for w in words], readable_names=readable_names)
        record = read_learned_prompts(prompts_file) if prompts_file else None
        if record is not None:
            text_cfg['prompt'] = dict(record['prompt'])
        self.text_encoder = MODELS.build(text_cfg)
        self.prompts = prompts_file
        if record is not None:
            self._load_prompts(prompts_file)
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
        self.box_rule = box_rule
        self.resize_to_multiple = None if resize_to_multiple is None else int(resize_to_multiple)
        self.rescale_output = bool(rescale_output)
        self.float16_output = bool(float16_output)
        self.grad_cam = grad_cam
        self.grad_cam_dtype = None if grad_cam_dtype in (None, 'float32') else getattr(torch, grad_cam_dtype)
        if self.grad_cam_dtype is not None and self.backbone.arch == 'resnet':
            raise ValueError(f'TrainingFreeCLIPES: grad_cam_dtype={grad_cam_dtype!r} applies to the closed-form '
                             "Grad-CAM of a ViT tower; this backbone is a ModifiedResNet (its closed form "
                             'has no per-class backward pass to speed up): set grad_cam_dtype=None.')
        self._low_precision_block = None  # (key, last block, ln_post, proj) in grad_cam_dtype; a
        # tuple, so the copies are no submodules (not in the state dict, not moved by .to())
        self._fallback_said = False

    def train(self, mode: bool = True):
        """Always in eval mode: nothing here trains."""
        return super().train(False)

    # ------------------------------------------------------------------ learned prompts
    @property
    def text_rows(self) -> List[List[str]]:
        """The prompted names of every text row: the foreground classes, then the background words."""
        return [list(p) for p in self.text_encoder.class_prompts]

    def clip_fingerprint(self) -> str:
        """:func:`~mmseg_clip_wsss.models.text.clip_fingerprint` of the image and text towers."""
        return clip_fingerprint(self.backbone, self.text_encoder.text_tower)

    def _load_prompts(self, path: str) -> None:
        """Check a learned-prompts file against the rows and the CLIP and load its context."""
        record = load_learned_prompts(path, self.text_rows, self.clip_fingerprint())
        self.text_encoder.prompt_learner.load_state_dict(record['state_dict'])

    def image_embeddings(self, inputs: Tensor) -> Tensor:
        """The image embeddings that the Grad-CAM scores against the text rows, without gradients
        through the towers' weights.

        Pooled as :meth:`compute_cams` pools (``pool``: the mean of the last block's projected patch
        tokens, or the tower's own pooling; a ModifiedResNet's attention pooling), from the inputs
        resized as there (``resize_to_multiple``).

        Args:
            inputs (Tensor): (B, 3, H, W) images normalised with the CLIP's mean and std.

        Returns:
            Tensor: (B, D) embeddings (not normalised).
        """
        x = self._resize_inputs(inputs)
        bb = self.backbone
        if bb.arch == 'resnet' or self.pool == 'tower':
            return bb.encode_image(x)
        tokens, _ = bb.vit_tokens(x)
        return bb.vit_project(bb.transformer(tokens)[:, 1:]).mean(dim=1)

    def region_embeddings(self, inputs: Tensor) -> Tensor:
        """Joint-space embeddings of every position of the last block / stage: ViT -- its projected
        patch tokens (``ln_post``, ``proj``); ModifiedResNet -- the value and output projections of
        the attention pooling at every position (MaskCLIP, Zhou et al. ECCV 2022). The image
        embedding of a ModifiedResNet is their attention-weighted sum, so they are what its Grad-CAM
        weighs.

        Args:
            inputs (Tensor): (B, 3, H, W) images normalised with the CLIP's mean and std.

        Returns:
            Tensor: (B, h * w, D) embeddings (not normalised).
        """
        x = self._resize_inputs(inputs)
        bb = self.backbone
        if bb.arch == 'resnet':
            x = bb.layer4(bb.layer3(bb.layer2(bb.layer1(bb.stem(x)))))
            return bb.resnet_project(x).flatten(2).transpose(1, 2)
        tokens, _ = bb.vit_tokens(x)
        return bb.vit_project(bb.transformer(tokens)[:, 1:])

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
        token_weights = self._token_weights(x.shape[1])
        if self.grad_cam == 'closed_form' and token_weights is not None and closed_form_supported(block):
            block, ln_post, proj = self._grad_cam_weights()
            cams, attn = vit_last_block_grad_cam(block, x.to(proj.dtype), ln_post, proj, token_weights.to(proj.dtype),
                                                 text, targets, competitors, self.logit_scale)  # (B, T, h * w)
            if self.affinity == 'attention':
                attentions.append(attn.to(x.dtype))
        else:
            if self.grad_cam_dtype is not None and not self._fallback_said:
                print_log(f'TrainingFreeCLIPES: grad_cam_dtype={self.grad_cam_dtype} is not used: the closed form '
                          'does not cover this tower (its pooling or last block), and the autograd Grad-CAM '
                          'runs in float32.', logger='current', level=logging.WARNING)
                self._fallback_said = True
            normed = block.ln_1(x)  # (B, N, C)
            if self.affinity == 'attention':
                attentions.append(_attention_weights(block.attn, normed))

            def embed(normed: Tensor) -> Tensor:  # the last block from its ln_1 output on
                out = x + block.ls_1(block.attn(normed, normed, normed, need_weights=False)[0])
                out = out + block.ls_2(block.mlp(block.ln_2(out)))  # (B, N, C)
                if self.pool == 'patch_mean':
                    return bb.vit_project(out[:, 1:]).mean(dim=1)
                return bb.pool_tokens(out)

            cams = softmax_grad_cam(normed, embed, text, targets, competitors, self.logit_scale,
                                    num_prefix=1)  # (B, T, h * w)
        affinity = None
        if attentions:
            attn = torch.stack(attentions).mean(dim=0)[:, 1:, 1:]  # (B, n, n)
            affinity = sinkhorn_affinity(attn, self.sinkhorn_iters, self.affinity_power)
        return cams.reshape(*cams.shape[:2], h, w), affinity

    def _grad_cam_weights(self) -> Tuple[torch.nn.Module, torch.nn.Module, Tensor]:
        """The last block, ``ln_post`` and ``proj`` of the closed-form Grad-CAM: the tower's own, or
        with ``grad_cam_dtype`` copies in that dtype, made again when a weight changed (loaded,
        moved to another device)."""
        bb = self.backbone
        block, ln_post, proj = bb.transformer.resblocks[-1], bb.ln_post, bb.proj
        if self.grad_cam_dtype is None:
            return block, ln_post, proj
        sources = [*block.parameters(), *ln_post.parameters(), proj]
        key = tuple((p.data_ptr(), p._version, p.device) for p in sources)
        if self._low_precision_block is None or self._low_precision_block[0] != key:
            dtype = self.grad_cam_dtype
            self._low_precision_block = (key, copy.deepcopy(block).to(dtype), copy.deepcopy(ln_post).to(dtype),
                                         proj.detach().to(dtype))
        return self._low_precision_block[1:]

    def _token_weights(self, num_tokens: int) -> Optional[Tensor]:
        """(N,) weight of every output token of the last block in the image embedding (after
        ``ln_post``); None where the tower pools after its LayerNorm (``final_ln_after_pool`` with a
        patch mean), which no token weighting can express."""
        bb = self.backbone
        weights = torch.zeros(num_tokens)
        if self.pool == 'patch_mean' or bb.pool_type == 'avg':
            if self.pool != 'patch_mean' and bb.final_ln_after_pool:
                return None
            weights[1:] = 1 / (num_tokens - 1)
        else:
            weights[0] = 1  # the class token
        return weights

    # ------------------------------------------------------------------ ModifiedResNet
    def _resnet_cams(self, inputs: Tensor, text: Tensor, targets: Tensor,
                     competitors: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        bb = self.backbone
        x = bb.stem(inputs)
        x = bb.layer4(bb.layer3(bb.layer2(bb.layer1(x))))  # (B, C, h, w)
        b, c, h, w = x.shape
        closed_form = self.grad_cam == 'closed_form'
        # the pooling's pass also gives the attention among the positions (the affinity's)
        cams, attn = attention_pool_grad_cam(x, bb.attnpool, bb.resize_pool_pos_embed((h, w)), text,
                                             targets if closed_form else torch.zeros_like(targets),
                                             competitors, self.logit_scale,
                                             position_attention=self.affinity == 'attention')  # (B, T, h * w)
        if not closed_form:
            def embed(tokens: Tensor) -> Tensor:
                return bb.attention_pool(tokens.transpose(1, 2).reshape(b, c, h, w))

            cams = softmax_grad_cam(x.flatten(2).transpose(1, 2), embed, text, targets, competitors,
                                    self.logit_scale)  # (B, T, h * w)
        affinity = None
        if attn is not None:
            affinity = sinkhorn_affinity(attn, self.sinkhorn_iters, self.affinity_power)
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
            rows, affinity = cams_of(self._resize_inputs(inputs), text, targets, competitors)  # (B, T, h, w)
        # normalised twice, as CLIP-ES's Grad-CAM does (per layer, then after averaging the layers):
        # with the 1e-7 of the denominator, a map whose range is near 1e-7 peaks below 1 after one
        rows = minmax_normalise(minmax_normalise(rows[:, :len(self.foreground)]))  # (B, K - 1, h, w)
        if affinity is not None:
            rows = class_aware_affinity_refine(rows, affinity, self.box_threshold, self.box_rule)
        cams = rows.new_zeros(rows.shape[0], self.num_classes, *rows.shape[-2:])
        cams[:, self.foreground] = rows
        cams = F.interpolate(cams, size=inputs.shape[-2:], mode='bilinear', align_corners=False)
        if self.rescale_output:
            cams = minmax_normalise(cams)
        if self.float16_output:
            cams = cams.half().float()
        return cams * (image_labels > 0).to(cams)[:, :, None, None]

    def _resize_inputs(self, inputs: Tensor) -> Tensor:
        """CLIP-ES's input size (``resize_to_multiple``): (B, 3, H, W) normalised inputs -> each side
        rounded up to a multiple, resized from the 8-bit pixels with PIL's bicubic filter (what
        torchvision's ``Resize`` does to a PIL image), normalised again; the inputs as they are when
        ``resize_to_multiple`` is None."""
        if self.resize_to_multiple is None:
            return inputs
        m = self.resize_to_multiple
        h, w = (int(math.ceil(side / m)) * m for side in inputs.shape[-2:])
        pixels = denormalise_images(inputs, self.data_preprocessor).cpu().numpy()  # (B, H, W, 3)
        resized = np.stack([np.asarray(Image.fromarray(p).resize((w, h), Image.BICUBIC)) for p in pixels])
        return normalise_images(torch.from_numpy(resized), self.data_preprocessor).to(inputs.device)

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor') -> Union[Tensor, Dict]:
        """``mode='tensor'``: :meth:`compute_cams` with the samples' ``gt_image_labels``.

        Raises:
            ValueError: for ``mode='loss'`` (nothing trains) or ``'predict'``.
        """
        if mode != 'tensor':
            raise ValueError(f"TrainingFreeCLIPES: mode={mode!r} is not supported; it only makes CAMs "
                             "(mode='tensor', or tools/make_pseudo_masks.py).")
        return self.compute_cams(inputs, stack_image_labels(data_samples).to(inputs.device))


def _check_options(softmax_over: str, pool: str, affinity: str, box_rule: str,
                   resize_to_multiple: Optional[int], grad_cam: str, grad_cam_dtype: Optional[str]) -> None:
    """Raise a ValueError naming the first option of :class:`TrainingFreeCLIPES` that has no valid value."""
    if softmax_over not in _SOFTMAX:
        raise ValueError(f'TrainingFreeCLIPES: softmax_over={softmax_over!r} must be one of {_SOFTMAX}.')
    if pool not in ('patch_mean', 'tower'):
        raise ValueError(f"TrainingFreeCLIPES: pool={pool!r} must be 'patch_mean' or 'tower'.")
    if affinity not in _AFFINITY:
        raise ValueError(f'TrainingFreeCLIPES: affinity={affinity!r} must be one of {_AFFINITY}.')
    if box_rule not in BOX_RULES:
        raise ValueError(f'TrainingFreeCLIPES: box_rule={box_rule!r} must be one of {BOX_RULES}.')
    if grad_cam not in _GRAD_CAM:
        raise ValueError(f'TrainingFreeCLIPES: grad_cam={grad_cam!r} must be one of {_GRAD_CAM}.')
    if grad_cam_dtype not in _GRAD_CAM_DTYPES:
        raise ValueError(f'TrainingFreeCLIPES: grad_cam_dtype={grad_cam_dtype!r} must be one of {_GRAD_CAM_DTYPES}.')
    if grad_cam_dtype not in (None, 'float32') and grad_cam != 'closed_form':
        raise ValueError(f'TrainingFreeCLIPES: grad_cam_dtype={grad_cam_dtype!r} needs '
                         f"grad_cam='closed_form' (got {grad_cam!r}); set grad_cam_dtype=None for autograd.")
    if resize_to_multiple is not None and int(resize_to_multiple) < 1:
        raise ValueError(f'TrainingFreeCLIPES: resize_to_multiple={resize_to_multiple!r} must be a '
                         'positive integer (CLIP-ES: 16, the patch size) or None.')


def _block_with_attention(block, x: Tensor) -> Tuple[Tensor, Tensor]:
    """An open_clip ``ResidualAttentionBlock`` on (B, N, C) tokens, also returning its
    head-averaged attention (B, N, N)."""
    normed = block.ln_1(x)
    out, attn = block.attn(normed, normed, normed, need_weights=True, average_attn_weights=True)
    x = x + block.ls_1(out)
    return x + block.ls_2(block.mlp(block.ln_2(x))), attn


def _attention_weights(attn: torch.nn.MultiheadAttention, normed: Tensor) -> Tensor:
    """The head-averaged attention weights (B, N, N) of an ``nn.MultiheadAttention`` on (B, N, C)
    tokens (as ``need_weights=True, average_attn_weights=True`` gives them), from its query and key
    projections alone: a quarter of what running the block again costs."""
    b, n, c = normed.shape
    heads = attn.num_heads
    q, k = F.linear(normed, attn.in_proj_weight[:2 * c], attn.in_proj_bias[:2 * c]).chunk(2, dim=-1)
    q = q.reshape(b, n, heads, c // heads).transpose(1, 2)  # (B, heads, N, c')
    k = k.reshape(b, n, heads, c // heads).transpose(1, 2)
    return (q @ k.transpose(-2, -1) * (c // heads) ** -0.5).softmax(dim=-1).mean(dim=1)
