"""Contrastive training of an open_clip model on the image-caption pairs of a :class:`CaptionCorpus`:
from a random init (pretraining) or from weights (``PretrainConfig.pretrained``: fine-tuning).

open_clip's model classes, BPE tokenizer and loss (:class:`MultiPositiveClipLoss`, a ``ClipLoss``
whose targets are the true caption-image pairs: the corpus's claims where it has them, else each
image's own caption, the plain CLIP objective) with a learnable temperature; AdamW
(no weight decay on gains, biases, embeddings and the temperature), linear warm-up then cosine decay.
``work_dir/latest.pth`` is written every ``checkpoint_interval`` steps (model, optimiser, schedule,
step) and :func:`pretrain_clip` resumes from it with ``resume=True``; the result is
``work_dir/clip.pt``, an open_clip state dict that ``open_clip.create_model(name, pretrained=path)``,
:class:`CLIPPromptTextEncoder` and :class:`CLIPVisionBackbone` load like downloaded weights.
"""
import math
import os
import os.path as osp
import time
from dataclasses import asdict, dataclass
from typing import Dict, Iterator, List, Optional

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import get_model_preprocess_cfg
from tqdm import tqdm

from mmseg_clip_wsss.models.clip_windows import normalise_images
from mmseg_clip_wsss.models.open_clip_models import DEMO_CLIP_NAME, load_open_clip
from mmseg_clip_wsss.models.text.text_tower import TextTower
from mmseg_clip_wsss.datasets.synthetic.captions import truth_matrix
from mmseg_clip_wsss.datasets.synthetic.corpus import CaptionCorpus
from .hard_negatives import CAPTION_CLAIM_FIELDS, class_swap_negatives
from .loss import MultiPositiveClipLoss

__all__ = ['PretrainConfig', 'pretrain_clip', 'normalise_images', 'encode_captions', 'native_bf16_amp',
           'settings_differences']

CLAIM_FIELDS = ('class_set', 'counts', 'objects', 'count_claims', 'descriptors')


@dataclass
class PretrainConfig:
    """Pretraining schedule.

    Args:
        model_name (str): open_clip model config. Defaults to :data:`DEMO_CLIP_NAME`.
        steps (int): Optimiser steps. Defaults to 1000 (zero-shot mAP 93.5 on the demo world's val
            split against 88.7 after 400; docs/demo_clip.md).
        batch_size (int): Pairs per step. Defaults to 128.
        lr (float): Peak learning rate. Defaults to 2e-3.
        weight_decay (float): AdamW weight decay of the weight matrices. Defaults to 0.1.
        warmup (float): Fraction of the steps with a linear warm-up. Defaults to 0.05.
        logit_scale_lr_mult (float): Learning-rate factor of the temperature: Adam moves a parameter
            by about ``lr`` per step, so a short schedule needs a larger step for the log-scale
            to move at all. Defaults to 10.
        seed (int): Seed of the initialisation and the batch order. Defaults to 0.
        checkpoint_interval (int): Steps between ``latest.pth`` checkpoints. Defaults to 100.
        pretrained (str, optional): Weights to fine-tune (an open_clip pretrained tag, e.g.
            ``'openai'``, or a local checkpoint file); None trains from a random init. Defaults to None.
        amp (str, optional): ``'bf16'``: the image tower's forward pass under bfloat16 autocast (the
            text tower, the loss, the optimiser and the weights stay float32: the small text
            transformer gains nothing from it). On a CPU with AMX / AVX512-BF16 the demo's
            ModifiedResNet image tower runs forward + backward 1.6x faster (2.4x with
            ``channels_last``), a whole step of batch 128 at 64 px 1.56x. None: float32.
            Defaults to None.
        channels_last (bool, optional): The image tower's weights and inputs in channels-last memory
            format (faster convolutions on CPU: 1.3x for the demo's tower in float32). The saved
            state dict is the same either way. None / False: the default layout. Defaults to None.
        hard_negatives (bool, optional): Every caption also as a hard negative with its classes
            swapped for others (:mod:`.hard_negatives`, NegCLIP): an extra column of the
            image-to-text cross-entropy per pair, so the text tower encodes twice the captions
            (1,000 steps of the demo CLIP in 540 s instead of 402 on the AMD EPYC of
            docs/demo_clip.md). Needs a corpus with claims. None / False: none. Defaults to None.
    """
    model_name: str = DEMO_CLIP_NAME
    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: float = 0.05
    logit_scale_lr_mult: float = 10.0
    seed: int = 0
    checkpoint_interval: int = 100
    pretrained: Optional[str] = None
    amp: Optional[str] = None
    channels_last: Optional[bool] = None
    hard_negatives: Optional[bool] = None

    def __post_init__(self):
        if self.amp not in (None, 'bf16'):
            raise ValueError(f"PretrainConfig: amp={self.amp!r} must be None or 'bf16'.")


