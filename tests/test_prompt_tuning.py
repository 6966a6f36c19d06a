"""Prompts tuned on image-level labels with both CLIP towers frozen, saved, loaded, used by CLIP-ES."""
import json
import math
import os.path as osp
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.apis.prompt_tuning import DEFAULT_PROMPT_TUNING, build_tuning_model, tune_prompts
from mmseg_clip_wsss.cli.make_pseudo_masks import main as make_pseudo_masks_main
from mmseg_clip_wsss.cli.tune_prompts import main as tune_prompts_main
from mmseg_clip_wsss.datasets.synthetic import make_demo_data
from mmseg_clip_wsss.models import DEMO_CLIP_NAME, write_random_clip_checkpoint
from mmseg_clip_wsss.models.losses import BackgroundNegativePromptLoss
from mmseg_clip_wsss.models.text import (LearnedPromptsMismatchError, read_learned_prompts,
                                         save_learned_prompts)
from mmseg_clip_wsss.registry import MODELS

REPO = Path(__file__).resolve().parents[1]
CFG = REPO / 'configs/clip_es/clip-es-learned-prompts_demo-clip_demo.py'


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """Tiny demo data, a random demo CLIP, and prompts tuned on them with the command line."""
    tmp = tmp_path_factory.mktemp('prompts')
    root = str(tmp / 'demo')
    make_demo_data(root, seed=0, num_train=6, num_val=1, size=64, show_progress=False)
    ckpt = write_random_clip_checkpoint(str(tmp / 'rn.pt'), DEMO_CLIP_NAME, seed=0)
    prompts = str(tmp / 'prompts.pth')
    options = [f'train_dataloader.dataset.data_root={root}', f'cam_dataloader.dataset.data_root={root}',
               f'model.backbone.pretrained={ckpt}', f'model.text_encoder.pretrained={ckpt}',
               f'model.prompts={prompts}']
    tuning = ['prompt_tuning.epochs=30', 'prompt_tuning.lr=0.05', 'prompt_tuning.batch_size=12',
              'prompt_tuning.scales=[1.0]']
    result = tune_prompts_main([str(CFG), '--no-progress', '--device', 'cpu', '--cfg-options',
                                *options, *tuning])
    return dict(root=root, ckpt=ckpt, prompts=prompts, options=options, tuning=tuning, result=result,
                tmp=tmp)


def _cfg(world) -> Config:
    cfg = Config.fromfile(str(CFG))
    cfg.merge_from_dict(dict(o.split('=', 1) for o in world['options']))
    init_default_scope('mmseg')
    return cfg


def _model(world, **model):
    cfg = _cfg(world)
    return MODELS.build(dict(cfg.model, **model)).eval()


def test_background_negative_prompt_loss_is_asl_on_the_class_against_background_softmax():
    torch.manual_seed(0)
    image, text = torch.randn(3, 8), torch.randn(5, 8)  # rows: 3 classes, 2 background words
    labels = torch.tensor([[1., 0., 1.], [0., 0., 1.], [1., 1., 0.]])
    scale = 7.0
    sims = scale * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()
    p = sims[:, :3].exp() / (sims[:, :3].exp() + sims[:, 3:].exp().sum(dim=1, keepdim=True))  # (3, 3)
    bce = -(labels * p.log() + (1 - labels) * (1 - p).log()).sum(dim=1).mean()
    plain = BackgroundNegativePromptLoss(gamma_pos=0, gamma_neg=0, clip=0)
    assert torch.allclose(plain(image, text, labels, scale), bce, atol=1e-5)
    p_m = (p - 0.05).clamp(min=0)
    asl = -(labels * (1 - p) * p.log() + (1 - labels) * p_m**2 * (1 - p_m).log()).sum(dim=1).mean()
    loss = BackgroundNegativePromptLoss(gamma_pos=1, gamma_neg=2, clip=0.05)
    assert torch.allclose(loss(image, text, labels, scale), asl, atol=1e-5)
    # region embeddings: the same logit at every position, max-pooled over the valid ones
    regions = torch.randn(3, 4, 8)
    mask = torch.tensor([[True] * 4, [True, True, False, False], [True, False, False, False]])
    per_position = torch.stack([plain.presence_logits(regions[:, i], text, 3, scale) for i in range(4)], 1)
    expected = per_position.masked_fill(~mask[:, :, None], -1e9).amax(dim=1)  # (3, 3)
    assert torch.allclose(plain.presence_logits(regions, text, 3, scale, mask), expected, atol=1e-5)
    assert torch.allclose(plain(regions[:, :1], text, labels, scale), plain(regions[:, 0], text, labels, scale))
    with pytest.raises(ValueError, match='no background row'):
        plain(image, text[:3], labels, scale)
    with pytest.raises(ValueError, match='clip'):
        BackgroundNegativePromptLoss(clip=1.0)


