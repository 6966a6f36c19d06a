"""The captioned corpus, the multi-positive CLIP loss, pretraining and the pretrained CLIP as an asset."""
import json
import os.path as osp
import re
from dataclasses import replace

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.datasets.synthetic.captions import GROUND_WORDS, truth_matrix
from mmseg_clip_wsss.datasets.synthetic.corpus import (CaptionCorpus, CorpusConfig, build_corpus, load_corpus,
                                                     save_corpus)
from mmseg_clip_wsss.clip_pretrain.hard_negatives import class_swap_negatives
from mmseg_clip_wsss.clip_pretrain.loss import MultiPositiveClipLoss
from mmseg_clip_wsss.clip_pretrain.pipeline import pretrain_from_world, same_settings, write_json
from mmseg_clip_wsss.clip_pretrain.train import CLAIM_FIELDS, PretrainConfig, pretrain_clip
from mmseg_clip_wsss.datasets.synthetic.world import world_preset
from mmseg_clip_wsss.models import TINY_CLIP_NAME
from mmseg_clip_wsss.models.backbones import CLIPVisionBackbone
from mmseg_clip_wsss.models.text import CLIPPromptTextEncoder

WORLD = world_preset('demo')
WORLD_NAMES = [c.name for c in WORLD.classes + WORLD.unseen]
NUMBERS = {'two': 2, 'three': 3, 'four': 4, 'five': 5, 'six': 6}


def _named_classes(caption: str, world) -> dict:
    """Count the objects a caption names, by class (articles, number words and plurals)."""
    words = {}
    for cls in world.classes + world.unseen:
        for word in cls.words:
            words[word] = cls.name
    found = {}
    text = caption.lower()
    # longest words first, so 'crescent moon' is not read as 'crescent' + a stray word
    for word in sorted(words, key=len, reverse=True):
        plural = word + ('es' if word.endswith(('s', 'sh', 'ch', 'x')) else 's')
        for m in re.finditer(rf'\b(a|an|{"|".join(NUMBERS)})\s+(?:[a-z]+\s+){{0,3}}?({re.escape(plural)}|'
                             rf'{re.escape(word)})\b', text):
            count = NUMBERS.get(m.group(1), 1)
            found[words[word]] = found.get(words[word], 0) + count
        text = re.sub(rf'\b({re.escape(plural)}|{re.escape(word)})\b', '#', text)
    return found


@pytest.fixture(scope='module')
def corpus():
    return build_corpus(WORLD, CorpusConfig(num_pairs=120, seed=7))


def test_corpus_is_deterministic_and_worker_independent(corpus, tmp_path):
    again = build_corpus(WORLD, CorpusConfig(num_pairs=120, seed=7), workers=2)
    assert again.captions == corpus.captions
    assert np.array_equal(again.images, corpus.images)
    for field in CLAIM_FIELDS:
        assert np.array_equal(again.claims[field], corpus.claims[field])
    other = build_corpus(WORLD, CorpusConfig(num_pairs=120, seed=8))
    assert other.captions != corpus.captions
    read = load_corpus(save_corpus(corpus, str(tmp_path / 'corpus.npz')))
    assert read.captions == corpus.captions and np.array_equal(read.images, corpus.images)
    assert read.class_names == corpus.class_names == tuple(c.name for c in WORLD.classes + WORLD.unseen)


def test_every_caption_names_exactly_the_objects_of_its_image(corpus):
    names = corpus.class_names
    kinds = set()
    for caption, class_set, counts in zip(corpus.captions, corpus.claims['class_set'],
                                          corpus.claims['counts']):
        drawn = {names[c]: int(n) for c, n in enumerate(counts) if n}
        assert {names[c] for c in range(len(names)) if class_set >> c & 1} == set(drawn)
        named = _named_classes(caption, WORLD)
        if not drawn:  # a crop of the ground
            assert named == {} and any(w.split()[0] in caption for w in GROUND_WORDS), caption
            kinds.add('ground')
            continue
        if ' of a ' not in caption.replace('a photo of', '').replace('an image of', '') \
                and not re.search(r'(left|right) of|above|below', caption):
            assert named == drawn, (caption, drawn)
        assert set(named) == set(drawn), (caption, drawn)
        kinds.add('objects')
    assert kinds == {'ground', 'objects'}


