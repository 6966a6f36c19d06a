"""CLIP text encoder with prompt learning: class names -> one unit-norm embedding per class.

Registry name: ``'CLIPPromptTextEncoder'`` -- mmseg 1.x already registers a different
``CLIPTextEncoder`` (SAN's text encoder, ``mmseg/models/text_encoder``), so ours has its own name:
configs write ``dict(type='CLIPPromptTextEncoder', ...)``.
"""
from typing import List, Optional, Sequence, Tuple, Union

import open_clip
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmseg_clip_wsss.registry import DET_MODELS, MODELS
from ..open_clip_models import load_open_clip
from .prompt_learner import BasePromptLearner
from .text_tower import TextTower
from .vocabularies import ClassNames, default_background_words, readable_name, resolve_class_prompts

__all__ = ['CLIPPromptTextEncoder']


def _drop_frozen_tower(module: 'CLIPPromptTextEncoder', state_dict: dict, prefix: str,
                       local_metadata: dict) -> None:
    """``state_dict`` post-hook: leave out the weights of a frozen text tower that was loaded from
    weights (the config rebuilds it); a random-init tower stays in (nothing else can rebuild it)."""
    if not module.tower_from_weights or any(p.requires_grad for p in module.text_tower.parameters()):
        return
    tower_prefix = prefix + 'text_tower.'
    for key in [k for k in state_dict if k.startswith(tower_prefix)]:
        del state_dict[key]


def _fill_missing_tower(module: 'CLIPPromptTextEncoder', state_dict: dict, prefix: str, *args) -> None:
    """``load_state_dict`` pre-hook: text-tower weights absent from the state dict keep their values."""
    tower_prefix = prefix + 'text_tower.'
    for name, value in module.text_tower.state_dict().items():
        state_dict.setdefault(tower_prefix + name, value)


