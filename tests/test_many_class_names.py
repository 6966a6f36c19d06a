"""Many class names are encoded in a few batched text tower calls, once per name list, with progress
when it takes long; the embeddings are those of encoding each class on its own."""
import math

import open_clip
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.models import load_open_clip
from mmseg_clip_wsss.models.segmentors import CLIPRegionVerifier, clip_region_verifier
from mmseg_clip_wsss.models.text import CLIPPromptTextEncoder, zero_shot
from mmseg_clip_wsss.models.text.zero_shot import ZERO_SHOT_TEMPLATES, class_embeddings

#: 200 distinct names (10 colours x 20 objects), the size of the slow case.
NAMES = [f'{c} {o}' for c in ('red', 'blue', 'green', 'yellow', 'black', 'white', 'orange', 'purple',
                              'pink', 'brown')
         for o in ('car', 'dog', 'cat', 'chair', 'table', 'bottle', 'cup', 'bird', 'horse', 'sheep',
                   'boat', 'train', 'bus', 'truck', 'kite', 'clock', 'vase', 'book', 'plant', 'lamp')]


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


def _counting(model):
    """Count the text tower calls of an open_clip model."""
    calls = []
    encode = model.encode_text

    def counted(tokens, *args, **kwargs):
        calls.append(len(tokens))
        return encode(tokens, *args, **kwargs)

    model.encode_text = counted
    return calls


def test_class_embeddings_encode_200_names_in_a_few_calls_as_if_one_by_one(tiny_clip):
    model = load_open_clip(tiny_clip['model_name'], tiny_clip['pretrained']).eval()
    words = [[name] for name in NAMES[:-1]] + [[NAMES[-1], 'a lamp']]  # synonyms average too
    calls = _counting(model)
    text = class_embeddings(model, tiny_clip['model_name'], words)  # batches of 256 prompts
    prompts = (len(NAMES) + 1) * len(ZERO_SHOT_TEMPLATES)
    assert calls == [256, 256, 256, prompts - 768] and math.ceil(prompts / 256) == 4
    tokenizer = open_clip.get_tokenizer(tiny_clip['model_name'])
    with torch.no_grad():  # the per-class reference: the class's prompts encoded on their own
        for k in (0, 57, len(NAMES) - 1):
            feats = model.encode_text(tokenizer([t.format(w) for w in words[k] for t in ZERO_SHOT_TEMPLATES]))
            expected = F.normalize(F.normalize(feats, dim=-1).mean(0), dim=0)
            torch.testing.assert_close(text[k], expected, atol=1e-5, rtol=1e-5)
    assert text.shape == (len(NAMES), model.text_projection.shape[1])


def test_long_encoding_logs_its_progress(tiny_clip, monkeypatch):
    model = load_open_clip(tiny_clip['model_name'], tiny_clip['pretrained']).eval()
    lines = []
    monkeypatch.setattr(zero_shot, 'print_log', lambda msg, **kwargs: lines.append(msg))
    class_embeddings(model, tiny_clip['model_name'], [[n] for n in NAMES[:100]], batch_size=128,
                     progress_after_s=0.0)
    assert [line.split(' prompts')[0] for line in lines] == [
        'class embeddings of 100 names: 128/400', 'class embeddings of 100 names: 256/400',
        'class embeddings of 100 names: 384/400']
    lines.clear()
    class_embeddings(model, tiny_clip['model_name'], [[n] for n in NAMES[:100]], batch_size=128)
    assert lines == []  # a short encoding says nothing


def test_the_verifier_encodes_each_name_list_once(tiny_clip, monkeypatch):
    verifier = CLIPRegionVerifier(tiny_clip['model_name'], tiny_clip['pretrained'])
    lists = []
    encode = clip_region_verifier.class_embeddings
    monkeypatch.setattr(clip_region_verifier, 'class_embeddings', lambda model, name, rows, templates:
                        lists.append(rows) or encode(model, name, rows, templates))
    prompts = [[n] for n in NAMES]
    verifier.set_class_prompts(prompts)
    verifier.set_class_prompts([list(p) for p in prompts])  # the same list: nothing to encode
    assert len(lists) == 1 and lists[0][:len(NAMES)] == prompts
    assert verifier.text.shape[0] == len(NAMES) + len(verifier.background_words)
    verifier.set_class_prompts(prompts[:3])
    assert len(lists) == 2 and verifier.num_classes == 3


def test_the_text_encoder_bounds_its_tower_calls_without_gradients(tiny_clip):
    encoder = CLIPPromptTextEncoder(class_names=['background'] + NAMES, **tiny_clip).eval()
    with torch.no_grad():
        whole = encoder.prompt_learner(encoder.text_tower)  # 201 x 8 = 1608 prompts: 2 calls of 1024
        calls = []
        tower = encoder.text_tower
        forward = tower.forward
        tower.forward = lambda x, tokens: calls.append(len(x)) or forward(x, tokens)
        encoder.prompt_learner.max_batch = 500
        chunked = encoder.prompt_learner(tower)
    assert calls == [500, 500, 500, 108]
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)


def test_the_verifier_encodes_the_crops_of_many_regions_in_bounded_batches(tiny_clip):
    verifier = CLIPRegionVerifier(tiny_clip['model_name'], tiny_clip['pretrained'])
    verifier.set_class_prompts([[n] for n in NAMES[:6]])
    cams = torch.zeros(1, 7, 40, 40)  # channel 0 background, one 6x6 region per foreground class
    for k in range(1, 7):
        cams[0, k, 6 * (k - 1):6 * k, 6 * (k - 1):6 * k] = 1.0
    images = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0)) * 255
    whole = verifier(images, cams, list(range(1, 7)))
    calls = []
    encode = verifier.model.encode_image
    verifier.model.encode_image = lambda x: calls.append(len(x)) or encode(x)
    verifier.crop_batch = 5
    assert torch.equal(verifier(images, cams, list(range(1, 7))), whole)
    assert calls == [5, 5, 2]  # 6 regions x (masked, context) crops