def test_truth_matrix_holds_each_pair_and_only_captions_of_the_same_classes(corpus):
    claims = [torch.from_numpy(corpus.claims[f]) for f in CLAIM_FIELDS]
    truth = truth_matrix(*claims)
    assert truth.diag().all()
    sets = claims[0]
    assert not truth[sets[:, None] != sets[None, :]].any()
    # shared captions exist (that is why the loss needs several positives)
    assert (truth.sum(1) > 1).float().mean() > 0.3


def test_multi_positive_loss_is_clip_loss_on_the_identity_and_uses_positives():
    torch.manual_seed(0)
    img = F.normalize(torch.randn(6, 8), dim=1)
    txt = F.normalize(torch.randn(6, 8), dim=1)
    scale = torch.tensor(10.0)
    ours = MultiPositiveClipLoss()
    assert torch.allclose(ours(img, txt, scale, torch.eye(6)), ClipLoss()(img, txt, scale))
    assert torch.allclose(ours(img, txt, scale), ClipLoss()(img, txt, scale))
    # caption 1 is true of image 0 too: the multi-positive loss pulls it towards image 0 (a negative
    # gradient on their similarity), ClipLoss pushes it away; every row's target is uniform over its
    # positives
    targets = torch.eye(6)
    targets[0, 1] = 1
    targets[1, 0] = 1
    logits = scale * img @ txt.t()
    t = targets / targets.sum(1, keepdim=True)
    expected = -((t * logits.log_softmax(1)).sum(1).mean() + (t * logits.t().log_softmax(1)).sum(1).mean()) / 2
    assert torch.allclose(ours(img, txt, scale, targets), expected)
    basis = torch.eye(6)  # with unit-vector images, logit (i, j) is scale * txt[j, i]
    grads = []
    for loss_fn in (lambda t_: ours(basis, t_, scale, targets), lambda t_: ClipLoss()(basis, t_, scale)):
        txt_param = (0.1 * torch.randn(6, 6)).requires_grad_()
        loss_fn(txt_param).backward()
        grads.append(txt_param.grad[1, 0].item())
    assert grads[0] < 0 < grads[1]
    with pytest.raises(ValueError, match='every image and every caption needs a positive'):
        ours(img, txt, scale, torch.zeros(6, 6))
    with pytest.raises(ValueError, match='must match the logits'):
        ours(img, txt, scale, torch.eye(5))


def test_class_swap_negatives_name_other_classes_and_their_claims_say_so(corpus):
    """Every caption naming classes gets a negative naming as many other classes, the rest of its
    words kept; its claims are the swapped classes (true of no image of those objects, the own
    image included), and the corpus round trip keeps the words the swap needs."""
    words = corpus.words_of_classes()
    negatives, claims, valid = class_swap_negatives(corpus.captions, corpus.claims, words, seed=1)
    named = corpus.claims['class_set'] != 0
    assert valid.sum() == named.sum() > 0.8 * len(corpus)  # every caption that names a class
    forms = sorted({f for ws in words for w in ws for f in (w, w + ('es' if w.endswith(('s', 'sh', 'ch', 'x')) else 's'))},
                   key=len, reverse=True)

    def without_class_words(text):
        for form in forms:
            text = re.sub(rf'\b{re.escape(form)}\b', '#', text)
        return re.sub(r'\ban\b', 'a', text)
    for caption, negative, ok, before, after in zip(corpus.captions, negatives, valid, corpus.claims['class_set'],
                                                   claims['class_set']):
        if not ok:
            assert negative == caption and after == before
            continue
        assert negative != caption and int(after) & int(before) == 0
        assert bin(int(after)).count('1') == bin(int(before)).count('1')
        assert set(_named_classes(negative, WORLD)) == {WORLD_NAMES[k] for k in range(len(words)) if after >> k & 1}
        assert without_class_words(negative) == without_class_words(caption)  # only the classes changed
    image = [torch.from_numpy(corpus.claims[f]) for f in CLAIM_FIELDS]
    truth = truth_matrix(image[0], image[1], image[2], torch.from_numpy(claims['count_claims']),
                         torch.from_numpy(claims['descriptors']), caption_class_set=torch.from_numpy(claims['class_set']))
    assert truth.shape == (len(corpus), len(corpus)) and not truth.diag()[torch.from_numpy(valid)].any()
    assert torch.equal(truth_matrix(*image, caption_class_set=image[0]), truth_matrix(*image))
    with pytest.raises(ValueError, match='claims lack'):
        class_swap_negatives(corpus.captions, {}, words)
    one = {'class_set': np.array([1 << WORLD_NAMES.index('arrow')]), 'count_claims': np.zeros((1, len(words)), int),
           'descriptors': -np.ones((1, 2, 2), int)}
    (swapped, ), _, _ = class_swap_negatives(['An arrow on the ground.'], one, words)
    assert re.fullmatch(r'(An [aeiou]|A [^aeiou])\w* on the ground\.', swapped), swapped


