"""CLIP text side: vocabularies, tiny CLIP checkpoint, prompt learners, text encoder and its cache.

Every encoder here loads the tiny random open_clip model of the ``tiny_clip`` fixture by path through
open_clip's real loader (``create_model(..., pretrained=<file>)``).
"""
import copy

import open_clip
import pytest
import torch
import torch.nn.functional as F

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.datasets import COCO_CLASSES, VOC_CLASSES
from mmseg_clip_wsss.models import TINY_CLIP_NAME, write_random_clip_checkpoint
from mmseg_clip_wsss.models.text import (BACKGROUND_WORDS, CLIPPromptTextEncoder, CoOpPromptLearner,
                                         EnsemblePromptLearner, TemplatePromptLearner, TextTower,
                                         default_background_words, resolve_class_names,
                                         resolve_class_prompts)
from mmseg_clip_wsss.registry import MODELS

CUSTOM = ['background', 'red_square', ['tv monitor', 'television']]
ONE_TEMPLATE = ['a photo of a {}.']
MODES = [
    dict(type='TemplatePromptLearner', templates=['a photo of a {}.', 'there is a {} in the scene.']),
    dict(type='CoOpPromptLearner', n_ctx=4, ctx_init=None),
    dict(type='CoOpPromptLearner', ctx_init='a photo of a', class_specific=True,
         class_token_position='middle'),
    dict(type='EnsemblePromptLearner', templates=['a photo of a {}.', 'there is a {} in the scene.']),
    dict(type='EnsemblePromptLearner', templates=ONE_TEMPLATE, class_specific=True),
]


def build(tiny_clip, class_names='voc', prompt=None, **kwargs):
    cfg = dict(type='CLIPPromptTextEncoder',
               class_names=class_names,
               prompt=prompt,
               **tiny_clip,
               **kwargs)
    return MODELS.build(cfg)


class CallCounter:
    """Counts forward calls of the text tower's transformer."""

    def __init__(self, encoder):
        self.calls = 0
        encoder.text_tower.transformer.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.calls += 1

    def take(self):
        calls, self.calls = self.calls, 0
        return calls


def assert_unit_rows(emb, k, d):
    assert emb.shape == (k, d)
    assert emb.dtype == torch.float32
    assert torch.isfinite(emb).all()
    assert torch.allclose(emb.norm(dim=1), torch.ones(k), atol=1e-5)


# --------------------------------------------------------------------------- vocabularies
def test_vocabularies_and_readable_names():
    assert len(VOC_CLASSES) == 21 and len(COCO_CLASSES) == 81
    assert VOC_CLASSES[0] == COCO_CLASSES[0] == 'background'
    voc = resolve_class_names('voc')
    assert voc[VOC_CLASSES.index('tvmonitor')] == 'tv monitor'
    assert voc[VOC_CLASSES.index('pottedplant')] == 'potted plant'
    assert voc[VOC_CLASSES.index('diningtable')] == 'dining table'
    coco = resolve_class_names('COCO')
    assert len(coco) == 81 and coco[COCO_CLASSES.index('hair drier')] == 'hair dryer'
    assert coco[COCO_CLASSES.index('traffic light')] == 'traffic light'
    assert resolve_class_names(CUSTOM) == ['background', 'red square', 'tv monitor']
    assert resolve_class_prompts(CUSTOM)[2] == ['tv monitor', 'television']
    assert 'keyboard' in BACKGROUND_WORDS and len(BACKGROUND_WORDS) == 25
    assert 'keyboard' not in default_background_words(coco)
    assert default_background_words(voc) == list(BACKGROUND_WORDS)
    with pytest.raises(ValueError, match='class_names is empty'):
        resolve_class_names([])
    with pytest.raises(ValueError, match="not a known vocabulary"):
        resolve_class_names('cityscapes')