def test_no_gradient_reaches_either_tower(world):
    cfg = _cfg(world)
    model = build_tuning_model(cfg, dict(type='CoOpPromptLearner', ctx_init='a photo of a'))
    towers = [model.backbone, model.text_encoder.text_tower]
    assert all(not p.requires_grad for t in towers for p in t.parameters())
    learned = list(model.text_encoder.prompt_learner.parameters())
    assert learned and all(p.requires_grad for p in learned)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in learned}  # the context vectors and nothing else
    x = torch.randn(2, 3, 64, 64)
    with torch.enable_grad():  # the towers run with autograd on: still nothing of theirs gets a grad
        loss = BackgroundNegativePromptLoss()(model.image_embeddings(x), model.text_encoder(),
                                              torch.tensor([[1.] + [0.] * 7, [0.] * 7 + [1.]]),
                                              model.logit_scale)
        loss.backward()
    assert all(p.grad is None for t in towers for p in t.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in learned)


def test_tuning_changes_the_context_lowers_the_loss_and_keeps_the_towers(world):
    result = world['result']
    assert result['images'] == 6 and result['views'] == 2  # one scale and its flip
    assert len(result['loss']) == 30 and result['loss'][-1] < 0.8 * result['loss'][0]
    record = read_learned_prompts(world['prompts'])
    init = build_tuning_model(_cfg(world), record['prompt'])
    ctx0 = init.text_encoder.prompt_learner.state_dict()['ctx.0']
    ctx = record['state_dict']['ctx.0']
    assert ctx.shape == ctx0.shape and not torch.allclose(ctx, ctx0, atol=1e-3)
    # the towers are the CLIP's own: the fingerprint of the model built afresh is the file's
    assert record['clip']['fingerprint'] == init.clip_fingerprint()
    assert record['rows'][0] == ['disc', 'circle'] and record['rows'][-1] == ['noise']
    assert record['meta']['loss'] == result['loss']


def test_learned_prompts_round_trip(world):
    record = read_learned_prompts(world['prompts'])
    tuned = build_tuning_model(_cfg(world), record['prompt'])
    tuned.text_encoder.prompt_learner.load_state_dict(record['state_dict'])
    loaded = _model(world)  # model.prompts = the file
    assert loaded.prompts == world['prompts']
    state = loaded.text_encoder.prompt_learner.state_dict()
    assert state.keys() == record['state_dict'].keys()
    assert all(torch.equal(state[k], record['state_dict'][k]) for k in state)
    with torch.no_grad():
        assert torch.allclose(loaded.text_encoder(), tuned.text_encoder(), atol=1e-6)
    assert not any(p.requires_grad for p in loaded.parameters())