def test_hard_negatives_are_image_to_text_columns_of_the_loss():
    torch.manual_seed(1)
    img, txt, neg = (F.normalize(torch.randn(n, 8), dim=1) for n in (4, 4, 3))
    scale = torch.tensor(10.0)
    loss = MultiPositiveClipLoss()
    logits = scale * img @ torch.cat([txt, neg]).t()  # (4, 7)
    targets = torch.cat([torch.eye(4), torch.zeros(4, 3)], dim=1)
    image_to_text = -(targets * logits.log_softmax(1)).sum(1).mean()
    text_to_image = -(torch.eye(4) * (scale * txt @ img.t()).log_softmax(1)).sum(1).mean()
    got = loss(img, txt, scale, negative_features=neg)
    assert torch.allclose(got, (image_to_text + text_to_image) / 2)
    assert got > ClipLoss()(img, txt, scale)  # more to tell apart
    true_of_image_2 = torch.zeros(4, 3)
    true_of_image_2[2, 0] = 1  # a swapped caption that describes image 2: a positive there
    with_positive = loss(img, txt, scale, torch.eye(4), negative_features=neg, negative_targets=true_of_image_2)
    assert not torch.allclose(with_positive, got)
    with pytest.raises(ValueError, match='negative_targets'):
        loss(img, txt, scale, negative_features=neg, negative_targets=torch.zeros(4, 2))
    with pytest.raises(ValueError, match='one process'):
        MultiPositiveClipLoss(world_size=2)(img, txt, scale, negative_features=neg)


def test_pretraining_with_hard_negatives_lowers_the_loss_and_is_recorded(tmp_path):
    world = replace(WORLD, image_size=64)
    tiny = build_corpus(world, CorpusConfig(num_pairs=64, image_size=32, seed=3))
    assert tiny.class_words and load_corpus(save_corpus(tiny, str(tmp_path / 'c.npz'))).class_words == tiny.class_words
    cfg = PretrainConfig(model_name=TINY_CLIP_NAME, steps=1, batch_size=32, lr=2e-3, hard_negatives=True)
    first = pretrain_clip(tiny, cfg, str(tmp_path / 'a'), show_progress=False)
    more = pretrain_clip(tiny, replace(cfg, steps=40), str(tmp_path / 'b'), show_progress=False)
    assert more['loss'] < first['loss'] - 0.3
    plain = pretrain_clip(tiny, replace(cfg, steps=1, hard_negatives=None), str(tmp_path / 'c'), show_progress=False)
    assert first['loss'] > plain['loss']  # the same first step ranks more captions
    with pytest.raises(ValueError, match='hard_negatives needs the claims'):
        pretrain_clip(replace(tiny, claims=None), cfg, str(tmp_path / 'd'), show_progress=False)