@DET_MODELS.register_module()
@MODELS.register_module()
class CLIPPromptTextEncoder(BaseModule):
    """Frozen CLIP text tower + prompt learner -> class text embeddings (K, D).

    Registered as ``'CLIPPromptTextEncoder'`` in mmseg's and mmdet's ``MODELS`` (mmseg's own
    ``'CLIPTextEncoder'`` is SAN's encoder).

    The open_clip model is created through open_clip's real loader (model-config name + ``pretrained``
    tag or local checkpoint file); only its text tower is kept, the vision tower is dropped.
    :meth:`forward` returns one L2-normalised row per class in ``class_names`` order.

    Caching: when nothing that shapes the embeddings needs a gradient (grad mode off, or no prompt
    parameter and no text-tower parameter requires grad) the embeddings are computed once and
    reused until a prompt parameter or the tower changes (tracked by each tensor's version counter
    and storage, plus a value snapshot of the small prompt parameters, which also catches fused
    optimiser steps). When they do need a gradient every call recomputes them, once: the segmentor
    calls the encoder once per training iteration. The learnable background embedding is applied
    after the cache (it needs no text-tower call).

    Args:
        class_names (str | Sequence[str | Sequence[str]]): ``'voc'``, ``'coco'`` or a list of class
            names in dataset order (an entry may be a list of synonyms). Two names of one class
            (equal once case, spacing and separators are ignored, or prompted alike) are refused
            with :class:`~mmseg_clip_wsss.datasets.class_names.DuplicateClassNameError`: their rows
            would tie. Defaults to ``'voc'``.
        model_name (str): open_clip model-config name (``'ViT-B-16'``, or
            ``mmseg_clip_wsss.models.TINY_CLIP_NAME`` in tests). Defaults to ``'ViT-B-16'``.
        pretrained (str, optional): open_clip pretrained tag (``'openai'``) or a local checkpoint
            path; None/'' gives a random init. Defaults to ``'openai'``.
        prompt (dict, optional): Prompt learner config, ``dict(type='TemplatePromptLearner')``
            (default), ``'CoOpPromptLearner'`` or ``'EnsemblePromptLearner'`` with their options; see
            :mod:`mmseg_clip_wsss.models.text.prompt_learner`.
        background_words (str | Sequence[str], optional): Background prompts. A list of words (or
            ``'default'`` for :data:`BACKGROUND_WORDS` minus the foreground names): the
            ``'background'`` row (class 0) becomes the normalised mean of the prompted words. None:
            the class name ``'background'`` itself is prompted. Defaults to None.
        learnable_background (bool): Replace row 0 by a learnable embedding initialised from the
            prompted background. Defaults to False.
        freeze_text_tower (bool): Freeze every text-tower parameter. Defaults to True.
        readable_names (bool): Prompt the readable spelling of class names (``'diningtable'`` ->
            ``'dining table'``, :func:`~mmseg_clip_wsss.models.text.readable_name`); False prompts
            them as written (CLIP-ES). Defaults to True.
        quick_gelu (bool, optional): Build the model with QuickGELU. None: as the pretrained tag was
            trained (OpenAI's weights: True); give True for OpenAI weights loaded from a local file
            with a GELU config such as ``'ViT-B-16'`` (or use ``'ViT-B-16-quickgelu'``).
            Defaults to None.
        cache_dir (str, optional): open_clip download cache for pretrained tags. Defaults to None.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 class_names: ClassNames = 'voc',
                 model_name: str = 'ViT-B-16',
                 pretrained: Optional[str] = 'openai',
                 prompt: Optional[dict] = None,
                 background_words: Union[str, Sequence[str], None] = None,
                 learnable_background: bool = False,
                 freeze_text_tower: bool = True,
                 readable_names: bool = True,
                 quick_gelu: Optional[bool] = None,
                 cache_dir: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.readable_names = bool(readable_names)
        class_prompts = resolve_class_prompts(class_names, 'CLIPPromptTextEncoder class_names',
                                              self.readable_names)
        self.class_names: List[str] = [names[0] for names in class_prompts]
        self.num_classes = len(class_prompts)
        has_background = self.class_names[0].lower() == 'background'

        if background_words is not None:
            if not has_background:
                raise ValueError(
                    'CLIPPromptTextEncoder: background_words needs class 0 of class_names to be '
                    f"'background', got {self.class_names[0]!r}.")
            class_prompts[0] = self._background_prompts(background_words, self.class_names[1:],
                                                        self.readable_names)
        if learnable_background and not has_background:
            raise ValueError(
                'CLIPPromptTextEncoder: learnable_background=True needs class 0 of class_names to '
                f"be 'background', got {self.class_names[0]!r}.")
        self.class_prompts = class_prompts
        self.model_name = model_name
        self.pretrained = pretrained
        self.freeze_text_tower = bool(freeze_text_tower)
        self.tower_from_weights = bool(pretrained)

        clip_model = load_open_clip(model_name, pretrained, cache_dir, quick_gelu)
        tokenizer = open_clip.get_tokenizer(model_name, cache_dir=cache_dir)
        self.text_tower = TextTower(clip_model)
        del clip_model  # the vision tower and logit scale go with it
        if self.freeze_text_tower:
            self.text_tower.requires_grad_(False)
            self.text_tower.eval()
        self.embed_dim = self.text_tower.embed_dim

        self._prompt_cfg, self._tokenizer = prompt, tokenizer
        self.prompt_learner = self._build_prompt_learner(prompt, tokenizer)
        self._cache: Optional[Tuple[tuple, List[torch.Tensor], torch.Tensor]] = None
        self.register_state_dict_post_hook(_drop_frozen_tower)
        self.register_load_state_dict_pre_hook(_fill_missing_tower)

        self.learnable_background = bool(learnable_background)
        if self.learnable_background:
            with torch.no_grad():
                init = self.prompt_learner(self.text_tower)[0]  # (D, )
            self.background_embedding = nn.Parameter(init.detach().clone())

    def _build_prompt_learner(self, cfg: Optional[dict], tokenizer) -> BasePromptLearner:
        """``MODELS.build(cfg)`` with the class prompts, the tokenizer and the text tower.

        Raises:
            ValueError: naming ``prompt.type`` or the option that the learner does not take.
        """
        cfg = dict(type='TemplatePromptLearner') if cfg is None else dict(cfg)
        kind = cfg.get('type')
        try:
            learner = MODELS.build(cfg, default_args=dict(
                class_prompts=self.class_prompts, tokenizer=tokenizer, tower=self.text_tower))
        except KeyError as err:
            raise ValueError(f'prompt.type={kind!r} is not a registered prompt learner; use '
                             "'TemplatePromptLearner', 'CoOpPromptLearner' or "
                             f"'EnsemblePromptLearner' ({err}).") from err
        except TypeError as err:
            if 'unexpected keyword' not in str(err):
                raise
            raise ValueError(f'prompt: {err} (see the options of prompt.type={kind!r}).') from err
        if not isinstance(learner, BasePromptLearner):
            raise ValueError(f'prompt.type={kind!r} builds a {type(learner).__name__}, not a prompt '
                             'learner.')
        return learner

    @staticmethod
    def _background_prompts(words: Union[str, Sequence[str]], foreground: Sequence[str],
                            readable: bool = True) -> List[str]:
        """Validated background words (readable spelling unless ``readable=False``)."""
        if isinstance(words, str):
            if words != 'default':
                raise ValueError(
                    f"background_words must be a list of words, 'default' or None, got {words!r}.")
            words = default_background_words(foreground)
        words = [readable_name(w, readable) for w in words]
        if not words:
            raise ValueError("background_words is empty; give a list of words, 'default' or None.")
        clash = sorted({w for w in words if w.lower() in {f.lower() for f in foreground}})
        if clash:
            raise ValueError(
                f'background_words {clash} are foreground classes of class_names; remove them '
                "(background_words='default' drops them automatically).")
        return words

    def set_class_names(self, class_names: ClassNames) -> None:
        """Encode another class list with the learned prompts (open-vocabulary inference).

        The prompt learner is built again for the new names and given the learned context of the
        old one, so names never seen in training are prompted exactly as the trained ones; a
        configured background row (background words, learnable background) is kept as row 0.

        Args:
            class_names (str | Sequence[str | Sequence[str]]): A vocabulary name or the new class
                list, ``'background'`` first when the trained list had it.

        Raises:
            ValueError: the learned context is class-specific (one context set per trained class,
                so it cannot prompt other classes), or the background row is dropped.
            DuplicateClassNameError: two names of one class (``'dog'`` and ``'Dog '``), naming
                both (:mod:`mmseg_clip_wsss.datasets.class_names`).
        """
        class_prompts = resolve_class_prompts(class_names, 'set_class_names', self.readable_names)
        names = [p[0] for p in class_prompts]
        had_background = self.class_names[0].lower() == 'background'
        if had_background != (names[0].lower() == 'background'):
            raise ValueError(f'set_class_names: the trained class list starts with {self.class_names[0]!r}; '
                             f"the new one must {'' if had_background else 'not '}start with 'background' "
                             f'too, got {names[0]!r}.')
        if getattr(self.prompt_learner, 'class_specific', False):
            raise ValueError('set_class_names: the prompt context is class-specific (one learned set per '
                             'trained class) and cannot prompt other class names; train with '
                             'class_specific=False for open-vocabulary inference.')
        if had_background:
            class_prompts[0] = self.class_prompts[0]
        learned = self.prompt_learner.state_dict()
        device = next(iter(self.text_tower.parameters())).device
        self.class_prompts, self.class_names = class_prompts, names
        self.num_classes = len(class_prompts)
        cfg = {k: v for k, v in (self._prompt_cfg or {}).items() if k != 'num_classes'} or None
        self.prompt_learner = self._build_prompt_learner(cfg, self._tokenizer).to(device)
        self.prompt_learner.load_state_dict(learned)
        self._cache = None

    # ------------------------------------------------------------------ caching
    def _prompt_params(self) -> List[nn.Parameter]:
        return list(self.prompt_learner.parameters())

    def _cache_key(self) -> tuple:
        """Identity of every tensor the embeddings depend on (storage, version, device, dtype)."""
        tensors = list(self.text_tower.parameters()) + self._prompt_params()
        return tuple((t.data_ptr(), t._version, t.device, t.dtype, tuple(t.shape)) for t in tensors)

    def _cache_valid(self, key: tuple) -> bool:
        if self._cache is None or self._cache[0] != key:
            return False
        snapshot = self._cache[1]
        return all(torch.equal(p, s) for p, s in zip(self._prompt_params(), snapshot))

    def _encode(self) -> torch.Tensor:
        return self.prompt_learner(self.text_tower)  # (K, D)

    # ------------------------------------------------------------------ forward
    def forward(self) -> torch.Tensor:
        """Class text embeddings.

        Returns:
            Tensor: (K, D) float32, every row unit L2 norm, rows in ``class_names`` order. A cached
            tensor may be returned: do not modify it in place.
        """
        tower_trainable = any(p.requires_grad for p in self.text_tower.parameters())
        needs_grad = torch.is_grad_enabled() and (tower_trainable or any(p.requires_grad
                                                                         for p in self._prompt_params()))
        # A trainable tower may be changed by optimisers that bypass version counters; only eval mode
        # caches it.
        can_cache = not (tower_trainable and self.training)
        if needs_grad:
            embeds = self._encode()
            if can_cache:
                self._cache = (self._cache_key(), [p.detach().clone()
                                                   for p in self._prompt_params()], embeds.detach())
        elif not can_cache:
            with torch.no_grad():
                embeds = self._encode()
        else:
            key = self._cache_key()
            if not self._cache_valid(key):
                with torch.no_grad():
                    embeds = self._encode()
                self._cache = (key, [p.detach().clone() for p in self._prompt_params()], embeds)
            embeds = self._cache[2]
        return self._apply_background(embeds).float()

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Embeddings of free texts (descriptions) through the text tower, without prompt context.

        Tokenised by the model's own tokenizer (texts longer than its context are cut); computed
        without gradient when the tower is frozen.

        Args:
            texts (Sequence[str]): The texts (N >= 1).
            batch_size (int): Texts per tower call. Defaults to 256.

        Returns:
            Tensor: (N, D) float32, unit L2 norm rows, on the tower's device.
        """
        device = next(iter(self.text_tower.parameters())).device
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.text_tower.parameters())
        feats = []
        with torch.set_grad_enabled(grad):
            for start in range(0, len(texts), batch_size):
                tokens = self._tokenizer(list(texts[start:start + batch_size])).to(device)  # (n, L)
                feats.append(self.text_tower(self.text_tower.embed(tokens), tokens).float())
        return F.normalize(torch.cat(feats), dim=-1)  # (N, D)

    def _apply_background(self, embeds: torch.Tensor) -> torch.Tensor:
        """Put the learnable background embedding (normalised) into row 0."""
        if not self.learnable_background:
            return embeds
        background = F.normalize(self.background_embedding.to(embeds.dtype), dim=0)  # (D, )
        return torch.cat([background[None], embeds[1:]], dim=0)  # (K, D)

    def train(self, mode: bool = True):
        """Set train/eval mode; a frozen text tower always stays in eval mode."""
        super().train(mode)
        if self.freeze_text_tower:
            self.text_tower.eval()
        return self

    def extra_repr(self) -> str:
        return (f'model_name={self.model_name!r}, num_classes={self.num_classes}, '
                f'embed_dim={self.embed_dim}, learnable_background={self.learnable_background}')
