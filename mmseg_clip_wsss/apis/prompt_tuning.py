"""Prompts tuned on image-level labels with both CLIP towers frozen, for the training-free CLIP-ES path.

:func:`tune_prompts` reads a training-free config (``model`` a :class:`TrainingFreeCLIPES`, plus a
``prompt_tuning`` section) and learns the context of the text rows -- the foreground classes and the
background words, prompted by a CoOp learner (:class:`~mmseg_clip_wsss.models.text.CoOpPromptLearner`;
Zhou et al., "Learning to Prompt for Vision-Language Models", IJCV 2022) -- from the image-level labels
of the training split alone:

1. every training image (labels only: the pipeline loads no mask) is embedded once by the frozen image
   tower, pooled as the CLIP-ES Grad-CAM pools, at the CAM protocol's scales and flips (one sample per
   view);
2. the context vectors are trained with a multi-label loss of those embeddings against the text rows
   (``prompt_tuning.loss``, :class:`~mmseg_clip_wsss.models.losses.BackgroundNegativePromptLoss` by
   default: DualCoOp's positive/negative prompts with the background prompts as the negatives, ASL).
   Only the context vectors have ``requires_grad``; no gradient reaches the image or the text tower;
3. the context, the rows, the class list and the CLIP's fingerprint are saved as a learned-prompts file
   (:mod:`~mmseg_clip_wsss.models.text.learned_prompts`), which the same config's ``model.prompts``
   loads for the CAMs (``tools/make_pseudo_masks.py CONFIG --eval``).

``prompt_tuning`` keys (defaults in :data:`DEFAULT_PROMPT_TUNING`): ``prompt`` (the learner config),
``loss``, ``epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``optimizer`` (``'sgd'`` with momentum
0.9, as CoOp, or ``'adamw'``), cosine learning-rate decay, ``scales`` and ``flip`` (None: the config's
``cam_cfg``), ``seed``, and ``embedding``: ``'image'`` (the pooled image embedding, as CLIP-ES scores
it) or ``'regions'`` (the embedding of every position, the loss max-pooled over them; a ModifiedResNet's
image embedding is their attention-weighted sum; memory: N x views x positions x D floats), and
``anchor_weight``: the weight of KgCoOp's penalty (Yao et al., "Visual-Language Prompt Tuning with
Knowledge-guided Context Optimization", CVPR 2023; 8 there): the mean of ``1 - cos`` between every
row and the row before tuning (the hand-written prompt when the learner starts from it); 0: none;
``tune_background``: False keeps the background rows as initialised (needs ``class_specific=True``).
"""
import copy
import logging
import math
import os.path as osp
import time
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from mmseg_clip_wsss.cam.inference import scaled_size
from mmseg_clip_wsss.cam.protocol import CAMProtocol
from mmseg_clip_wsss.models.text import save_learned_prompts
from mmseg_clip_wsss.registry import MODELS
from mmseg_clip_wsss.structures import stack_image_labels

__all__ = ['DEFAULT_PROMPT_TUNING', 'build_tuning_model', 'tuning_dataloader_cfg', 'embed_training_images',
           'train_context', 'tune_prompts']

#: Defaults of a config's ``prompt_tuning`` section.
DEFAULT_PROMPT_TUNING = dict(
    prompt=dict(type='CoOpPromptLearner', ctx_init='a photo of a', class_specific=False),
    loss=dict(type='BackgroundNegativePromptLoss', gamma_pos=0.0, gamma_neg=2.0, clip=0.05),
    epochs=40, batch_size=32, lr=0.002, weight_decay=0.0, optimizer='sgd', scales=None, flip=None,
    seed=0, embedding='image', anchor_weight=0.0, tune_background=True)

#: The pipeline of the tuning images: the image and its labels, never a mask.
TUNING_PIPELINE = [dict(type='LoadWSSSImage'), dict(type='PackWSSSInputs')]


def _name_defaults(cfg: Config) -> None:
    """Log one line: ``cfg`` has no ``prompt_tuning`` section, so the tuning uses the defaults, named
    with where to set them (a config without the section tuned with them without a word)."""
    defaults = ', '.join(f'{k}={v!r}' for k, v in DEFAULT_PROMPT_TUNING.items())
    print_log(f'tune_prompts: {cfg.filename or "the config"} has no prompt_tuning section; tuning with the '
              f'defaults ({defaults}); set any of them in a prompt_tuning = dict(...) section of the config '
              '(as configs/clip_es/clip-es-learned-prompts_demo-clip_demo.py does) or with --cfg-options '
              'prompt_tuning.KEY=VALUE (e.g. prompt_tuning.epochs=20).', logger='current', level=logging.WARNING)