# --------------------------------------------------------------------------- checkpoint + loading
def test_random_checkpoint_is_deterministic_and_loads_through_open_clip(tiny_clip, tmp_path):
    saved = torch.load(tiny_clip['pretrained'], weights_only=True)
    again = torch.load(write_random_clip_checkpoint(str(tmp_path / 'a' / 'same.pt'), seed=0),
                       weights_only=True)
    other = torch.load(write_random_clip_checkpoint(str(tmp_path / 'other.pt'), seed=1),
                       weights_only=True)
    assert saved.keys() == again.keys()
    assert all(torch.equal(saved[k], again[k]) for k in saved)
    assert not torch.equal(saved['token_embedding.weight'], other['token_embedding.weight'])
    # no global RNG side effect
    torch.manual_seed(123)
    a = torch.rand(3)
    torch.manual_seed(123)
    write_random_clip_checkpoint(str(tmp_path / 'rng.pt'), seed=5)
    assert torch.equal(a, torch.rand(3))

    encoder = build(tiny_clip, prompt=dict(type='TemplatePromptLearner', templates=ONE_TEMPLATE))
    tower = encoder.text_tower
    assert torch.equal(tower.token_embedding.weight, saved['token_embedding.weight'])
    assert torch.equal(tower.text_projection, saved['text_projection'])
    assert torch.equal(tower.transformer.resblocks[1].mlp.c_fc.weight,
                       saved['transformer.resblocks.1.mlp.c_fc.weight'])
    # only the text tower is kept
    text_keys = {k for k in saved if not k.startswith('visual.') and k != 'logit_scale'}
    assert {n for n, _ in encoder.named_parameters()} == {f'text_tower.{k}' for k in text_keys}
    assert encoder.embed_dim == saved['text_projection'].shape[1] == 32
    assert encoder.num_classes == 21 and encoder.class_names[-1] == 'tv monitor'


def test_tower_matches_open_clip_encode_text_for_both_layouts(tiny_clip):
    """TextTower (with its EOT truncation) reproduces open_clip's encode_text (CLIP, CustomTextCLIP)."""
    tokenizer = open_clip.get_tokenizer(TINY_CLIP_NAME)
    tokens = tokenizer(['a photo of a cat.', 'there is a potted plant in the scene.', 'x'])
    for force_custom_text in (False, True):
        model = open_clip.create_model(TINY_CLIP_NAME,
                                       pretrained=tiny_clip['pretrained'],
                                       force_custom_text=force_custom_text)
        assert hasattr(model, 'text') == force_custom_text
        tower = TextTower(model)
        with torch.no_grad():
            ours = tower(tower.embed(tokens), tokens)
            ref = model.encode_text(tokens)
        assert torch.allclose(ours, ref, atol=1e-5), force_custom_text
    # a bidirectional tower with padding mask (no EOT truncation there)
    from open_clip.transformer import TextTransformer
    holder = torch.nn.Module()
    holder.text = TextTransformer(context_length=77,
                                  width=64,
                                  heads=4,
                                  layers=1,
                                  output_dim=32,
                                  no_causal_mask=True,
                                  use_pad_mask=True)
    tower = TextTower(holder)
    with torch.no_grad():
        assert torch.allclose(tower(tower.embed(tokens), tokens), holder.text(tokens), atol=1e-5)


def test_template_embeddings_equal_open_clip_ensemble(tiny_clip):
    templates = ['a photo of a {}.', 'a close-up photo of the {}.']
    encoder = build(tiny_clip, CUSTOM, dict(type='TemplatePromptLearner', templates=templates))
    model = open_clip.create_model(TINY_CLIP_NAME, pretrained=tiny_clip['pretrained'])
    tokenizer = open_clip.get_tokenizer(TINY_CLIP_NAME)
    rows = []
    with torch.no_grad():
        for names in resolve_class_prompts(CUSTOM):
            texts = [t.format(n) for n in names for t in templates]
            feats = F.normalize(model.encode_text(tokenizer(texts)), dim=-1)
            rows.append(F.normalize(feats.mean(0), dim=0))
    assert torch.allclose(encoder(), torch.stack(rows), atol=1e-5)


# --------------------------------------------------------------------------- prompt modes
@pytest.mark.parametrize('prompt', MODES, ids=lambda p: f"{p['type']}-{p.get('class_specific', False)}")
@pytest.mark.parametrize('class_names', ['voc', CUSTOM], ids=['voc', 'custom'])
def test_each_prompt_mode_gives_unit_norm_class_embeddings(tiny_clip, prompt, class_names):
    encoder = build(tiny_clip, class_names, prompt)
    k = 21 if class_names == 'voc' else 3
    assert encoder.num_classes == k
    emb = encoder()
    assert_unit_rows(emb, k, 32)
    # distinct classes get distinct embeddings
    sim = emb @ emb.t()
    assert (sim - torch.eye(k)).max() < 0.9999
    learnable = [p for p in encoder.parameters() if p.requires_grad]
    assert bool(learnable) == (prompt['type'] != 'TemplatePromptLearner')
    assert emb.requires_grad == (prompt['type'] != 'TemplatePromptLearner')


