"""Weakly supervised encoder-decoder with (optional) CLIP text guidance and an RSC-A neck."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import ConfigDict
from mmseg.models.segmentors import EncoderDecoder
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, OptSampleList, SampleList, add_prefix
from torch import Tensor

from mmseg_clip_wsss.registry import MODELS
from mmseg_clip_wsss.structures import image_label_weights, stack_image_labels
from ..heads.weak_decode_head import WeakDecodeHead
from ..necks.rsca_neck import RSCANeck
from ..text.vocabularies import resolve_class_prompts
from ..utils import resize_rows, with_background_index
from .cam_output import CAMOutput, build_class_verifier
from .clip_region_verifier import CLIPRegionVerifier
from .description_supervision import DescriptionSupervision

_CAM_BACKGROUND = ('auto', 'score', 'zero')
_CAM_NORM = ('relu', 'minmax')


def _hand_down(cfg: OptConfigType, background_index: Optional[int],
               num_classes: Optional[int]) -> OptConfigType:
    """``cfg`` with the segmentor's ``background_index`` and, where it names none, the text encoder's
    number of classes, when it builds one of our heads or necks."""
    kind = cfg.get('type') if cfg is not None else None
    cls = MODELS.get(kind) if isinstance(kind, str) else kind
    if not (isinstance(cls, type) and issubclass(cls, (WeakDecodeHead, RSCANeck))):
        return cfg
    cfg = with_background_index(cfg, background_index, 'WSSSEncoderDecoder')
    if num_classes is not None and cfg.get('num_classes') is None:
        cfg['num_classes'] = num_classes
    return cfg


def _text_classes(text_encoder: OptConfigType) -> Optional[int]:
    """K of a text encoder config: one row per class of its ``class_names`` (None without one)."""
    if text_encoder is None or text_encoder.get('class_names') is None:
        return None
    return len(resolve_class_prompts(text_encoder['class_names']))


def _window_starts(size: int, crop: int, stride: int) -> List[int]:
    """Top/left corners of sliding windows of length ``crop`` covering ``size`` (last one flush)."""
    if size <= crop:
        return [0]
    return sorted(set(list(range(0, size - crop, stride)) + [size - crop]))


@MODELS.register_module()
class WSSSEncoderDecoder(EncoderDecoder):
    """Encoder-decoder trained from image-level labels (or masks), text-guided when configured.

    Differences from :class:`mmseg.models.EncoderDecoder`:

    - ``text_encoder`` (e.g. ``dict(type='CLIPPromptTextEncoder', ...)``) is called **once** per
      ``loss``/``predict``/``tensor`` call; its (K, D) class embeddings are passed to the head.
      K follows from its ``class_names``: our heads and necks that name no ``num_classes`` get it
      (one that names another K is refused).
    - Weak supervision (``decode_head.supervision='weak'``): :meth:`loss` reads the image-level labels
      (:func:`~mmseg_clip_wsss.structures.stack_image_labels`), returns the head's image-level losses
      (``decode.*``) and, when the neck has a memory bank (:class:`RSCANeck`), the regional contrast
      loss (``neck.*``) with the memory update. Full supervision: the head's per-pixel loss on
      ``gt_sem_seg``, like ``EncoderDecoder``.
    - :meth:`compute_cams` gives CAMs (B, K, H, W) at input resolution: non-negative, each class map
      scaled to max 1, zero for classes absent from the image labels; the background channel holds
      the model's background score (``cam_background='score'``) or zeros (``'zero'``).
    - ``test_cfg.output='cam'`` makes :meth:`predict` return these CAMs as ``seg_logits`` (absent
      classes are 0, so ``pred_sem_seg`` is the arg-max over the image's classes, background where
      nothing is active). The classes of an image are its ``gt_image_labels``, or, for an image
      without labels (a photo to segment), those whose pooled image-level logit (the head's
      ``loss_mlc`` pooling) has a sigmoid above ``test_cfg.label_threshold`` (default 0.5). With
      ``test_cfg.bg_threshold`` the background channel is that constant, the CAM -> pseudo-mask
      protocol's background rule (``bg_mode='threshold'``): a weakly supervised head never learns a
      background score that competes with the foreground rows. With ``test_cfg.verify_classes`` (a
      dict of :class:`CLIPRegionVerifier` arguments; ``clip_model`` and ``clip_pretrained`` default to
      the text encoder's, so ``dict()`` checks with the CLIP whose text tower the model uses) that CLIP
      decides instead which classes an unlabelled image holds, from the regions the CAMs of all
      classes claim; it also checks names never trained on (:meth:`set_class_names`).
    - Without ``text_encoder`` and ``neck`` and with :class:`CAMClassifierHead` this is the plain CAM
      baseline on the same backbone.

    Call map (as in mmseg's ``EncoderDecoder``):

    - :meth:`loss`: backbone -> neck (its fused features too when it contrasts regions) ->
      :meth:`encode_text` -> weak: ``decode_head.loss_weak`` and, with RSC-A, :meth:`scores_to_cams`
      -> ``neck.region_contrast_loss``; full: ``decode_head.loss`` -> auxiliary heads.
    - :meth:`predict`, ``test_cfg.output='seg'``: :meth:`inference` (:meth:`encode_text` once ->
      :meth:`encode_decode` or :meth:`slide_inference`) -> ``postprocess_result``.
    - :meth:`predict`, ``test_cfg.output='cam'``: :meth:`CAMOutput.predict` (:meth:`_forward` ->
      :meth:`CAMOutput.image_labels`, the verifier for images without labels ->
      :meth:`scores_to_cams`) -> ``postprocess_result``.
    - :meth:`compute_cams` (pseudo masks, ``mmseg_clip_wsss.cam``): :meth:`_forward` ->
      :meth:`scores_to_cams`.
    - :meth:`set_class_names` (open vocabulary): the text encoder, the head and the
      :class:`CAMOutput` verifier take the new list.

    Args:
        backbone (dict): Backbone config.
        decode_head (dict): Head config (:class:`TextGuidedHead`, :class:`CAMClassifierHead`, or any
            mmseg decode head for full supervision).
        neck (dict, optional): Neck config (e.g. :class:`RSCANeck`). Defaults to None.
        text_encoder (dict, optional): Text encoder config. Defaults to None.
        auxiliary_head (dict, optional): Auxiliary head config (full supervision only: an auxiliary
            head trains on ``gt_sem_seg``, so it is refused with a weakly supervised decode head).
            Defaults to None.
        train_cfg (dict, optional): Training config. Defaults to None.
        test_cfg (dict, optional): Test config: ``mode`` ('whole' | 'slide'), ``crop_size`` and
            ``stride`` for 'slide', ``output`` ('seg' | 'cam'), and for 'cam' ``label_threshold``,
            ``bg_threshold`` and ``verify_classes`` (see above). Defaults to ``dict(mode='whole')``.
        data_preprocessor (dict, optional): Data preprocessor config. Defaults to None.
        pretrained (str, optional): Backbone checkpoint. Defaults to None.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
        background_index (int, optional): Background class index; None when the class list has no
            background (class 0 is then an object class like any other). The one source of truth:
            it is handed to the decode head (and through it to the weak losses) and to the neck
            when they are our modules; their configs need not repeat it. Defaults to 0.
        cam_background (str): Background channel of the CAMs: ``'score'`` (the model's own
            background score, e.g. background prompts), ``'zero'``, or ``'auto'`` (``'score'`` with a
            text encoder, ``'zero'`` without). Defaults to ``'auto'``.
        cam_norm (str): ``'relu'`` (ReLU of the score, then / per-class max) or ``'minmax'``
            (score minus its per-image min, then / max). Defaults to ``'relu'``.
        region_contrast (bool): Use the neck's regional contrast loss and memory update in weak
            training when the neck has them. Defaults to True.
        description_targets (dict, optional): Learn from descriptions: images without
            ``gt_image_labels`` take soft targets and per-class confidences from their ``captions``
            (options of :class:`~mmseg_clip_wsss.models.text.DescriptionTargets`; ``dict()`` for the
            defaults, the class words are the text encoder's class prompts). Needs a text encoder.
            None: every image needs labels. Defaults to None.
        loss_description (dict, optional): The description contrastive loss of the described images
            (:class:`~mmseg_clip_wsss.models.losses.DescriptionContrastiveLoss`), against the
            head's pixel embeddings; logged as ``decode.<loss_name>``. Defaults to None.
        description_regions (int): 0: the contrastive loss pools each image into one embedding;
            ``n``: into an ``n`` x ``n`` grid of regions, scored by the best-matching region.
            Defaults to 0.
    """

    def __init__(self,
                 backbone: ConfigType,
                 decode_head: ConfigType,
                 neck: OptConfigType = None,
                 text_encoder: OptConfigType = None,
                 auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None,
                 background_index: Optional[int] = 0,
                 cam_background: str = 'auto',
                 cam_norm: str = 'relu',
                 region_contrast: bool = True,
                 description_targets: OptConfigType = None,
                 loss_description: OptConfigType = None,
                 description_regions: int = 0):
        if cam_background not in _CAM_BACKGROUND:
            raise ValueError(f'WSSSEncoderDecoder: cam_background={cam_background!r} must be one of '
                             f'{_CAM_BACKGROUND}.')
        if cam_norm not in _CAM_NORM:
            raise ValueError(f'WSSSEncoderDecoder: cam_norm={cam_norm!r} must be one of {_CAM_NORM}.')
        num_classes = _text_classes(text_encoder)
        decode_head = _hand_down(decode_head, background_index, num_classes)
        neck = _hand_down(neck, background_index, num_classes)
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            neck=neck,
            auxiliary_head=auxiliary_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        self.train_cfg = ConfigDict(train_cfg or {})
        self.test_cfg = ConfigDict(test_cfg or dict(mode='whole'))
        self.text_encoder = MODELS.build(text_encoder) if text_encoder is not None else None
        self.background_index = background_index
        if cam_background == 'auto':
            cam_background = 'score' if self.text_encoder is not None else 'zero'
        self.cam_background = cam_background
        self.cam_norm = cam_norm
        self.region_contrast = region_contrast
        self._check_components()
        verifier = build_class_verifier(self.test_cfg.get('verify_classes'), self.text_encoder)
        self.cam_output = CAMOutput(verifier, background_index)
        if self.text_encoder is not None:
            self.cam_output.set_class_prompts(self.text_encoder.class_prompts)
        self.description = self._build_description(description_targets, loss_description,
                                                   description_regions)

    @property
    def class_verifier(self) -> Optional[CLIPRegionVerifier]:
        """The CLIP that checks the classes of unlabelled images (``test_cfg.verify_classes``)."""
        return self.cam_output.verifier

    @class_verifier.setter
    def class_verifier(self, verifier: Optional[CLIPRegionVerifier]) -> None:
        self.cam_output.verifier = verifier

    # ----------------------------------------------------------------- checks
    def _build_description(self, targets: OptConfigType, loss: OptConfigType,
                           regions: int) -> Optional[DescriptionSupervision]:
        """The description supervision (None when neither targets nor a loss is configured)."""
        if targets is None and loss is None:
            return None
        if self.text_encoder is None or not self._head_reads_text:
            raise ValueError('WSSSEncoderDecoder: description_targets / loss_description need a text '
                             'encoder and a text-guided head (descriptions are read by the text tower).')
        return DescriptionSupervision(self.text_encoder.class_prompts, targets, loss, regions,
                                      self.background_index)

    def _weak_targets(self, data_samples: SampleList, text_embeds: Optional[Tensor], device):
        """Image-level targets (B, K) and loss weights ((B,), (B, K) or None) of a batch."""
        if self.description is None:
            labels = stack_image_labels(data_samples).to(device)
            return labels, image_label_weights(data_samples, labels)
        return self.description.image_targets(data_samples, self.text_encoder, text_embeds, device)

    def _check_components(self) -> None:
        head = self.decode_head
        if self.text_encoder is not None:
            k_text = int(self.text_encoder.num_classes)
            if k_text != head.num_classes:
                raise ValueError(
                    f'WSSSEncoderDecoder: decode_head.num_classes={head.num_classes} but the text '
                    f'encoder has {k_text} classes (one row per class name): set '
                    f'num_classes={k_text} in the decode_head (and neck) config or fix '
                    'text_encoder.class_names.')
            d_head = getattr(head, 'embed_dim', None)
            if d_head is not None and d_head != self.text_encoder.embed_dim:
                raise ValueError(
                    f'WSSSEncoderDecoder: decode_head.embed_dim={d_head} but the text encoder '
                    f'embeds into {self.text_encoder.embed_dim} dims: set '
                    f'embed_dim={self.text_encoder.embed_dim} in the decode_head config.')
        elif hasattr(head, 'embed_dim'):
            raise ValueError(f'WSSSEncoderDecoder: {type(head).__name__} scores pixels against class '
                             'text embeddings but no `text_encoder` is configured; add '
                             'text_encoder=dict(type="CLIPPromptTextEncoder", ...) to the model config.')
        if self.with_auxiliary_head and getattr(head, 'is_weak', False):
            raise ValueError('WSSSEncoderDecoder: an auxiliary_head trains on masks (gt_sem_seg) but '
                             'the decode head is weakly supervised (supervision="weak"), and weak '
                             'training never reads masks: remove auxiliary_head from the model '
                             'config (or train with decode_head.supervision="full" on masks).')
        k_neck = getattr(self.neck, 'num_classes', None) if self.with_neck else None
        if k_neck is not None and k_neck != head.num_classes:
            raise ValueError(f'WSSSEncoderDecoder: neck.num_classes={k_neck} (memory bank rows) but '
                             f'decode_head.num_classes={head.num_classes}: set both to the same K.')

    @property
    def _head_reads_text(self) -> bool:
        """Whether the head takes the class text embeddings (ours do; mmseg's heads do not)."""
        return isinstance(self.decode_head, WeakDecodeHead)

    @property
    def _neck_contrasts(self) -> bool:
        return self.with_neck and self.region_contrast and hasattr(self.neck, 'region_contrast_loss')

    def set_class_names(self, class_names) -> None:
        """Segment another class list: the classifier rows are the text embeddings of the names.

        The text encoder prompts the new names with its learned context; the head scores pixels
        against K' rows from then on. The neck's memory bank keeps the trained classes (it enhances
        features; it is no classifier).

        Args:
            class_names (str | Sequence[str | Sequence[str]]): A vocabulary name or class list,
                ``'background'`` first when the model was trained with a background row.

        Raises:
            ValueError: without a text encoder, or as :meth:`CLIPPromptTextEncoder.set_class_names`.
        """
        if self.text_encoder is None or not self._head_reads_text:
            raise ValueError(f'{type(self).__name__}: only a text-guided head (with a text_encoder) can '
                             'take new class names; this classifier has fixed rows.')
        self.text_encoder.set_class_names(class_names)
        k = self.text_encoder.num_classes
        self.decode_head.num_classes = self.decode_head.out_channels = self.num_classes = self.out_channels = k
        self.cam_output.set_class_prompts(self.text_encoder.class_prompts)

    # ---------------------------------------------------------------- pieces
    def encode_text(self) -> Optional[Tensor]:
        """Class text embeddings (K, D), or None without a text encoder."""
        return self.text_encoder() if self.text_encoder is not None else None

    def _head_forward(self, x, text_embeds: Optional[Tensor], return_embeds: bool = False):
        if self._head_reads_text:
            return self.decode_head(x, text_embeds, return_embeds=return_embeds)
        return self.decode_head(x)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict],
                      text_embeds: Optional[Tensor] = None) -> Tensor:
        """Score maps (B, K, H, W) resized to the input (pad) size.

        Args:
            inputs (Tensor): (B, 3, H, W).
            batch_img_metas (list[dict]): Image metas.
            text_embeds (Tensor, optional): (K, D); computed here if None and a text encoder exists.
        """
        x = self.extract_feat(inputs)
        if not self._head_reads_text:
            return self.decode_head.predict(x, batch_img_metas, self.test_cfg)
        if text_embeds is None:
            text_embeds = self.encode_text()
        return self.decode_head.predict(x, batch_img_metas, self.test_cfg, text_embeds)

    def slide_inference(self, inputs: Tensor, batch_img_metas: List[dict],
                        text_embeds: Optional[Tensor] = None) -> Tensor:
        """Average of the score maps of overlapping ``test_cfg.crop_size`` windows (B, K, H, W)."""
        if text_embeds is None:
            text_embeds = self.encode_text()
        h_stride, w_stride = self.test_cfg.stride
        h_crop, w_crop = self.test_cfg.crop_size
        b, _, h, w = inputs.shape
        logits = inputs.new_zeros((b, self.out_channels, h, w))
        counts = inputs.new_zeros((1, 1, h, w))
        for y in _window_starts(h, h_crop, h_stride):
            for x in _window_starts(w, w_crop, w_stride):
                crop = inputs[:, :, y:y + h_crop, x:x + w_crop]
                metas = [dict(meta, img_shape=crop.shape[2:]) for meta in batch_img_metas]
                ch, cw = crop.shape[2:]
                logits[:, :, y:y + ch, x:x + cw] += self.encode_decode(crop, metas, text_embeds)
                counts[:, :, y:y + ch, x:x + cw] += 1
        return logits / counts

    def inference(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Whole or sliding-window score maps (B, K, H, W); the text encoder runs once."""
        mode = self.test_cfg.get('mode', 'whole')
        if mode not in ('whole', 'slide'):
            raise ValueError(f"WSSSEncoderDecoder: test_cfg.mode={mode!r} must be 'whole' or 'slide' "
                             "(CAMs instead of segmentation scores: test_cfg.output='cam').")
        text_embeds = self.encode_text()
        if mode == 'slide':
            return self.slide_inference(inputs, batch_img_metas, text_embeds)
        return self.encode_decode(inputs, batch_img_metas, text_embeds)

    # ------------------------------------------------------------------ CAMs
    def scores_to_cams(self, scores: Tensor, image_labels: Tensor,
                       size: Optional[Sequence[int]] = None) -> Tensor:
        """Turn score maps into CAMs.

        Args:
            scores (Tensor): (B, K, h, w) score maps.
            image_labels (Tensor): (B, K) multi-hot labels.
            size (Sequence[int], optional): Output (H, W); bilinear resize of the scores first.

        Returns:
            Tensor: (B, K, H, W) non-negative, per-class max 1 (or all 0), zero for absent classes
            (and for the background channel with ``cam_background='zero'``).
        """
        if image_labels.shape != scores.shape[:2]:
            raise ValueError(f'WSSSEncoderDecoder: image labels {tuple(image_labels.shape)} do not '
                             f'match the score maps {tuple(scores.shape)} (expected (B, K) with K = '
                             f'{scores.shape[1]}).')
        keep = image_labels > 0  # (B, K)
        if self.background_index is not None and self.cam_background == 'zero':
            keep = keep.clone()
            keep[:, self.background_index] = False
        rows = torch.nonzero(keep.any(dim=0)).flatten()  # classes kept in some image: only these
        scores = scores[:, rows]  # are resized and normalised (every step is per class)
        if size is not None and tuple(scores.shape[-2:]) != tuple(size):
            scores = resize_rows(scores, size, self.align_corners)
        if self.cam_norm == 'relu':
            cams = scores.relu()
        else:
            cams = scores - scores.amin(dim=(2, 3), keepdim=True)
        cams = cams / cams.amax(dim=(2, 3), keepdim=True).clamp(min=1e-5)
        out = cams.new_zeros(cams.shape[0], keep.shape[1], *cams.shape[-2:])
        out[:, rows] = cams * keep[:, rows, None, None].to(cams.dtype)
        return out

    def compute_cams(self, inputs: Tensor, image_labels: Tensor) -> Tensor:
        """CAMs of normalised images, restricted to their labels.

        Args:
            inputs (Tensor): (B, 3, H, W) normalised images.
            image_labels (Tensor): (B, K) multi-hot labels.

        Returns:
            Tensor: (B, K, H, W) at input resolution (see :meth:`scores_to_cams`).
        """
        scores = self._forward(inputs)  # (B, K, h, w)
        return self.scores_to_cams(scores, image_labels.to(scores.device), size=inputs.shape[-2:])

    # ------------------------------------------------------------ interfaces
    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """Losses of a batch.

        Args:
            inputs (Tensor): (B, 3, H, W).
            data_samples (list[SegDataSample]): With ``gt_image_labels`` (weak) or ``gt_sem_seg`` (full).

        Returns:
            dict[str, Tensor]: ``decode.*`` (head), ``neck.*`` (regional contrast), ``aux*.*``.
        """
        feats = self.backbone(inputs)
        fused = None
        if self.with_neck:
            if self._neck_contrasts:
                x, fused = self.neck(feats, return_fused=True)
            else:
                x = self.neck(feats)
        else:
            x = feats
        text_embeds = self.encode_text()

        losses = dict()
        if self._head_reads_text and self.decode_head.is_weak:
            labels, weights = self._weak_targets(data_samples, text_embeds, inputs.device)
            scores, pixel_embeds = self.decode_head(x, text_embeds, return_embeds=True)
            losses.update(add_prefix(
                self.decode_head.loss_weak(scores, pixel_embeds, text_embeds, labels, weights), 'decode'))
            if self.description is not None and self.description.loss is not None:
                losses.update(add_prefix(self.description.contrastive_loss(
                    pixel_embeds, data_samples, self.text_encoder, self.decode_head.scale), 'decode'))
            if fused is not None:
                present = (labels > 0).to(labels)  # the classes named (soft targets of descriptions)
                cams = self.scores_to_cams(scores.detach(), present)  # (B, K, h, w)
                losses.update(add_prefix(self.neck.region_contrast_loss(fused, cams, present), 'neck'))
        elif self._head_reads_text:
            losses.update(add_prefix(
                self.decode_head.loss(x, data_samples, self.train_cfg, text_embeds), 'decode'))
        else:
            losses.update(self._decode_head_forward_train(x, data_samples))
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(x, data_samples))
        return losses

    def _cam_output(self) -> bool:
        return self.test_cfg.get('output', 'seg') == 'cam'

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """Segmentation results (``seg_logits`` (K, H, W) and ``pred_sem_seg`` (1, H, W) per image).

        With ``test_cfg.output='cam'``, ``seg_logits`` are the CAMs of :meth:`compute_cams` over the
        image's labels, or over its predicted classes where it has none (see the class docstring).
        """
        if not self._cam_output():
            return super().predict(inputs, data_samples)
        if data_samples is None:
            raise ValueError('WSSSEncoderDecoder: CAM output (test_cfg.output="cam") needs the data '
                             'samples (image metas).')
        return self.postprocess_result(self.cam_output.predict(self, inputs, data_samples), data_samples)

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        """Raw score maps (B, K, h, w) at the head's resolution."""
        return self._head_forward(self.extract_feat(inputs), self.encode_text())