def test_loading_refuses_other_classes_another_clip_and_other_files(world, tmp_path):
    with pytest.raises(LearnedPromptsMismatchError, match=r'other text rows \(class list, synonyms or '
                                                       r'background words\).*tune_prompts') as err:
        _model(world, background_words=('ground', 'background'))
    assert world['prompts'] in str(err.value)
    assert 'rows only in the file: [[' in str(err.value)  # the rows that differ are named
    names = ['background', 'disc', ['ring', 'hoop'], 'square', 'triangle', 'star', ['cross', 'plus sign'],
             'hexagon', ['crescent', 'crescent moon']]
    with pytest.raises(LearnedPromptsMismatchError, match=r"row 0 is \['disc', 'circle'\]"):
        _model(world, class_names=names)
    other = write_random_clip_checkpoint(str(tmp_path / 'other.pt'), DEMO_CLIP_NAME, seed=1)
    cfg = _cfg(world)
    with pytest.raises(LearnedPromptsMismatchError, match=r'another CLIP.*fingerprint.*tune_prompts'):
        MODELS.build(dict(cfg.model, backbone=dict(cfg.model.backbone, pretrained=other),
                          text_encoder=dict(cfg.model.text_encoder, pretrained=other)))
    missing = str(tmp_path / 'none.pth')
    with pytest.raises(FileNotFoundError, match=r'none\.pth.*tools/tune_prompts\.py'):
        _model(world, prompts=missing)
    with pytest.raises(ValueError, match='not a learned-prompts file'):
        _model(world, prompts=world['ckpt'])  # a CLIP checkpoint, not prompts
    # an existing prompts file is never replaced without --overwrite
    with pytest.raises(FileExistsError, match='--overwrite'):
        tune_prompts_main([str(CFG), '--no-progress', '--device', 'cpu', '--cfg-options',
                           *world['options'], *world['tuning']])


def test_clip_es_cams_with_learned_prompts_differ_from_hand_written(world):
    learned, hand = _model(world), _model(world, prompts=None)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    labels = torch.zeros(2, 9)
    labels[:, 0] = 1
    labels[0, [1, 3]] = 1
    labels[1, [2, 8]] = 1
    cams_learned, cams_hand = learned.compute_cams(x, labels), hand.compute_cams(x, labels)
    assert cams_learned.shape == cams_hand.shape == (2, 9, 64, 64)
    assert (cams_learned - cams_hand).abs().max() > 1e-2
    with torch.no_grad():  # the image embeddings do not depend on the prompts
        assert torch.equal(learned.image_embeddings(x), hand.image_embeddings(x))
    # the whole command: pseudo masks of the config with the learned prompts
    out = str(world['tmp'] / 'masks')
    res = make_pseudo_masks_main([str(CFG), '--out-dir', out, '--eval', '--no-progress', '--scales', '1.0',
                                  '--cfg-options', *world['options']])
    assert res['written'] == 6
    metrics = json.load(open(osp.join(out, 'metrics.json')))
    assert 0 <= metrics['mIoU'] <= 100 and not math.isnan(metrics['mIoU'])


def test_tuning_on_region_embeddings(world, tmp_path):
    cfg = _cfg(world)
    cfg.prompt_tuning.update(embedding='regions', epochs=10, lr=0.05, batch_size=12, scales=[1.0])
    out = str(tmp_path / 'regions.pth')
    result = tune_prompts(cfg, out, device='cpu', show_progress=False)
    assert result['views'] == 2 and result['loss'][-1] < result['loss'][0]
    assert read_learned_prompts(out)['meta']['options']['embedding'] == 'regions'
    model = _model(world, prompts=out)
    with torch.no_grad():
        regions = model.region_embeddings(torch.randn(1, 3, 64, 64))
    assert regions.shape == (1, 4, 128)  # 64 px at stride 32: 2 x 2 positions, D = 128
    cfg.prompt_tuning.embedding = 'pixels'
    with pytest.raises(ValueError, match="'image' or 'regions'"):
        tune_prompts(cfg, str(tmp_path / 'x.pth'), device='cpu', show_progress=False)


def test_anchor_weight_keeps_the_rows_near_the_hand_written_ones(world, tmp_path):
    cfg = _cfg(world)
    cfg.prompt_tuning.update(epochs=30, lr=0.05, batch_size=12, scales=[1.0], anchor_weight=100.0)
    out = str(tmp_path / 'anchored.pth')
    tune_prompts(cfg, out, device='cpu', show_progress=False)
    hand = build_tuning_model(cfg, read_learned_prompts(out)['prompt'])  # before tuning
    with torch.no_grad():
        rows0 = hand.text_encoder()
        drift = {name: 1 - (_model(world, prompts=f).text_encoder() * rows0).sum(dim=-1).mean()
                 for name, f in (('anchored', out), ('free', world['prompts']))}
    assert drift['anchored'] < 0.5 * drift['free'] and drift['free'] > 1e-3