def test_learnable_modes_start_from_the_template_prompts(tiny_clip):
    """CoOp initialised from 'a photo of a' and the learnable ensemble equal the templates at init."""
    template = build(tiny_clip, CUSTOM, dict(type='TemplatePromptLearner', templates=ONE_TEMPLATE))()
    coop = build(tiny_clip, CUSTOM, dict(type='CoOpPromptLearner', ctx_init='a photo of a'))
    assert coop.prompt_learner.n_ctx == 4
    assert isinstance(coop.prompt_learner, CoOpPromptLearner)
    assert torch.allclose(coop(), template, atol=1e-5)
    templates = ['a photo of a {}.', 'there is a {} in the scene.', 'a bright photo of a {}']
    fixed = build(tiny_clip, 'voc', dict(type='TemplatePromptLearner', templates=templates))
    ensemble = build(tiny_clip, 'voc',
                     dict(type='EnsemblePromptLearner', templates=templates, class_specific=True))
    assert isinstance(fixed.prompt_learner, TemplatePromptLearner)
    assert isinstance(ensemble.prompt_learner, EnsemblePromptLearner)
    # one context set per template: 4 words before; 3 before + 3 after; 5 before (class-specific)
    shapes = [tuple(p.shape) for p in ensemble.prompt_learner.ctx]
    assert shapes == [(21, 4, 64), (21, 6, 64), (21, 5, 64)]  # (K, n, C)
    assert torch.allclose(ensemble(), fixed(), atol=1e-5)


def test_class_token_position_layouts(tiny_clip):
    prompts = {}
    for position in ('end', 'middle', 'front'):
        encoder = build(tiny_clip, ['background', 'cat'],
                        dict(type='CoOpPromptLearner', n_ctx=4, ctx_init=None,
                             class_token_position=position))
        learner = encoder.prompt_learner
        row = int((learner.entry_class == 1).nonzero()[0])  # 'cat' is one BPE token
        positions = learner.ctx_pos[learner.ctx_rows == row].tolist()
        prompts[position] = positions
        tokens = learner.tokens[row]
        eot = int(tokens.argmax())
        assert eot == 1 + 4 + 1 + 1  # SOT, 4 context, 'cat', '.'
    assert prompts == {'end': [1, 2, 3, 4], 'middle': [1, 2, 4, 5], 'front': [2, 3, 4, 5]}


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize('prompt', [MODES[1], MODES[2], MODES[4]],
                         ids=['shared', 'class-specific-middle', 'ensemble-class-specific'])
def test_learnable_context_gets_gradients_and_frozen_tower_does_not(tiny_clip, prompt):
    encoder = build(tiny_clip, CUSTOM, prompt)
    encoder.train()
    tower_params = list(encoder.text_tower.parameters())
    assert tower_params and not any(p.requires_grad for p in tower_params)
    target = torch.eye(3)
    emb = encoder()
    loss = F.mse_loss(emb @ emb.t(), target)
    loss.backward()
    ctx = list(encoder.prompt_learner.ctx)
    assert ctx and all(p.grad is not None and torch.isfinite(p.grad).all() for p in ctx)
    for p in ctx:
        if p.dim() == 3:  # class-specific: every class's context receives gradient
            assert (p.grad.flatten(1).abs().sum(1) > 0).all()
        else:
            assert p.grad.abs().sum() > 0
    assert all(p.grad is None for p in tower_params)


def test_unfrozen_text_tower_is_trainable(tiny_clip):
    encoder = build(tiny_clip,
                    CUSTOM,
                    dict(type='TemplatePromptLearner', templates=ONE_TEMPLATE),
                    freeze_text_tower=False)
    counter = CallCounter(encoder)
    encoder.train()
    encoder().sum().backward()
    encoder()
    assert counter.take() == 2  # a trainable tower is recomputed every training call
    assert encoder.text_tower.token_embedding.weight.grad is not None
    encoder.eval()
    with torch.no_grad():
        encoder()
        encoder()
    assert counter.take() == 1