def native_bf16_amp() -> Optional[str]:
    """``'bf16'`` where this CPU computes in bfloat16 natively (AVX512-BF16 or AMX-BF16, by
    :func:`torch.cpu.get_capabilities`), else None: bfloat16 autocast on a CPU without them is
    emulated and slower than float32."""
    capabilities = torch.cpu.get_capabilities()
    return 'bf16' if capabilities.get('avx512_bf16') or capabilities.get('amx_bf16') else None


def encode_captions(tower: TextTower, tokens: torch.Tensor) -> torch.Tensor:
    """Caption embeddings (N, D) of token ids (N, L), cut after the last end-of-text token."""
    return tower(tower.embed(tokens), tokens)


def _batches(num: int, batch_size: int, seed: int, start_step: int) -> Iterator[np.ndarray]:
    """Indices of every step from ``start_step`` on: shuffled epochs, the last partial batch dropped."""
    per_epoch = num // batch_size
    if per_epoch == 0:
        raise ValueError(f'pretrain_clip: the corpus has {num} pairs, fewer than one batch of {batch_size}.')
    step = start_step
    while True:
        epoch, k = divmod(step, per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(num)
        yield order[k * batch_size:(k + 1) * batch_size]
        step += 1


def _param_groups(model, cfg: PretrainConfig):
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if name == 'logit_scale':
            continue
        (no_decay if param.ndim < 2 or 'embedding' in name else decay).append(param)
    return [dict(params=decay, weight_decay=cfg.weight_decay),
            dict(params=no_decay, weight_decay=0.0),
            dict(params=[model.logit_scale], weight_decay=0.0, lr=cfg.lr * cfg.logit_scale_lr_mult)]


def _schedule(cfg: PretrainConfig):
    warm = max(1, int(round(cfg.warmup * cfg.steps)))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, cfg.steps - warm)))

    return factor


def _save(obj: dict, path: str) -> None:
    tmp = f'{path}.tmp'
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _init_model(cfg: PretrainConfig):
    """The model to train: ``cfg.pretrained``'s weights, or a random init seeded with ``cfg.seed``
    (under a forked RNG)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return load_open_clip(cfg.model_name, cfg.pretrained, owner='pretrain_clip', warn_random=False)


def _check_image_size(model, corpus: CaptionCorpus, model_name: str) -> None:
    """Raise a ValueError when the corpus images are not the model's input size."""
    size = get_model_preprocess_cfg(model)['size']
    size = size if isinstance(size, int) else size[0]
    if corpus.images.shape[1] != size:
        raise ValueError(f'pretrain_clip: corpus images are {corpus.images.shape[1]} px but '
                         f'{model_name} takes {size} px; draw the corpus with image_size={size}.')