def test_untuned_ensemble_context_gives_the_hand_written_cams(world, tmp_path):
    """Everything but the prompts is the config's: the learnable copy of its templates, saved before
    any step, makes CLIP-ES's CAMs of the hand-written prompts."""
    cfg = _cfg(world)
    prompt = dict(cfg.prompt_tuning.prompt)
    assert prompt['type'] == 'EnsemblePromptLearner'
    assert tuple(prompt['templates']) == tuple(cfg.model.text_encoder.prompt.templates)
    untuned = build_tuning_model(cfg, prompt)
    out = str(tmp_path / 'untuned.pth')
    save_learned_prompts(out, prompt, untuned.text_encoder.prompt_learner.state_dict(), untuned.text_rows,
                         cfg.model.class_names, dict(fingerprint=untuned.clip_fingerprint()))
    torch.manual_seed(0)
    x, labels = torch.randn(1, 3, 64, 64), torch.tensor([[1., 1., 0., 0., 0., 1., 0., 0., 0.]])
    cams = _model(world, prompts=out).compute_cams(x, labels)
    assert torch.allclose(cams, _model(world, prompts=None).compute_cams(x, labels), atol=1e-4)


def test_background_rows_kept_as_written(world, tmp_path):
    cfg = _cfg(world)
    prompt = dict(cfg.prompt_tuning.prompt, class_specific=True)
    cfg.prompt_tuning.update(epochs=5, lr=0.05, batch_size=12, scales=[1.0], tune_background=False,
                             prompt=prompt)
    out = str(tmp_path / 'fixed_background.pth')
    tune_prompts(cfg, out, device='cpu', show_progress=False)
    learned = read_learned_prompts(out)['state_dict']
    init = build_tuning_model(cfg, prompt).text_encoder.prompt_learner.state_dict()
    for key in init:  # (rows, n, C): 8 class rows, then the 5 background words
        assert torch.equal(learned[key][8:], init[key][8:])
        assert not torch.allclose(learned[key][:8], init[key][:8])
    cfg.prompt_tuning.prompt = dict(prompt, class_specific=False)
    with pytest.raises(ValueError, match='class_specific=True'):
        tune_prompts(cfg, str(tmp_path / 'x.pth'), device='cpu', show_progress=False)


def test_a_config_without_prompt_tuning_names_the_defaults_it_tunes_with(world, tmp_path, logged):
    """A config without a prompt_tuning section was tuned with the defaults without a word."""
    plain = REPO / 'configs/clip_es/clip-es_demo-clip_demo.py'
    out = tmp_path / 'prompts.pth'
    options = [o for o in world['options'] if not o.startswith('model.prompts=')]
    result = tune_prompts_main([str(plain), '--out', str(out), '--no-progress', '--device', 'cpu',
                                '--cfg-options', *options])
    named = [m for m in logged if 'no prompt_tuning section' in m]
    defaults = ', '.join(f'{k}={v!r}' for k, v in DEFAULT_PROMPT_TUNING.items())
    assert named == [f'tune_prompts: {plain} has no prompt_tuning section; tuning with the defaults '
                     f'({defaults}); set any of them in a prompt_tuning = dict(...) section of the config (as '
                     'configs/clip_es/clip-es-learned-prompts_demo-clip_demo.py does) or with --cfg-options '
                     'prompt_tuning.KEY=VALUE (e.g. prompt_tuning.epochs=20).']
    assert "epochs=40" in named[0] and "ctx_init': 'a photo of a'" in named[0]
    assert read_learned_prompts(str(out))['meta']['options'] == DEFAULT_PROMPT_TUNING  # what it names
    assert len(result['loss']) == DEFAULT_PROMPT_TUNING['epochs']
    logged.clear()
    with pytest.raises(ValueError, match='optimizer'):  # a config with the section: no such line
        tune_prompts_main([str(CFG), '--out', str(tmp_path / 'x.pth'), '--device', 'cpu', '--cfg-options',
                           *world['options'], 'prompt_tuning.optimizer=adam'])
    assert not [m for m in logged if 'prompt_tuning section' in m]