# --------------------------------------------------------------------------- caching
def test_frozen_template_prompts_run_the_tower_once(tiny_clip):
    encoder = build(tiny_clip, 'voc', dict(type='TemplatePromptLearner'))
    counter = CallCounter(encoder)
    encoder.train()
    first = encoder()
    assert counter.take() == 1
    for _ in range(3):  # training iterations with grad enabled: nothing learns -> cached
        assert torch.equal(encoder(), first)
    encoder.eval()
    with torch.no_grad():
        for _ in range(3):
            assert torch.equal(encoder(), first)
    assert counter.take() == 0


def test_learnable_prompts_cache_at_inference_and_recompute_after_a_step(tiny_clip):
    encoder = build(tiny_clip, CUSTOM,
                    dict(type='CoOpPromptLearner', ctx_init='a photo of a', class_specific=True))
    counter = CallCounter(encoder)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=1.0)
    encoder.train()
    for it in range(2):  # training: one tower call per iteration
        emb = encoder()
        assert counter.take() == 1
        (emb[1] @ emb[2]).backward()
        optimizer.step()
        optimizer.zero_grad()
    encoder.eval()
    with torch.no_grad():
        first = encoder()
        assert counter.take() == 1  # the step changed the context: recomputed once
        assert not torch.allclose(first, emb.detach())
        for _ in range(3):
            assert torch.equal(encoder(), first)
        assert counter.take() == 0  # inference after the first call: 0 tower calls

        # changes that bypass the version counter are caught by the value snapshot
        encoder.prompt_learner.ctx[0].data[1].add_(torch.randn(4, 64))
        changed = encoder()
        assert counter.take() == 1
        assert not torch.allclose(changed[1], first[1]) and torch.allclose(changed[2], first[2])

        # loading a checkpoint into the encoder invalidates the cache as well
        other = copy.deepcopy(encoder.state_dict())
        other['prompt_learner.ctx.0'] = other['prompt_learner.ctx.0'] + 0.1
        encoder.load_state_dict(other)
        encoder()
        assert counter.take() == 1
        encoder()
        assert counter.take() == 0
    # fused optimisers do not bump version counters; the snapshot still sees the step
    encoder.train()
    fused = torch.optim.AdamW(encoder.prompt_learner.parameters(), lr=0.1, fused=True)
    encoder()[1].sum().backward()
    fused.step()
    encoder.eval()
    with torch.no_grad():
        encoder()
    assert counter.take() == 2


# --------------------------------------------------------------------------- background
def test_background_words_replace_the_background_row(tiny_clip):
    words = ['sky', 'grass']
    prompt = dict(type='TemplatePromptLearner', templates=ONE_TEMPLATE)
    plain = build(tiny_clip, CUSTOM, prompt)()
    with_words = build(tiny_clip, CUSTOM, prompt, background_words=words)
    assert with_words.class_prompts[0] == words
    emb = with_words()
    assert_unit_rows(emb, 3, 32)
    word_rows = build(tiny_clip, words, prompt)()
    assert torch.allclose(emb[0], F.normalize(word_rows.sum(0), dim=0), atol=1e-5)
    assert torch.allclose(emb[1:], plain[1:], atol=1e-6)
    assert not torch.allclose(emb[0], plain[0])
    # learnable context is shared with the background words too
    learned = build(tiny_clip,
                    CUSTOM,
                    dict(type='CoOpPromptLearner', class_specific=True),
                    background_words=words)
    assert_unit_rows(learned(), 3, 32)
    # 'default' drops background words that are foreground classes of the vocabulary
    coco = build(tiny_clip, 'coco', prompt, background_words='default')
    assert 'keyboard' not in coco.class_prompts[0] and 'sky' in coco.class_prompts[0]
    assert_unit_rows(coco(), 81, 32)