def _without_none(value):
    """``value`` with the dict entries that hold None left out, at every depth."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def settings_differences(recorded: Dict, settings: Dict) -> List[str]:
    """``'key: recorded -> now'`` for every (dotted, nested) field where two settings differ; empty
    when they are the same. A field that holds None is the same as an absent one, at every depth, so a
    record written before a field with the default None existed still matches."""
    return _differences(_without_none(recorded), _without_none(settings), '')


def _differences(recorded: Dict, settings: Dict, prefix: str) -> List[str]:
    lines = []
    for key in sorted(set(recorded) | set(settings)):
        old, new = recorded.get(key), settings.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            lines += _differences(old, new, f'{prefix}{key}.')
        elif old != new:
            lines.append(f'{prefix}{key}: {_short(old)} -> {_short(new)}')
    return lines


def _short(value, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + '...'


def _resume_step(latest: str, resume: bool, cfg: PretrainConfig, model, optimizer, scheduler) -> int:
    """Load the state of ``latest`` (with ``resume``, if it exists); returns the step to start at."""
    if not (resume and osp.isfile(latest)):
        return 0
    state = torch.load(latest, map_location='cpu', weights_only=True)
    changed = '; '.join(settings_differences(state['config'], asdict(cfg)))
    if changed:
        raise ValueError(f'pretrain_clip: {latest} is an unfinished run of another configuration '
                         f'(its setting -> this one: {changed}): pass the options it was started with '
                         'to finish it, or --fresh (or --no-resume) to start over with these.')
    model.load_state_dict(state['state_dict'])
    optimizer.load_state_dict(state['optimizer'])
    scheduler.load_state_dict(state['scheduler'])
    return int(state['step'])


@dataclass
class _Negatives:
    """The class-swapped negative of every caption: tokens (N, L), caption claims, (N,) valid."""
    tokens: torch.Tensor
    claims: Dict[str, torch.Tensor]
    valid: torch.Tensor


def _hard_negatives(corpus: CaptionCorpus, cfg: PretrainConfig) -> Optional[_Negatives]:
    """The negatives of ``cfg.hard_negatives`` (None without), drawn once with ``cfg.seed``.

    Raises:
        ValueError: a corpus without claims (which classes a caption names).
    """
    if not cfg.hard_negatives:
        return None
    if not corpus.claims:
        raise ValueError('PretrainConfig.hard_negatives needs the claims of a generated corpus (which classes '
                         'each caption names); this corpus has none: pretrain without --hard-negatives.')
    captions, claims, valid = class_swap_negatives(corpus.captions, corpus.claims, corpus.words_of_classes(),
                                                   cfg.seed)
    return _Negatives(open_clip.get_tokenizer(cfg.model_name)(captions),
                      {f: torch.from_numpy(v) for f, v in claims.items()}, torch.from_numpy(valid))


def _train_step(model, tower: TextTower, criterion, optimizer, scheduler, corpus: CaptionCorpus,
                tokens: torch.Tensor, claims: Optional[Dict[str, torch.Tensor]], indices: np.ndarray,
                cfg: PretrainConfig, negatives: Optional[_Negatives] = None) -> float:
    """One optimiser step on the pairs ``indices``; returns the loss."""
    idx = torch.from_numpy(indices)
    images = normalise_images(model, corpus.images[idx.numpy()])  # (B, 3, S, S)
    if cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=cfg.amp == 'bf16'):
        image_features = model.encode_image(images)
    image_features = F.normalize(image_features.float(), dim=-1)
    batch = {f: claims[f][idx] for f in CLAIM_FIELDS} if claims is not None else None
    targets = truth_matrix(**batch) if claims is not None else torch.eye(len(idx), dtype=torch.bool)
    extra = {}
    if negatives is not None:
        swapped = idx[negatives.valid[idx]]  # (M, ): pairs whose caption has a negative
        text_features = F.normalize(encode_captions(tower, torch.cat([tokens[idx], negatives.tokens[swapped]])),
                                    dim=-1)
        text_features, extra['negative_features'] = text_features[:len(idx)], text_features[len(idx):]
        caption = {f: negatives.claims[f][swapped] for f in CAPTION_CLAIM_FIELDS}
        extra['negative_targets'] = truth_matrix(  # the batch's images against the swapped captions
            batch['class_set'], batch['counts'], batch['objects'], caption['count_claims'], caption['descriptors'],
            caption_class_set=caption['class_set']).float()  # (B, M)
    else:
        text_features = F.normalize(encode_captions(tower, tokens[idx]), dim=-1)
    loss = criterion(image_features, text_features, model.logit_scale.exp(), targets.float(), **extra)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))
    return loss.item()


def pretrain_clip(corpus: CaptionCorpus, cfg: PretrainConfig, work_dir: str, resume: bool = False,
                  show_progress: bool = True) -> Dict:
    """Train an open_clip model on ``corpus``; write ``work_dir/clip.pt``.

    Args:
        corpus (CaptionCorpus): Images (at the model's input size), captions and, optionally, claims
            (which captions are true of which images; without them only each image's own caption is).
        cfg (PretrainConfig): Schedule.
        work_dir (str): Output folder (``latest.pth``, ``clip.pt``).
        resume (bool): Continue from ``work_dir/latest.pth`` if it exists. Defaults to False.
        show_progress (bool): A progress bar with the loss and the temperature. Defaults to True.

    Returns:
        dict: ``checkpoint`` (path of ``clip.pt``), ``seconds`` (this run's training time),
        ``loss`` (mean of the last 20 steps), ``logit_scale``, ``steps``.

    Raises:
        ValueError: a corpus whose image size is not the model's input size.
    """
    os.makedirs(work_dir, exist_ok=True)
    model = _init_model(cfg)
    _check_image_size(model, corpus, cfg.model_name)
    if cfg.channels_last:
        model.visual.to(memory_format=torch.channels_last)
    tower = TextTower(model)
    tokens = open_clip.get_tokenizer(cfg.model_name)(corpus.captions)  # (N, L)
    claims = {f: torch.from_numpy(corpus.claims[f]) for f in CLAIM_FIELDS} if corpus.claims else None
    negatives = _hard_negatives(corpus, cfg)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg))
    criterion = MultiPositiveClipLoss()
    latest = osp.join(work_dir, 'latest.pth')
    start = _resume_step(latest, resume, cfg, model, optimizer, scheduler)

    model.train()
    losses = []
    begin = time.time()
    bar = tqdm(total=cfg.steps, initial=start, desc='CLIP pretraining', disable=not show_progress,
               dynamic_ncols=True)
    batches = _batches(len(corpus), cfg.batch_size, cfg.seed, start)
    for step in range(start, cfg.steps):
        losses.append(_train_step(model, tower, criterion, optimizer, scheduler, corpus, tokens, claims,
                                  next(batches), cfg, negatives))
        bar.set_postfix(loss=f'{losses[-1]:.3f}', temperature=f'{1 / model.logit_scale.exp().item():.4f}')
        bar.update()
        if (step + 1) % cfg.checkpoint_interval == 0 or step + 1 == cfg.steps:
            _save(dict(state_dict=model.state_dict(), optimizer=optimizer.state_dict(),
                       scheduler=scheduler.state_dict(), step=step + 1, config=asdict(cfg)), latest)
    bar.close()
    out = osp.join(work_dir, 'clip.pt')
    # weights in the default memory layout, however they were trained (channels_last)
    _save(dict(state_dict={k: v.contiguous() for k, v in model.state_dict().items()}), out)
    if osp.isfile(latest):  # the run is finished: its resumable state has served
        os.remove(latest)
    return dict(checkpoint=out, seconds=round(time.time() - begin, 1),
                loss=float(np.mean(losses[-20:])) if losses else None,
                logit_scale=model.logit_scale.exp().item(), steps=cfg.steps)
