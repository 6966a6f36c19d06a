"""Zero-shot class embeddings of an open_clip model: a prompt ensemble of each class's words.

Used by the CLIP class verifier, the CLIP tagger and the zero-shot evaluation of pretrained CLIPs
(the prompt-ensemble recipe of Radford et al., "Learning Transferable Visual Models From Natural
Language Supervision", ICML 2021).
"""
from typing import Sequence

import open_clip
import torch
import torch.nn.functional as F

__all__ = ['ZERO_SHOT_TEMPLATES', 'class_embeddings']

#: Prompt templates of the zero-shot class embeddings.
ZERO_SHOT_TEMPLATES = ('a photo of a {}.', 'a {}.', 'there is a {} in the picture.', 'an image of a {}.')


@torch.no_grad()
def class_embeddings(model, model_name: str, class_words: Sequence[Sequence[str]],
                     templates: Sequence[str] = ZERO_SHOT_TEMPLATES) -> torch.Tensor:
    """One unit-norm embedding per class: the normalised mean over its words and the templates.

    Returns:
        Tensor: (K, D).
    """
    tokenizer = open_clip.get_tokenizer(model_name)
    rows = []
    for words in class_words:
        prompts = [t.format(w) for w in words for t in templates]
        rows.append(F.normalize(F.normalize(model.encode_text(tokenizer(prompts)), dim=-1).mean(0), dim=0))
    return torch.stack(rows)