def _tuning_options(cfg: Config) -> dict:
    """``DEFAULT_PROMPT_TUNING`` updated with the config's ``prompt_tuning`` (unknown keys refused); a
    config without the section is tuned with the defaults, named in one logged line."""
    if not cfg.get('prompt_tuning'):
        _name_defaults(cfg)
    given = dict(cfg.get('prompt_tuning') or {})
    unknown = sorted(set(given) - set(DEFAULT_PROMPT_TUNING))
    if unknown:
        raise ValueError(f'prompt_tuning: unknown keys {unknown}; known: {sorted(DEFAULT_PROMPT_TUNING)}.')
    options = copy.deepcopy(DEFAULT_PROMPT_TUNING)
    options.update(copy.deepcopy(given))
    if options['optimizer'] not in ('sgd', 'adamw'):
        raise ValueError(f"prompt_tuning.optimizer={options['optimizer']!r} must be 'sgd' or 'adamw'.")
    if not options['tune_background'] and not options['prompt'].get('class_specific'):
        raise ValueError('prompt_tuning.tune_background=False keeps the background rows as written, which '
                         'needs a context per row: set prompt_tuning.prompt.class_specific=True.')
    if options['embedding'] not in ('image', 'regions'):
        raise ValueError(f"prompt_tuning.embedding={options['embedding']!r} must be 'image' or 'regions'.")
    if int(options['epochs']) < 1 or int(options['batch_size']) < 1:
        raise ValueError('prompt_tuning: epochs and batch_size must be >= 1.')
    return options


def build_tuning_model(cfg: Config, prompt_cfg: dict):
    """The config's :class:`TrainingFreeCLIPES` with ``prompt_cfg`` as its prompt learner and no
    learned-prompts file; only the learner's parameters require gradients.

    Raises:
        ValueError: ``cfg.model`` is not a TrainingFreeCLIPES, or the learner learns nothing.
    """
    model_cfg = copy.deepcopy(cfg.model)
    if model_cfg.get('type') != 'TrainingFreeCLIPES':
        raise ValueError(f"tune_prompts: cfg.model is a {model_cfg.get('type')!r}; prompts are tuned for "
                         "the training-free path (type='TrainingFreeCLIPES', configs/clip_es/).")
    model_cfg['prompts'] = None
    model_cfg['text_encoder'] = dict(model_cfg['text_encoder'], prompt=dict(prompt_cfg))
    model = MODELS.build(model_cfg)
    params = list(model.text_encoder.prompt_learner.parameters())
    if not params:
        raise ValueError(f"tune_prompts: prompt_tuning.prompt type {prompt_cfg.get('type')!r} has no "
                         "learnable context; use 'CoOpPromptLearner' or 'EnsemblePromptLearner'.")
    for p in params:
        p.requires_grad_(True)
    return model


def _freeze_background_rows(model) -> None:
    """Zero the gradient of the background rows' context (class-specific learners: (rows, n, C)),
    so that they stay as initialised (the hand-written prompts)."""
    first = len(model.foreground)  # the rows after the foreground classes are background words

    def hook(grad):
        grad = grad.clone()
        grad[first:] = 0
        return grad

    for p in model.text_encoder.prompt_learner.parameters():
        p.register_hook(hook)


def tuning_dataloader_cfg(cfg: Config) -> dict:
    """``cfg.train_dataloader`` in order, one image per batch, with :data:`TUNING_PIPELINE` (the image
    and its image-level labels; no mask is loaded)."""
    if cfg.get('train_dataloader') is None:
        raise ValueError('tune_prompts: the config has no train_dataloader (the images and image-level '
                         'labels to tune on); inherit a configs/_base_/datasets/*_wsss.py.')
    dataset = copy.deepcopy(cfg.train_dataloader['dataset'])
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']  # RepeatDataset and other wrappers
    if 'datasets' in dataset and 'pipeline' not in dataset:
        dataset['datasets'] = [dict(d, pipeline=copy.deepcopy(TUNING_PIPELINE)) for d in dataset['datasets']]
    else:
        dataset['pipeline'] = copy.deepcopy(TUNING_PIPELINE)
    if 'with_gt_masks' in dataset:
        dataset['with_gt_masks'] = False
    return dict(batch_size=1, num_workers=cfg.train_dataloader.get('num_workers', 0) or 0,
                persistent_workers=False, dataset=dataset,
                sampler=dict(type='DefaultSampler', shuffle=False, round_up=False))


