"""Image-level label files from descriptions: the classes each image's captions name.

The pseudo-mask protocol restricts every CAM to the classes of its image; for a run that learned
from captions alone those classes come from the captions too (no instance annotation is read).
:func:`captions_to_labels` reads a captions file (COCO JSON or JSONL), finds the classes every image's
descriptions name with :class:`~mmseg_clip_wsss.models.text.DescriptionTargets` (word and synonym
matches; with a CLIP text tower also its evidence) and writes a label file
(:mod:`mmseg_clip_wsss.datasets.image_labels` format) and, optionally, the split file of the images.
"""
from typing import Dict, Optional, Sequence, Union

import torch

from mmseg_clip_wsss.datasets import (atomic_file, caption_image_id, dataset_classes, read_caption_file,
                                      write_image_labels)
from mmseg_clip_wsss.models.text import CLIPPromptTextEncoder, DescriptionTargets, resolve_class_prompts
from mmseg_clip_wsss.models.text.vocabularies import DESCRIPTION_WORDS

__all__ = ['captions_to_labels']


def _targets(pairs, prompts, extra_words, text_encoder, batch: int = 256):
    """(N, K) targets of every image, ``batch`` images at a time."""
    targets = DescriptionTargets(prompts, extra_words=extra_words)
    class_embeds = text_encoder() if text_encoder is not None else None
    rows = []
    for start in range(0, len(pairs), batch):
        texts = [captions for _, captions in pairs[start:start + batch]]
        embeds = None
        if text_encoder is not None:
            embeds = text_encoder.encode_texts([t for per_image in texts for t in per_image])
        rows.append(targets(texts, embeds, class_embeds)[0].cpu())
    return torch.cat(rows)


@torch.no_grad()
def captions_to_labels(caption_file: str,
                       out_file: str,
                       classes: Union[str, Sequence[str]] = 'coco',
                       split_out: Optional[str] = None,
                       extra_words: Union[str, Dict, None] = 'auto',
                       clip_model: Optional[str] = None,
                       clip_pretrained: Optional[str] = None) -> Dict:
    """Write the label file of the classes each image's descriptions name.

    Args:
        caption_file (str): COCO captions JSON or JSONL (by extension).
        out_file (str): Label file to write (ids: image file names without extension).
        classes (str | Sequence[str]): A dataset vocabulary (``'coco'``, ``'voc'``, ``'demo'``) or the
            class list, ``'background'`` first. Defaults to ``'coco'``.
        split_out (str, optional): Also write the split file of every captioned image.
        extra_words (str | dict, optional): Caption words of the classes (``DescriptionTargets``);
            ``'auto'``: the vocabulary's :data:`DESCRIPTION_WORDS` when ``classes`` names one.
        clip_model (str, optional): open_clip model name of a text tower for the CLIP evidence;
            None: word matches alone.
        clip_pretrained (str, optional): Its pretrained tag or checkpoint file.

    Returns:
        dict: ``images``, ``with_classes`` (images whose descriptions name a class), ``out_file``.

    Raises:
        DatasetError, MissingDatasetFileError: a bad or missing captions file (named).
        ValueError: a class list that does not start with ``'background'``.
    """
    names = list(dataset_classes(classes)) if isinstance(classes, str) else list(classes)
    if not names or str(names[0]).lower() != 'background':
        raise ValueError(f"captions_to_labels: the class list must start with 'background' (its channel 0), "
                         f"got {names[:3]}...; e.g. --classes background,{','.join(map(str, names[:2]))}.")
    pairs = read_caption_file(caption_file)
    prompts = resolve_class_prompts(classes, 'captions_to_labels classes')
    if extra_words == 'auto':
        extra_words = classes if isinstance(classes, str) and classes in DESCRIPTION_WORDS else None
    encoder = None
    if clip_model:
        encoder = CLIPPromptTextEncoder(class_names=classes, model_name=clip_model, pretrained=clip_pretrained)
    targets = _targets(pairs, prompts, extra_words, encoder.eval() if encoder is not None else None)
    labels = {}
    for (image, _), row in zip(pairs, targets):
        labels[caption_image_id(image)] = [names[k] for k in row.nonzero().flatten().tolist() if k > 0]
    write_image_labels(out_file, labels, header=[f'classes named by the descriptions of {caption_file}'])
    if split_out:
        with atomic_file(split_out, 'w', newline='\n') as f:
            f.writelines(f'{image_id}\n' for image_id in labels)
    return dict(images=len(labels), with_classes=sum(bool(v) for v in labels.values()), out_file=out_file)