def test_a_few_steps_lower_the_loss_and_the_checkpoint_loads_like_real_weights(tmp_path):
    world = replace(WORLD, image_size=64)
    tiny = build_corpus(world, CorpusConfig(num_pairs=64, image_size=32, seed=3))
    cfg = PretrainConfig(model_name=TINY_CLIP_NAME, steps=1, batch_size=32, lr=2e-3)
    first = pretrain_clip(tiny, cfg, str(tmp_path / 'a'), show_progress=False)
    more = pretrain_clip(tiny, replace(cfg, steps=40), str(tmp_path / 'b'), show_progress=False)
    assert more['loss'] < first['loss'] - 0.3

    # the checkpoint loads through open_clip's loader and the text encoder's, to the same embeddings
    model = open_clip.create_model(TINY_CLIP_NAME, pretrained=more['checkpoint']).eval()
    encoder = CLIPPromptTextEncoder(class_names=['disc', 'ring'], model_name=TINY_CLIP_NAME,
                                    pretrained=more['checkpoint'],
                                    prompt=dict(type='TemplatePromptLearner', templates=['a photo of a {}.']))
    tokens = open_clip.get_tokenizer(TINY_CLIP_NAME)(['a photo of a disc.', 'a photo of a ring.'])
    with torch.no_grad():
        expected = F.normalize(model.encode_text(tokens), dim=-1)
        assert torch.allclose(encoder(), expected, atol=1e-5)
    random_model = open_clip.create_model(TINY_CLIP_NAME)
    with torch.no_grad():
        assert not torch.allclose(F.normalize(random_model.encode_text(tokens), dim=-1), expected, atol=1e-3)


def test_bf16_channels_last_pretraining_lowers_the_loss_and_saves_plain_weights(tmp_path):
    tiny = build_corpus(replace(WORLD, image_size=64), CorpusConfig(num_pairs=64, image_size=32, seed=3))
    cfg = PretrainConfig(model_name=TINY_CLIP_NAME, steps=1, batch_size=32, lr=2e-3, amp='bf16',
                         channels_last=True)
    first = pretrain_clip(tiny, cfg, str(tmp_path / 'a'), show_progress=False)
    more = pretrain_clip(tiny, replace(cfg, steps=40), str(tmp_path / 'b'), show_progress=False)
    assert more['loss'] < first['loss'] - 0.3
    saved = torch.load(more['checkpoint'], weights_only=True)['state_dict']
    assert all(v.dtype == torch.float32 for v in saved.values() if v.is_floating_point())
    assert all(v.is_contiguous() for v in saved.values())  # not the channels-last layout it trained in
    model = open_clip.create_model(TINY_CLIP_NAME, pretrained=more['checkpoint'])
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="amp='fp16' must be None or 'bf16'"):
        PretrainConfig(amp='fp16')


def test_resume_continues_to_the_same_weights(tmp_path, monkeypatch):
    from mmseg_clip_wsss.clip_pretrain import train as train_module
    tiny = build_corpus(replace(WORLD, image_size=64), CorpusConfig(num_pairs=64, image_size=32, seed=3))
    cfg = PretrainConfig(model_name=TINY_CLIP_NAME, steps=6, batch_size=16, checkpoint_interval=3)
    straight = pretrain_clip(tiny, cfg, str(tmp_path / 'straight'), show_progress=False)

    save = train_module._save

    def save_then_stop(obj, path):  # the run dies right after its first checkpoint
        save(obj, path)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, '_save', save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        pretrain_clip(tiny, cfg, str(tmp_path / 'resumed'), show_progress=False)
    monkeypatch.setattr(train_module, '_save', save)
    # the unfinished run is not resumed under other settings
    with pytest.raises(ValueError, match=r'another configuration \(its setting -> this one: lr: 0.002 -> '
                                         r'0.0001\)'):
        pretrain_clip(tiny, replace(cfg, lr=1e-4), str(tmp_path / 'resumed'), resume=True,
                      show_progress=False)
    resumed = pretrain_clip(tiny, cfg, str(tmp_path / 'resumed'), resume=True, show_progress=False)
    a = torch.load(straight['checkpoint'], weights_only=True)['state_dict']
    b = torch.load(resumed['checkpoint'], weights_only=True)['state_dict']
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # a finished run leaves no resumable state: other settings start a new run
    assert not (tmp_path / 'resumed' / 'latest.pth').exists()
    other = pretrain_clip(tiny, replace(cfg, steps=2), str(tmp_path / 'resumed'), resume=True,
                          show_progress=False)
    assert other['steps'] == 2


