"""Prompt learners: class names -> prompts -> one text embedding per class.

Three learners, registered in mmseg's and mmdet's ``MODELS`` and picked by ``prompt=dict(type=...)`` in
:class:`CLIPPromptTextEncoder`'s config (which builds them with ``MODELS.build``, handing over the
class prompts, the tokenizer and the text tower):

``'TemplatePromptLearner'``
    Hand-written template ensemble. Every class name is put into every template
    (``'a photo of a {}.'``, ...), encoded, L2-normalised, averaged over the templates (and over the
    class's synonyms or background words) and normalised again. Nothing learns.

``'CoOpPromptLearner'``
    CoOp context optimisation: ``[SOT] ctx_1 ... ctx_n <class name> . [EOT]`` where the ``n_ctx``
    context vectors are learnable token embeddings, shared by all classes or one set per class
    (``class_specific=True``), initialised from a phrase (``ctx_init='a photo of a'``: its token
    embeddings) or randomly (normal, std 0.02). The class tokens go at the ``'end'`` (after the
    context), in the ``'middle'`` (half the context before, half after) or to the ``'front'``.

``'EnsemblePromptLearner'``
    A learnable template ensemble: one context set per hand-written template, initialised from that
    template's own token embeddings. ``'a photo of a {}.'`` gives 4 learnable vectors before the
    class name, ``'there is a {} in the scene.'`` 3 before and 3 after; a final ``'.'`` stays a fixed
    token. At initialisation the output equals the template learner's exactly; training then moves
    every template's context, and the class embedding stays the normalised mean over the templates.

Every learner encodes all its prompts in a single batch through the (frozen) text tower, so one call of
the learner is one call of the transformer (without gradients, one per ``max_batch`` prompts).

Before the learners were registry names, ``prompt=dict(type=...)`` took the modes ``'template'``,
``'learnable'`` and ``'learnable_ensemble'``; they stay as deprecated aliases of the three learners.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmseg_clip_wsss.registry import DET_MODELS, MODELS, register_deprecated_alias, register_seg_and_det
from .text_tower import TextTower

__all__ = [
    'DEFAULT_TEMPLATES', 'BasePromptLearner', 'TemplatePromptLearner', 'CoOpPromptLearner',
    'EnsemblePromptLearner'
]

#: Hand-written templates of the default ensemble.
DEFAULT_TEMPLATES: Tuple[str, ...] = (
    'a photo of a {}.',
    'a photo of the {}.',
    'a cropped photo of a {}.',
    'a close-up photo of a {}.',
    'a bright photo of a {}.',
    'a photo of a small {}.',
    'a photo of a large {}.',
    'there is a {} in the scene.',
)


def _check_templates(templates: Sequence[str]) -> List[str]:
    if not isinstance(templates, (str, list, tuple)):
        raise ValueError(f'prompt.templates = {templates!r}: give a template or a list of them, each '
                         "with one '{}' for the class name, e.g. 'a photo of a {}.'.")
    templates = [templates] if isinstance(templates, str) else list(templates)
    if not templates:
        raise ValueError('prompt.templates is empty: give at least one template such as '
                         "'a photo of a {}.'.")
    for t in templates:
        if not isinstance(t, str) or t.count('{}') != 1:
            raise ValueError(f"prompt.templates: every template needs exactly one '{{}}' for the "
                             f'class name, got {t!r}.')
    return templates


class BasePromptLearner(BaseModule):
    """Base class: holds the class prompts and averages per-prompt features into class rows.

    Args:
        class_prompts (list[list[str]]): For every class (row), the names to prompt (synonyms, or
            the background words of the background row). The row embedding is the normalised mean
            over all its prompts.
        tokenizer (callable): The open_clip tokenizer of the model.
        tower (TextTower): The text tower (used at construction only, e.g. to initialise context
            vectors from token embeddings; not stored).
        num_classes (int, optional): Expected number of classes; a mismatch with
            ``len(class_prompts)`` raises ``ValueError``. Defaults to None (no check).
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    #: Prompts per text tower call when no gradient is needed (e.g. 200 names x 8 templates = 2 calls).
    max_batch = 1024

    def __init__(self,
                 class_prompts: List[List[str]],
                 tokenizer,
                 tower: TextTower,
                 num_classes: Optional[int] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if not class_prompts:
            raise ValueError('class_names is empty: the prompt learner needs at least one class.')
        if num_classes is not None and num_classes != len(class_prompts):
            raise ValueError(f'prompt.num_classes={num_classes} disagrees with the {len(class_prompts)} '
                             'classes of class_names; drop prompt.num_classes or fix it.')
        self.class_prompts = [list(p) for p in class_prompts]
        self.num_classes = len(class_prompts)
        self.context_length = tower.context_length

    def _register_entries(self, tokens: torch.Tensor, entry_class: List[int]) -> None:
        """Store the prompt batch: token ids (N, L) and the class row of every prompt (N,)."""
        self.register_buffer('tokens', tokens.long(), persistent=False)  # (N, L)
        self.register_buffer('entry_class',
                             torch.tensor(entry_class, dtype=torch.long),
                             persistent=False)  # (N, )

    def class_mean(self, feats: torch.Tensor) -> torch.Tensor:
        """Per-prompt features (N, D) -> normalised class embeddings (K, D).

        Each prompt feature is normalised, the features of a class are averaged and the mean is
        normalised again (the usual CLIP prompt-ensemble rule).
        """
        feats = F.normalize(feats.float(), dim=-1)  # (N, D)
        sums = feats.new_zeros(self.num_classes, feats.shape[1]).index_add(0, self.entry_class, feats)
        counts = torch.bincount(self.entry_class, minlength=self.num_classes).clamp(min=1)
        return F.normalize(sums / counts[:, None].to(sums.dtype), dim=-1)  # (K, D)

    def prompt_embeddings(self, tower: TextTower) -> torch.Tensor:
        """Token embeddings of all prompts, learned positions filled in, (N, L, C)."""
        return tower.embed(self.tokens)

    def forward(self, tower: TextTower) -> torch.Tensor:
        """Encode every prompt (one transformer call; without gradients, one per
        :attr:`max_batch` prompts, which bounds the memory of long class lists) and pool them per
        class.

        Args:
            tower (TextTower): The text tower.

        Returns:
            Tensor: Class embeddings (K, D), unit L2 norm.
        """
        embeds, step = self.prompt_embeddings(tower), self.max_batch  # (N, L, C)
        if torch.is_grad_enabled() or len(embeds) <= step:
            feats = tower(embeds, self.tokens)  # (N, D)
        else:
            feats = torch.cat([tower(embeds[i:i + step], self.tokens[i:i + step])
                               for i in range(0, len(embeds), step)])
        return self.class_mean(feats)


@register_seg_and_det
class TemplatePromptLearner(BasePromptLearner):
    """Hand-written template ensemble: nothing learns.

    Args:
        class_prompts, tokenizer, tower, num_classes, init_cfg: See :class:`BasePromptLearner`.
        templates (Sequence[str]): Templates with one ``'{}'`` for the class name. Defaults to
            :data:`DEFAULT_TEMPLATES`.
    """

    def __init__(self,
                 class_prompts: List[List[str]],
                 tokenizer,
                 tower: TextTower,
                 templates: Sequence[str] = DEFAULT_TEMPLATES,
                 num_classes: Optional[int] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(class_prompts, tokenizer, tower, num_classes=num_classes, init_cfg=init_cfg)
        self.templates = _check_templates(templates)
        texts, entry_class = [], []
        for k, names in enumerate(self.class_prompts):
            for name in names:
                for template in self.templates:
                    texts.append(template.format(name))
                    entry_class.append(k)
        tokens = tokenizer(texts, context_length=self.context_length)  # (N, L)
        self._register_entries(tokens, entry_class)


class _ContextPromptLearner(BasePromptLearner):
    """Shared machinery of the learnable prompt learners: prompt groups with learnable context vectors.

    A *group* is one prompt layout ``[SOT] pre_1..pre_a <name> post_1..post_b <tail> [EOT]`` with
    ``a + b`` learnable vectors (a parameter ``ctx[g]`` of shape (a + b, C), or (K, a + b, C) when
    class-specific) and fixed ``tail`` tokens. Every class name is laid out in every group; the learned
    vectors are written into the token embeddings with one ``index_put``.
    """

    def _init_groups(self, tokenizer, tower: TextTower, groups: List[dict], class_specific: bool,
                     option: str) -> None:
        """Build the token batch and the context parameters.

        Args:
            groups (list[dict]): Each with ``n_pre`` (int), ``n_post`` (int), ``tail`` (list of token
                ids) and ``init``: None (random), a tensor (n, C) shared by all classes, or a tensor
                (K, n, C) of per-class inits.
            option (str): Config option named in error messages.
        """
        if not (hasattr(tokenizer, 'encode') and hasattr(tokenizer, 'sot_token_id')
                and hasattr(tokenizer, 'eot_token_id')):
            raise TypeError(f'{type(self).__name__} needs open_clip\'s BPE SimpleTokenizer, got '
                            f'{type(tokenizer).__name__}; use '
                            "prompt=dict(type='TemplatePromptLearner') instead.")
        self.class_specific = bool(class_specific)
        sot, eot = tokenizer.sot_token_id, tokenizer.eot_token_id
        placeholder = tokenizer.encode('X')[0]
        name_ids = [[tokenizer.encode(n) for n in names] for names in self.class_prompts]

        rows, entry_class = [], []
        flat_rows, flat_pos, flat_cls, flat_slot = [], [], [], []
        self._group_ranges = []  # (start, end) into the flat context-element arrays
        params = []
        for group in groups:
            n_pre, n_post = group['n_pre'], group['n_post']
            start = len(flat_rows)
            for k, names in enumerate(name_ids):
                for ids in names:
                    ctx_pre, ctx_post = [placeholder] * n_pre, [placeholder] * n_post
                    seq = [sot] + ctx_pre + ids + ctx_post + group['tail'] + [eot]
                    if len(seq) > self.context_length:
                        raise ValueError(
                            f'{option}: the prompt for {self.class_prompts[k]} needs {len(seq)} tokens, '
                            f'more than the context length {self.context_length}; use fewer context '
                            'vectors.')
                    row = len(rows)
                    name_end = 1 + n_pre + len(ids)
                    pos = list(range(1, 1 + n_pre)) + list(range(name_end, name_end + n_post))
                    flat_rows += [row] * len(pos)
                    flat_pos += pos
                    flat_cls += [k] * len(pos)
                    flat_slot += list(range(len(pos)))
                    rows.append(seq + [0] * (self.context_length - len(seq)))
                    entry_class.append(k)
            self._group_ranges.append((start, len(flat_rows)))
            params.append(self._make_context(group['init'], n_pre + n_post, tower))

        self._register_entries(torch.tensor(rows, dtype=torch.long), entry_class)
        for name, values in (('ctx_rows', flat_rows), ('ctx_pos', flat_pos), ('ctx_cls', flat_cls),
                             ('ctx_slot', flat_slot)):
            self.register_buffer(name, torch.tensor(values, dtype=torch.long), persistent=False)
        self.ctx = nn.ParameterList(params)

    def _make_context(self, init: Optional[torch.Tensor], n: int, tower: TextTower) -> nn.Parameter:
        """Context parameter (n, C), or (K, n, C) when class-specific."""
        width = tower.width
        dtype = tower.token_embedding.weight.dtype
        if init is None:
            shape = (self.num_classes, n, width) if self.class_specific else (n, width)
            ctx = torch.empty(shape, dtype=dtype)
            nn.init.normal_(ctx, std=self.ctx_std)
        else:
            ctx = init.detach().clone().to(dtype)
            if self.class_specific and ctx.dim() == 2:
                ctx = ctx.unsqueeze(0).repeat(self.num_classes, 1, 1)  # (K, n, C)
        return nn.Parameter(ctx)

    @staticmethod
    def _embed_ids(tower: TextTower, ids: List[int]) -> torch.Tensor:
        """Frozen token embeddings of ``ids``, (n, C)."""
        with torch.no_grad():
            weight = tower.token_embedding.weight
            return weight[torch.tensor(ids, dtype=torch.long, device=weight.device)].detach().cpu()

    def prompt_embeddings(self, tower: TextTower) -> torch.Tensor:
        """Token embeddings (N, L, C) with the learnable context written in."""
        embeds = tower.embed(self.tokens)  # (N, L, C)
        values = []
        for ctx, (start, end) in zip(self.ctx, self._group_ranges):
            if end == start:
                continue
            slot = self.ctx_slot[start:end]
            if self.class_specific:
                values.append(ctx[self.ctx_cls[start:end], slot])  # (M_g, C)
            else:
                values.append(ctx[slot])  # (M_g, C)
        if not values:
            return embeds
        values = torch.cat(values).to(embeds.dtype)  # (M, C)
        return embeds.index_put((self.ctx_rows, self.ctx_pos), values)


@register_seg_and_det
class CoOpPromptLearner(_ContextPromptLearner):
    """CoOp learnable context.

    Args:
        class_prompts, tokenizer, tower, num_classes, init_cfg: See :class:`BasePromptLearner`.
        n_ctx (int, optional): Number of context vectors. Defaults to the token count of
            ``ctx_init``, or 16 when ``ctx_init`` is None; must agree with ``ctx_init`` if both given.
        ctx_init (str | list[str], optional): Phrase whose token embeddings initialise the context
            (``'a photo of a'``); with ``class_specific=True`` also a list with one phrase per class
            (all of the same token count). None: random init (normal, std ``ctx_std``).
            Defaults to ``'a photo of a'``.
        class_specific (bool): One context set per class instead of one shared. Defaults to False.
        class_token_position (str): ``'end'``, ``'middle'`` or ``'front'``. Defaults to ``'end'``.
        ctx_std (float): Std of the random init. Defaults to 0.02.
    """

    def __init__(self,
                 class_prompts: List[List[str]],
                 tokenizer,
                 tower: TextTower,
                 n_ctx: Optional[int] = None,
                 ctx_init: Union[str, Sequence[str], None] = 'a photo of a',
                 class_specific: bool = False,
                 class_token_position: str = 'end',
                 ctx_std: float = 0.02,
                 num_classes: Optional[int] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(class_prompts, tokenizer, tower, num_classes=num_classes, init_cfg=init_cfg)
        if class_token_position not in ('end', 'middle', 'front'):
            raise ValueError(f"prompt.class_token_position must be 'end', 'middle' or 'front', got "
                             f'{class_token_position!r}.')
        self.ctx_std = float(ctx_std)
        self.class_token_position = class_token_position
        self.class_specific = bool(class_specific)

        init = None
        if ctx_init is not None and not isinstance(ctx_init, str):
            phrases = list(ctx_init)
            if not self.class_specific:
                raise ValueError('prompt.ctx_init is a list (one phrase per class), which needs '
                                 'prompt.class_specific=True; give a single phrase otherwise.')
            if len(phrases) != self.num_classes:
                raise ValueError(f'prompt.ctx_init has {len(phrases)} phrases but there are '
                                 f'{self.num_classes} classes (class-specific context needs one phrase '
                                 'per class, in class order).')
            ids = [tokenizer.encode(p) for p in phrases]
            lengths = sorted({len(i) for i in ids})
            if len(lengths) != 1:
                raise ValueError(f'prompt.ctx_init: all class-specific phrases must have the same token '
                                 f'count, got counts {lengths}.')
            init = torch.stack([self._embed_ids(tower, i) for i in ids])  # (K, n, C)
            n_init = lengths[0]
        elif ctx_init is not None:
            ids = tokenizer.encode(ctx_init)
            if not ids:
                raise ValueError(f'prompt.ctx_init={ctx_init!r} has no tokens.')
            init = self._embed_ids(tower, ids)  # (n, C)
            n_init = len(ids)
        if init is not None:
            if n_ctx is not None and n_ctx != n_init:
                raise ValueError(f'prompt.n_ctx={n_ctx} disagrees with prompt.ctx_init={ctx_init!r}, '
                                 f'which has {n_init} tokens; drop n_ctx or make them agree.')
            n_ctx = n_init
        elif n_ctx is None:
            n_ctx = 16
        if n_ctx < 1:
            raise ValueError(f'prompt.n_ctx must be >= 1, got {n_ctx}.')
        self.n_ctx = int(n_ctx)

        n_pre = {'end': self.n_ctx, 'middle': self.n_ctx // 2, 'front': 0}[class_token_position]
        groups = [dict(n_pre=n_pre, n_post=self.n_ctx - n_pre, tail=tokenizer.encode('.'), init=init)]
        self._init_groups(tokenizer, tower, groups, self.class_specific, 'prompt.n_ctx')


@register_seg_and_det
class EnsemblePromptLearner(_ContextPromptLearner):
    """Learnable template ensemble.

    One learnable context set per template, initialised from the template's token embeddings (the
    words before and after ``'{}'``; a final ``'.'`` stays fixed). Output at init = the
    :class:`TemplatePromptLearner`'s output for the same templates.

    Args:
        class_prompts, tokenizer, tower, num_classes, init_cfg: See :class:`BasePromptLearner`.
        templates (Sequence[str]): Templates with one ``'{}'``. Defaults to :data:`DEFAULT_TEMPLATES`.
        class_specific (bool): One context set per (template, class) instead of per template.
            Defaults to False.
    """

    def __init__(self,
                 class_prompts: List[List[str]],
                 tokenizer,
                 tower: TextTower,
                 templates: Sequence[str] = DEFAULT_TEMPLATES,
                 class_specific: bool = False,
                 num_classes: Optional[int] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(class_prompts, tokenizer, tower, num_classes=num_classes, init_cfg=init_cfg)
        self.templates = _check_templates(templates)
        self.class_specific = bool(class_specific)
        self.ctx_std = 0.02
        groups = []
        for template in self.templates:
            pre_text, post_text = template.split('{}')
            post_text = post_text.rstrip()
            tail = []
            if post_text.endswith('.'):
                post_text, tail = post_text[:-1], tokenizer.encode('.')
            pre_ids, post_ids = tokenizer.encode(pre_text), tokenizer.encode(post_text)
            init = self._embed_ids(tower, pre_ids + post_ids)  # (n, C)
            groups.append(dict(n_pre=len(pre_ids), n_post=len(post_ids), tail=tail, init=init))
        self._init_groups(tokenizer, tower, groups, self.class_specific, 'prompt.templates')


#: The prompt modes of ``prompt=dict(type=...)`` before the learners were built from the registry.
for _old, _new in (('template', TemplatePromptLearner), ('learnable', CoOpPromptLearner),
                   ('learnable_ensemble', EnsemblePromptLearner)):
    register_deprecated_alias((MODELS, DET_MODELS), _old, _new)