def _pad_regions(views: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Region embeddings of every view, (n_v, D) each -> padded (V, n, D) and the valid mask (V, n)."""
    n = max(len(v) for v in views)
    padded = views[0].new_zeros(len(views), n, views[0].shape[-1])
    mask = torch.zeros(len(views), n, dtype=torch.bool)
    for i, v in enumerate(views):
        padded[i, :len(v)], mask[i, :len(v)] = v, True
    return padded, mask


@torch.no_grad()
def embed_training_images(model, dataloader, scales, flip: bool, size_divisor: Optional[int],
                          show_progress: bool = True, regions: bool = False
                          ) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
    """Image (or region) embeddings of every image at every scale (and its flip), and the labels.

    Returns:
        tuple: embeddings (N, V, D) with V = ``len(scales) * (2 if flip else 1)`` views -- with
        ``regions``, (N, V, n, D) region embeddings padded to the most positions ``n`` and their valid
        mask (N, V, n), else None -- and labels (N, K - 1) of the foreground classes (the rows of the
        prompt learner, in order).
    """
    embeds, masks, labels = [], [], []
    bar = ProgressBar(len(dataloader)) if show_progress else None
    for batch in dataloader:
        data = model.data_preprocessor(batch, False)
        inputs = data['inputs']  # (1, 3, H, W)
        views = []
        for scale in scales:
            size = scaled_size(inputs.shape[-2:], float(scale), size_divisor)
            x = inputs if tuple(size) == tuple(inputs.shape[-2:]) else torch.nn.functional.interpolate(
                inputs, size=size, mode='bilinear', align_corners=False)
            views += [x, x.flip(-1)] if flip else [x]
        if regions:
            padded, mask = _pad_regions([model.region_embeddings(v)[0].float().cpu() for v in views])
            embeds.append(padded)  # (V, n, D)
            masks.append(mask)  # (V, n)
        else:
            embeds.append(torch.cat([model.image_embeddings(v) for v in views]).float().cpu())  # (V, D)
        labels.append(stack_image_labels(data['data_samples'])[:, model.foreground].cpu())  # (1, K - 1)
        if bar is not None:
            bar.update()
    if bar is not None:
        print()
    if not regions:
        return torch.stack(embeds), None, torch.cat(labels)
    n = max(e.shape[1] for e in embeds)
    embeds = [torch.nn.functional.pad(e, (0, 0, 0, n - e.shape[1])) for e in embeds]
    masks = [torch.nn.functional.pad(m, (0, n - m.shape[1])) for m in masks]
    return torch.stack(embeds), torch.stack(masks), torch.cat(labels)


def train_context(model, embeds: torch.Tensor, labels: torch.Tensor, options: dict,
                  show_progress: bool = True, mask: Optional[torch.Tensor] = None) -> List[float]:
    """Train the prompt learner's context on cached embeddings (every view a sample), cosine decay.

    Args:
        embeds (Tensor): (N, V, D) image or (N, V, n, D) region embeddings
            (:func:`embed_training_images`).
        labels (Tensor): (N, K - 1) foreground labels.
        options (dict): The ``prompt_tuning`` options.
        show_progress (bool): Log the loss of every epoch. Defaults to True.
        mask (Tensor, optional): (N, V, n) valid positions of region embeddings.

    Returns:
        list[float]: The mean loss of every epoch.
    """
    loss_fn = MODELS.build(options['loss'])
    if not options['tune_background']:
        _freeze_background_rows(model)
    params = [p for p in model.text_encoder.prompt_learner.parameters() if p.requires_grad]
    if options['optimizer'] == 'sgd':
        optim = torch.optim.SGD(params, lr=options['lr'], momentum=0.9, weight_decay=options['weight_decay'])
    else:
        optim = torch.optim.AdamW(params, lr=options['lr'], weight_decay=options['weight_decay'])
    n, v = embeds.shape[:2]
    device = params[0].device
    samples = embeds.flatten(0, 1).to(device)  # (N * V, [n,] D)
    valid = None if mask is None else mask.flatten(0, 1).to(device)  # (N * V, n)
    targets = labels.repeat_interleave(v, dim=0).to(device)  # (N * V, K - 1)
    batch, epochs = int(options['batch_size']), int(options['epochs'])
    steps = epochs * math.ceil(len(samples) / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    gen = torch.Generator().manual_seed(int(options['seed']))
    with torch.no_grad():
        anchor = model.text_encoder().detach().clone()  # (T, D) the rows before tuning
    history = []
    for epoch in range(epochs):
        order, total = torch.randperm(len(samples), generator=gen).to(device), 0.0
        for start in range(0, len(samples), batch):
            idx = order[start:start + batch]
            text = model.text_encoder()  # (T, D)
            loss = loss_fn(samples[idx], text, targets[idx], model.logit_scale,
                           None if valid is None else valid[idx])
            if options['anchor_weight']:  # KgCoOp: stay near the rows before tuning
                loss = loss + options['anchor_weight'] * (1 - (text * anchor).sum(dim=-1)).mean()
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / len(samples))
        if show_progress:
            print_log(f'prompt tuning: epoch {epoch + 1}/{epochs} loss {history[-1]:.4f}', logger='current')
    return history


def _clip_record(cfg: Config, model) -> dict:
    backbone = cfg.model['backbone']
    return dict(model_name=backbone.get('model_name'), pretrained=backbone.get('pretrained'),
                fingerprint=model.clip_fingerprint())


def tune_prompts(cfg: Config, out_file: Optional[str] = None, device: Optional[str] = None,
                 overwrite: bool = False, show_progress: bool = True) -> Dict:
    """Tune the prompts of ``cfg``'s training-free model on its training split's image labels and save
    them (see the module docstring).

    Args:
        cfg (Config): A training-free config with ``model`` (TrainingFreeCLIPES), ``train_dataloader``
            (images + image-level labels) and optionally ``prompt_tuning`` (without it: the defaults,
            :data:`DEFAULT_PROMPT_TUNING`, named in a logged warning) and ``cam_cfg``.
        out_file (str, optional): The learned-prompts file to write; None: ``cfg.model.prompts``.
        device (str, optional): ``'cpu'``, ``'cuda'``... None: cuda if available.
        overwrite (bool): Replace an existing file. Defaults to False (refused, naming the file).
        show_progress (bool): Progress bar and per-epoch log. Defaults to True.

    Returns:
        dict: ``out_file``, ``images``, ``views``, ``loss`` (per epoch), ``seconds``.

    Raises:
        ValueError: no output file, bad ``prompt_tuning`` options, or a model of another type.
        FileExistsError: ``out_file`` exists and ``overwrite`` is False.
    """
    out_file = out_file or cfg.model.get('prompts')
    if not out_file:
        raise ValueError('tune_prompts: no output file; pass --out FILE or set model.prompts in the config.')
    if osp.exists(out_file) and not overwrite:
        raise FileExistsError(f'tune_prompts: {out_file} exists; pass --overwrite to replace it or write '
                              'to another --out.')
    options = _tuning_options(cfg)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    torch.manual_seed(int(options['seed']))
    start = time.perf_counter()
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = build_tuning_model(cfg, options['prompt']).to(device)
    protocol = CAMProtocol.from_cfg(cfg.get('cam_cfg'))
    scales = options['scales'] or protocol.scales
    flip = protocol.flip if options['flip'] is None else bool(options['flip'])
    dataloader = Runner.build_dataloader(tuning_dataloader_cfg(cfg))
    embeds, mask, labels = embed_training_images(model, dataloader, scales, flip, protocol.size_divisor,
                                                 show_progress, options['embedding'] == 'regions')
    history = train_context(model, embeds, labels, options, show_progress, mask)
    meta = dict(options=options, loss=history, images=len(labels), views=embeds.shape[1],
                seconds=round(time.perf_counter() - start, 1))
    save_learned_prompts(out_file, options['prompt'], model.text_encoder.prompt_learner.state_dict(),
                         model.text_rows, cfg.model['class_names'], _clip_record(cfg, model), meta)
    print_log(f'learned prompts ({len(labels)} images x {embeds.shape[1]} views, loss {history[0]:.4f} -> '
              f'{history[-1]:.4f}) -> {out_file}', logger='current')
    return dict(out_file=out_file, images=len(labels), views=int(embeds.shape[1]), loss=history,
                seconds=meta['seconds'])