def test_fine_tunes_given_weights_on_plain_image_caption_pairs(tmp_path):
    """A corpus of pairs without claims (real image-caption data) trains with each image's own caption
    as its only positive, starting from the given weights, not from a random init."""
    drawn = build_corpus(replace(WORLD, image_size=64), CorpusConfig(num_pairs=64, image_size=32, seed=3))
    plain = CaptionCorpus(drawn.images, drawn.captions)
    save_corpus(plain, str(tmp_path / 'plain.npz'))
    assert load_corpus(str(tmp_path / 'plain.npz')).claims is None
    start = pretrain_clip(plain, PretrainConfig(model_name=TINY_CLIP_NAME, steps=30, batch_size=32),
                          str(tmp_path / 'start'), show_progress=False)
    cfg = PretrainConfig(model_name=TINY_CLIP_NAME, steps=1, batch_size=32, lr=1e-9,
                         pretrained=start['checkpoint'])
    tuned = pretrain_clip(plain, cfg, str(tmp_path / 'tuned'), show_progress=False)
    a = torch.load(start['checkpoint'], weights_only=True)['state_dict']
    b = torch.load(tuned['checkpoint'], weights_only=True)['state_dict']
    # a learning rate of 1e-9 leaves the given weights as they were (a random init would not match)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a if k != 'logit_scale')
    random_init = pretrain_clip(plain, replace(cfg, pretrained=None), str(tmp_path / 'random'),
                                show_progress=False)
    c = torch.load(random_init['checkpoint'], weights_only=True)['state_dict']
    assert not all(torch.allclose(a[k], c[k], atol=1e-3) for k in a if k != 'logit_scale')
    assert tuned['loss'] < random_init['loss']


def test_a_cached_clip_is_reused_when_its_record_predates_a_new_setting(tmp_path, capsys):
    """pretrain_from_world reuses clip.pt when pretrain.json records the same settings; a field added
    since (None by default, like ``pretrained``) is the same as an absent one, and other settings
    retrain with a message."""
    world = replace(WORLD, image_size=64)
    corpus_cfg = CorpusConfig(num_pairs=64, image_size=32, seed=3)
    cfg = PretrainConfig(model_name=TINY_CLIP_NAME, steps=1, batch_size=32)
    out = str(tmp_path / 'clip')
    first = pretrain_from_world(world, out, corpus_cfg, cfg, show_progress=False)
    record = json.load(open(osp.join(out, 'pretrain.json')))
    del record['settings']['pretrain']['pretrained']  # written before the field existed
    write_json(osp.join(out, 'pretrain.json'), record)
    assert same_settings(record['settings'], dict(first['settings']))
    again = pretrain_from_world(world, out, corpus_cfg, cfg, show_progress=False)
    assert again['seconds'] == first['seconds'] and again['reused']  # the record, not a new run
    assert 'pretraining again' not in capsys.readouterr().out
    other = pretrain_from_world(world, out, corpus_cfg, replace(cfg, lr=1e-3), show_progress=False)
    assert other['settings']['pretrain']['lr'] == 1e-3 and 'reused' not in other
    assert ('was made with other settings (pretrain.lr: 0.002 -> 0.001): pretraining again'
            in capsys.readouterr().out)


@pytest.mark.parametrize('capabilities,amp', [({'avx512_bf16': True}, 'bf16'), ({'amx_bf16': True}, 'bf16'),
                                              ({'avx512_f': True, 'avx2': True}, None)])
def test_pretrain_clip_amp_auto_takes_bf16_only_where_the_cpu_has_it(monkeypatch, capabilities, amp):
    """``--amp auto`` (the default) records bf16 on a CPU with AVX512-BF16 or AMX-BF16 and float32
    elsewhere; ``--amp none`` / ``--no-channels-last`` give float32 in the default layout."""
    from mmseg_clip_wsss.cli import pretrain_clip as tool
    seen = []

    def record(world, out_dir, corpus_cfg, cfg, **kwargs):
        seen.append(cfg)
        return dict(checkpoint='clip.pt', loss=1.0, logit_scale=10.0, seconds=1, corpus_seconds=0,
                    train_seconds=1)

    monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda: dict(capabilities))
    monkeypatch.setattr(tool, 'pretrain_from_world', record)
    tool.main(['--data-root', 'unused', '--world', 'demo'])
    tool.main(['--data-root', 'unused', '--world', 'demo', '--amp', 'none', '--no-channels-last'])
    tool.main(['--data-root', 'unused', '--world', 'demo', '--amp', 'bf16'])
    assert [(c.amp, c.channels_last, c.steps) for c in seen] == [(amp, True, 1000), (None, None, 1000),
                                                                 ('bf16', True, 1000)]