def test_learnable_background_embedding(tiny_clip):
    prompt = dict(type='TemplatePromptLearner', templates=ONE_TEMPLATE)
    reference = build(tiny_clip, CUSTOM, prompt, background_words=['sky', 'road'])()
    encoder = build(tiny_clip,
                    CUSTOM,
                    prompt,
                    background_words=['sky', 'road'],
                    learnable_background=True)
    counter = CallCounter(encoder)
    assert [n for n, p in encoder.named_parameters() if p.requires_grad] == ['background_embedding']
    encoder.train()
    emb = encoder()
    assert torch.allclose(emb, reference, atol=1e-6)  # initialised from the prompted background
    optimizer = torch.optim.SGD([encoder.background_embedding], lr=1.0)
    (emb[0] @ emb[1]).backward()
    assert encoder.background_embedding.grad.abs().sum() > 0
    optimizer.step()
    new = encoder()
    assert_unit_rows(new, 3, 32)
    assert not torch.allclose(new[0], emb[0].detach()) and torch.equal(new[1:], emb[1:].detach())
    assert counter.take(
    ) == 1  # the frozen prompts are encoded once; the background row needs no tower call


# --------------------------------------------------------------------------- errors
def test_bad_inputs_raise_clear_errors(tiny_clip, tmp_path):
    missing = str(tmp_path / 'nowhere' / 'clip.pt')
    with pytest.raises(FileNotFoundError, match='nowhere/clip.pt'):
        build(dict(model_name=TINY_CLIP_NAME, pretrained=missing))
    with pytest.raises(ValueError, match="not_a_tag"):
        build(dict(model_name=TINY_CLIP_NAME, pretrained='not_a_tag'))
    with pytest.raises(ValueError, match="model_name='No-Such-CLIP'"):
        build(dict(model_name='No-Such-CLIP', pretrained=tiny_clip['pretrained']))
    with pytest.raises(ValueError, match='class_names is empty'):
        build(tiny_clip, [])
    with pytest.raises(ValueError, match='prompt.ctx_init has 2 phrases but there are 3 classes'):
        build(tiny_clip, CUSTOM,
              dict(type='CoOpPromptLearner', class_specific=True, ctx_init=['a photo of', 'a b']))
    with pytest.raises(ValueError, match='prompt.num_classes=20'):
        build(tiny_clip, 'voc', dict(type='CoOpPromptLearner', class_specific=True, num_classes=20))
    with pytest.raises(ValueError, match='prompt.n_ctx=8 disagrees with prompt.ctx_init'):
        build(tiny_clip, CUSTOM, dict(type='CoOpPromptLearner', n_ctx=8, ctx_init='a photo of a'))
    with pytest.raises(ValueError, match="prompt.type='coop'"):
        build(tiny_clip, CUSTOM, dict(type='coop'))
    with pytest.raises(ValueError, match='prompt.templates'):
        build(tiny_clip, CUSTOM, dict(type='TemplatePromptLearner', templates=['a photo']))
    with pytest.raises(ValueError, match='prompt.class_token_position'):
        build(tiny_clip, CUSTOM, dict(type='CoOpPromptLearner', class_token_position='left'))
    with pytest.raises(ValueError, match='prompt: .*unexpected keyword'):
        build(tiny_clip, CUSTOM, dict(type='TemplatePromptLearner', n_ctx=4))
    with pytest.raises(ValueError, match='context length'):
        build(tiny_clip, CUSTOM, dict(type='CoOpPromptLearner', n_ctx=80, ctx_init=None))
    with pytest.raises(ValueError, match="background_words needs class 0 .* 'background'"):
        build(tiny_clip, ['cat', 'dog'], background_words=['sky'])
    with pytest.raises(ValueError, match=r"background_words \['cat'\] are foreground classes"):
        build(tiny_clip, ['background', 'cat'], background_words=['sky', 'cat'])
    with pytest.raises(ValueError, match='learnable_background=True needs class 0'):
        build(tiny_clip, ['cat', 'dog'], learnable_background=True)


def test_registry_names_do_not_shadow_mmseg():
    """mmseg's own (SAN) 'CLIPTextEncoder' stays what it is; ours is 'CLIPPromptTextEncoder'."""
    assert MODELS.get('CLIPPromptTextEncoder') is CLIPPromptTextEncoder
    assert MODELS.get('CLIPTextEncoder') is not CLIPPromptTextEncoder
    assert MODELS.get('CoOpPromptLearner') is CoOpPromptLearner
    from mmseg_clip_wsss.registry import DET_MODELS
    assert DET_MODELS.get('CLIPPromptTextEncoder') is CLIPPromptTextEncoder


