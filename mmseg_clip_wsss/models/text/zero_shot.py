"""Zero-shot class embeddings of an open_clip model: a prompt ensemble of each class's words.

Used by the CLIP class verifier, the CLIP tagger and the zero-shot evaluation of pretrained CLIPs
(the prompt-ensemble recipe of Radford et al., "Learning Transferable Visual Models From Natural
Language Supervision", ICML 2021).
"""
import time
from typing import List, Sequence, Tuple

import open_clip
import torch
import torch.nn.functional as F
from mmengine.logging import print_log

__all__ = ['ZERO_SHOT_TEMPLATES', 'class_embeddings']

#: Prompt templates of the zero-shot class embeddings.
ZERO_SHOT_TEMPLATES = ('a photo of a {}.', 'a {}.', 'there is a {} in the picture.', 'an image of a {}.')


def _prompts(class_words: Sequence[Sequence[str]], templates: Sequence[str]) -> Tuple[List[str], List[int]]:
    """Every prompt (each word of each class in each template) and the class it belongs to."""
    prompts, owner = [], []
    for k, words in enumerate(class_words):
        for word in words:
            prompts += [t.format(word) for t in templates]
            owner += [k] * len(templates)
    return prompts, owner


def _log_progress(done: int, total: int, num_classes: int, started: float, after_s: float) -> None:
    """A line of progress once encoding has run longer than ``after_s`` seconds."""
    elapsed = time.perf_counter() - started
    if elapsed > after_s and done < total:
        left = elapsed / done * (total - done)
        print_log(f'class embeddings of {num_classes} names: {done}/{total} prompts encoded, about '
                  f'{left:.0f} s left', logger='current')


@torch.no_grad()
def class_embeddings(model,
                     model_name: str,
                     class_words: Sequence[Sequence[str]],
                     templates: Sequence[str] = ZERO_SHOT_TEMPLATES,
                     batch_size: int = 256,
                     progress_after_s: float = 5.0) -> torch.Tensor:
    """One unit-norm embedding per class: the normalised mean over its words and the templates.

    The prompts of all classes are tokenised once and encoded in batches of ``batch_size`` (one text
    tower call per batch, not one per class: 200 names cost a few calls); when encoding takes longer
    than ``progress_after_s`` seconds, the log says how far it is after every batch.

    Args:
        model: open_clip model (its ``encode_text``).
        model_name (str): Its open_clip model config, for the tokenizer.
        class_words (Sequence[Sequence[str]]): Per class, its name and synonyms.
        templates (Sequence[str]): Prompt templates with one ``{}``. Defaults to
            :data:`ZERO_SHOT_TEMPLATES`.
        batch_size (int): Prompts per text tower call. Defaults to 256.
        progress_after_s (float): Seconds after which progress is logged. Defaults to 5.

    Returns:
        Tensor: (K, D) in the model's dtype, on its device.
    """
    prompts, owner = _prompts(class_words, templates)
    device = next(model.parameters()).device
    tokens = open_clip.get_tokenizer(model_name)(prompts).to(device)  # (N, L)
    started, feats = time.perf_counter(), []
    for start in range(0, len(prompts), batch_size):
        feats.append(F.normalize(model.encode_text(tokens[start:start + batch_size]), dim=-1))
        _log_progress(start + len(feats[-1]), len(prompts), len(class_words), started, progress_after_s)
    feats = torch.cat(feats)  # (N, D), the model's dtype
    owner = torch.tensor(owner, device=device)
    sums = feats.new_zeros(len(class_words), feats.shape[1], dtype=torch.float32).index_add_(
        0, owner, feats.float())
    counts = torch.bincount(owner, minlength=len(class_words)).clamp(min=1)
    return F.normalize(sums / counts[:, None].float(), dim=-1).to(feats.dtype)  # (K, D)