def test_pretrained_tag_uses_open_clip_download_and_the_tags_quick_gelu(tiny_clip, monkeypatch):
    """A tag goes through open_clip's download step; a QuickGELU-trained tag builds QuickGELU."""
    from open_clip import factory
    from open_clip import pretrained as oc_pretrained
    from open_clip.transformer import QuickGELU
    monkeypatch.setitem(oc_pretrained._PRETRAINED, TINY_CLIP_NAME,
                        dict(tiny_openai=dict(url='', hf_hub='', quick_gelu=True)))
    downloads = []

    def fake_download(cfg, cache_dir=None):
        downloads.append(cfg)
        return tiny_clip['pretrained']

    monkeypatch.setattr(factory, 'download_pretrained', fake_download)
    tagged = build(dict(model_name=TINY_CLIP_NAME, pretrained='tiny_openai'), CUSTOM)
    assert len(downloads) == 1
    assert isinstance(tagged.text_tower.transformer.resblocks[0].mlp.gelu, QuickGELU)
    from_file = build(tiny_clip, CUSTOM)
    assert isinstance(from_file.text_tower.transformer.resblocks[0].mlp.gelu, torch.nn.GELU)
    assert torch.equal(tagged.text_tower.token_embedding.weight,
                       from_file.text_tower.token_embedding.weight)
    assert not torch.allclose(tagged(), from_file())
    forced = build(tiny_clip, CUSTOM, quick_gelu=True)
    assert torch.allclose(forced(), tagged(), atol=1e-6)


def test_checkpoints_leave_out_the_frozen_tower_and_load_back(tiny_clip, tmp_path):
    from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint
    prompt = dict(type='CoOpPromptLearner', class_specific=True)
    encoder = build(tiny_clip, CUSTOM, prompt, learnable_background=True)
    keys = set(encoder.state_dict())
    assert keys == {'prompt_learner.ctx.0', 'background_embedding'}
    with torch.no_grad():
        encoder.prompt_learner.ctx[0].add_(torch.randn_like(encoder.prompt_learner.ctx[0]))
        encoder.background_embedding.mul_(-1)
    expected = encoder().detach()
    holder = torch.nn.Module()
    holder.text_encoder = encoder
    save_checkpoint(holder.state_dict(), str(tmp_path / 'ckpt.pth'))
    fresh = torch.nn.Module()
    fresh.text_encoder = build(tiny_clip, CUSTOM, prompt, learnable_background=True)
    assert not torch.allclose(fresh.text_encoder(), expected)
    load_checkpoint(fresh, str(tmp_path / 'ckpt.pth'), strict=True)
    assert torch.allclose(fresh.text_encoder(), expected, atol=1e-6)
    # a trainable tower is saved with the rest: changed tower weights travel through the checkpoint
    trainable = build(tiny_clip, CUSTOM, prompt, freeze_text_tower=False)
    assert 'text_tower.token_embedding.weight' in trainable.state_dict()
    with torch.no_grad():
        trainable.text_tower.token_embedding.weight.mul_(1.5)
        trainable.prompt_learner.ctx[0].add_(1.0)
    tuned = trainable().detach()
    holder.text_encoder = trainable
    save_checkpoint(holder.state_dict(), str(tmp_path / 'tuned.pth'))
    fresh.text_encoder = build(tiny_clip, CUSTOM, prompt, freeze_text_tower=False)
    assert not torch.allclose(fresh.text_encoder(), tuned)
    load_checkpoint(fresh, str(tmp_path / 'tuned.pth'), strict=True)
    assert torch.equal(fresh.text_encoder.text_tower.token_embedding.weight,
                       trainable.text_tower.token_embedding.weight)
    assert torch.allclose(fresh.text_encoder(), tuned, atol=1e-6)


def test_a_random_init_tower_is_kept_in_checkpoints(tiny_clip):
    """A frozen tower without weights to load (``pretrained=None``) cannot be rebuilt from the config:
    its weights go into the checkpoint, and a model built under another seed loads them back."""
    random_tower = dict(tiny_clip, pretrained=None)
    torch.manual_seed(0)
    encoder = build(random_tower, CUSTOM, dict(type='CoOpPromptLearner'))
    state = encoder.state_dict()
    assert 'text_tower.token_embedding.weight' in state
    torch.manual_seed(1)
    other = build(random_tower, CUSTOM, dict(type='CoOpPromptLearner'))
    assert not torch.allclose(other(), encoder())
    other.load_state_dict(state, strict=True)
    assert torch.allclose(other(), encoder(), atol=1e-6)
