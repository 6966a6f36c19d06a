"""TrainingFreeDenseCLIP: pseudo masks from a dense zero-shot mode (mode 'plain' is CLIP-ES), its
configs (ViT-B/16 VOC and COCO, the demo CLIP) and the demo's training-free entry with any mode."""
import json
import os.path as osp
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.cam.pseudo_mask import cams_to_pseudo_mask
from mmseg_clip_wsss.cli.make_pseudo_masks import main as make_pseudo_masks_main
from mmseg_clip_wsss.datasets.synthetic import make_demo_data
from mmseg_clip_wsss.demo import dense_open_vocab
from mmseg_clip_wsss.demo.dense_open_vocab import dense_open_vocab_figures, open_vocab_class_words
from mmseg_clip_wsss.demo.training_free import config_clip, training_free_row
from mmseg_clip_wsss.models import DEMO_CLIP_NAME, write_random_clip_checkpoint
from mmseg_clip_wsss.models.open_clip_models import DEMO_CLIP_VIT_NAME
from mmseg_clip_wsss.models.backbones.dense_modes import DENSE_MODES
from mmseg_clip_wsss.registry import MODELS

REPO = Path(__file__).resolve().parents[1]
DENSE_DIR = REPO / 'configs/dense_clip'
DEMO_CFG = DENSE_DIR / 'dense-clip-maskclip_demo-clip_demo.py'
VIT_NAME = 'WSSS-Test-Dense-Free-ViT'
CLASSES = ['background', 'apple', 'boat', 'cat']
WORDS = ['ground', 'sky']


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    from open_clip import factory
    factory._MODEL_CONFIGS[VIT_NAME] = dict(
        embed_dim=16, vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8, head_width=16),
        text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))
    root = tmp_path_factory.mktemp('clip')
    return {name: write_random_clip_checkpoint(str(root / f'{name}.pt'), name, seed=4)
            for name in (VIT_NAME, DEMO_CLIP_NAME)}


def build(name, checkpoint, type='TrainingFreeDenseCLIP', **kwargs):
    return MODELS.build(dict(
        type=type, class_names=CLASSES, background_words=WORDS,
        backbone=dict(type='CLIPVisionBackbone', model_name=name, pretrained=checkpoint),
        text_encoder=dict(type='CLIPPromptTextEncoder', model_name=name, pretrained=checkpoint),
        **kwargs)).eval()


def test_plain_mode_is_clip_es(checkpoints):
    dense = build(VIT_NAME, checkpoints[VIT_NAME], dense_mode='plain')
    clip_es = build(VIT_NAME, checkpoints[VIT_NAME], type='TrainingFreeCLIPES')
    x, labels = torch.randn(2, 3, 40, 48), torch.tensor([[1., 1., 0., 1.], [1., 0., 1., 0.]])
    with torch.no_grad():
        assert torch.equal(dense.compute_cams(x, labels), clip_es.compute_cams(x, labels))


@pytest.mark.parametrize('name,mode', [(VIT_NAME, m) for m in DENSE_MODES[1:]] +
                         [(DEMO_CLIP_NAME, 'maskclip')])
def test_dense_maps_are_the_label_softmax_of_the_patch_text_similarity(checkpoints, name, mode):
    model = build(name, checkpoints[name], dense_mode=mode, dense_logit_scale=30.0)
    size = (40, 48) if name == VIT_NAME else (96, 128)
    x, labels = torch.randn(2, *(3, ) + size), torch.tensor([[1., 1., 0., 1.], [1., 0., 1., 0.]])
    with torch.no_grad():
        cams = model.compute_cams(x, labels)
        # by hand: rows = apple, boat, cat, ground, sky; competitors = the labelled classes + the words
        emb = F.normalize(model.backbone.dense_embeddings(x), dim=1)
        text = F.normalize(model.text_encoder(), dim=-1)
    logits = 30.0 * torch.einsum('bdhw,td->bthw', emb, text)
    expected = torch.zeros(2, 4, *emb.shape[-2:])
    for i, rows in enumerate([[0, 2, 3, 4], [1, 3, 4]]):
        probs = logits[i, rows].softmax(dim=0)
        fg_wins = probs.argmax(dim=0) < len(rows) - 2
        for j, r in enumerate(rows[:-2]):
            expected[i, 1 + r] = probs[j] * fg_wins
    expected = F.interpolate(expected, size=size, mode='bilinear', align_corners=False)
    assert cams.shape == (2, 4) + size
    torch.testing.assert_close(cams, expected, atol=1e-5, rtol=0)
    assert torch.all(cams[:, 0] == 0) and torch.all(cams[0, 2] == 0) and torch.all(cams[1, [1, 3]] == 0)


def test_pseudo_mask_is_the_argmax_over_present_classes_and_background():
    """Maps as TrainingFreeDenseCLIP makes them (0 where a background word wins) + the threshold rule."""
    cams = torch.zeros(1, 4, 1, 4)
    cams[0, 1, 0] = torch.tensor([0.7, 0.3, 0.0, 0.45])  # pixel 2: a background word won
    cams[0, 3, 0] = torch.tensor([0.2, 0.6, 0.0, 0.40])
    labels = torch.tensor([[1., 1., 0., 1.]])
    mask = cams_to_pseudo_mask(cams, labels, bg_mode='threshold', bg_threshold=0.5)
    assert mask[0, 0].tolist() == [1, 3, 0, 0]  # pixel 3: the winner is below 0.5


def test_bad_settings_are_refused(checkpoints):
    with pytest.raises(ValueError, match=r"dense_mode='segclip'.*valid: \('plain', 'maskclip'"):
        build(VIT_NAME, checkpoints[VIT_NAME], dense_mode='segclip')
    with pytest.raises(ValueError, match="softmax_over='labels' or 'all'"):
        build(VIT_NAME, checkpoints[VIT_NAME], dense_mode='sclip', softmax_over='none')
    with pytest.raises(ValueError, match='need a ViT tower'):
        build(DEMO_CLIP_NAME, checkpoints[DEMO_CLIP_NAME], dense_mode='naclip')
    model = build(VIT_NAME, checkpoints[VIT_NAME], dense_mode='sclip')
    with pytest.raises(ValueError, match=r'image_labels must be \(B, 4\)'):
        model.compute_cams(torch.randn(1, 3, 32, 32), torch.ones(1, 3))


@pytest.mark.parametrize('dataset', ['voc', 'coco'])
def test_vit_b16_roots_are_clip_es_with_a_dense_mode(dataset):
    root = Config.fromfile(str(DENSE_DIR / f'dense-clip-maskclip_vit-b16_{dataset}.py'))
    clip_es = Config.fromfile(str(REPO / f'configs/clip_es/clip-es_vit-b16_{dataset}.py'))
    assert root.model.type == 'TrainingFreeDenseCLIP' and root.model.dense_mode == 'maskclip'
    assert root.model.backbone.model_name == 'ViT-B-16' and root.model.backbone.pretrained == 'openai'
    assert root.model.class_names == clip_es.model.class_names
    assert root.cam_cfg.normalise is False and root.cam_cfg.bg_mode == 'threshold'


@pytest.mark.parametrize('family', ['vit-b16_voc', 'vit-b16_coco', 'demo-clip-vit_demo'])
def test_one_config_line_per_mode(family):
    root = Config.fromfile(str(DENSE_DIR / f'dense-clip-maskclip_{family}.py'))
    assert root.model.backbone.model_name.startswith(('ViT-B-16', 'WSSS-Demo-CLIP-ViT'))
    for mode in ('sclip', 'clearclip', 'naclip'):
        cfg = Config.fromfile(str(DENSE_DIR / f'dense-clip-{mode}_{family}.py'))
        assert cfg.model.dense_mode == mode
        child, parent = cfg.to_dict(), root.to_dict()
        child['model'].pop('dense_mode'), parent['model'].pop('dense_mode')
        assert child == parent, mode  # one line apart


def test_vit_b16_config_builds_without_downloading(tmp_path):
    """The ViT-B/16 configs build as the CLIP-ES ones do: open_clip's architecture, weights on first use
    (here random weights stand in for 'openai', which would download)."""
    cfg = Config.fromfile(str(DENSE_DIR / 'dense-clip-naclip_vit-b16_voc.py'))
    cfg.model.backbone.pretrained = cfg.model.text_encoder.pretrained = None
    init_default_scope('mmseg')  # the data preprocessor is mmseg's
    model = MODELS.build(cfg.model)
    assert model.backbone.dense_mode == 'naclip' and model.backbone.arch == 'vit'
    assert model.backbone.pos_embed_scale_offset == 0.1 and model.num_classes == 21
    with torch.no_grad():
        labels = torch.tensor([[1.] + [0.] * 14 + [1.] + [0.] * 5])  # background, person
        cams = model.compute_cams(torch.randn(1, 3, 64, 80), labels)
    assert cams.shape == (1, 21, 64, 80) and torch.all(cams[0, :15] == 0) and torch.all(cams[0, 16:] == 0)
    assert torch.isfinite(cams).all() and 0 <= cams.min() and cams.max() <= 1  # random weights: any map


def test_demo_dense_config_makes_masks_and_the_demo_entry_takes_any_config(tmp_path):
    root = tmp_path / 'demo'
    make_demo_data(str(root), seed=0, num_train=4, num_val=2, size=64, show_progress=False)
    ckpt = write_random_clip_checkpoint(str(tmp_path / 'rn.pt'), DEMO_CLIP_NAME, seed=0)
    out = str(tmp_path / 'masks')
    options = ['--cfg-options', f'cam_dataloader.dataset.data_root={root}',
               f'model.backbone.pretrained={ckpt}', f'model.text_encoder.pretrained={ckpt}']
    res = make_pseudo_masks_main([str(DEMO_CFG), '--out-dir', out, '--eval', '--no-progress', *options])
    assert res['written'] == 4
    assert 0 <= json.load(open(osp.join(out, 'metrics.json')))['mIoU'] <= 100
    row = training_free_row(str(root), ckpt, str(tmp_path / 'row'), config=str(DEMO_CFG), split='val')
    assert row['training_free_val_images'] == 2 and 0 <= row['training_free_val_miou'] <= 100  # split named


def test_dense_open_vocabulary_figures(tmp_path, monkeypatch):
    root = tmp_path / 'demo'
    make_demo_data(str(root), seed=0, num_train=2, num_val=1, num_openvocab=3, size=64, show_progress=False)
    ckpt = write_random_clip_checkpoint(str(tmp_path / 'rn.pt'), DEMO_CLIP_NAME, seed=0)
    words = open_vocab_class_words(str(root))
    info = json.load(open(root / 'demo_info.json'))
    assert [w[0] for w in words] == info['open_vocab_classes'] and len(words) > len(info['classes'])
    figures = dense_open_vocab_figures(str(DEMO_CFG), str(root), ckpt)
    assert figures['dense_mode'] == 'maskclip'
    for key in ('unseen_miou', 'seen_miou', 'unseen_miou_true_labels', 'seen_miou_true_labels'):
        assert 0 <= figures[f'dense_open_vocab_{key}'] <= 100
    assert set(figures['dense_open_vocab_per_class_iou']) == set(info['open_vocab_classes'])
    assert 'dense_open_vocab_note' not in figures
    # the train split holds no unseen class: None and a note, not the 0.0 of unseen names predicted there
    names = info['open_vocab_classes']
    unseen = [n for n in names if n not in info['classes']]
    monkeypatch.setattr(dense_open_vocab, '_segment', lambda model, protocol, rgb, *a: np.full(
        rgb.shape[:2], names.index(unseen[0]), dtype=np.uint8))  # every pixel: the first unseen name
    train = dense_open_vocab_figures(str(DEMO_CFG), str(root), ckpt, split='train')
    assert train['dense_open_vocab_per_class_iou'][unseen[0]] == 0.0  # predicted, absent from the GT
    assert train['dense_open_vocab_unseen_miou'] is None
    assert train['dense_open_vocab_unseen_miou_true_labels'] is None
    assert train['dense_open_vocab_note'].startswith("no unseen class in split 'train'")
    assert 0 <= train['dense_open_vocab_seen_miou'] <= 100
    with pytest.raises(ValueError, match='Grad-CAM'):
        dense_open_vocab_figures(str(DEMO_CFG), str(root), ckpt, dense_mode='plain')
    clip_es = str(REPO / 'configs/clip_es/clip-es_demo-clip_demo.py')
    with pytest.raises(ValueError, match='TrainingFreeCLIPES, which has no dense mode'):
        dense_open_vocab_figures(clip_es, str(root), ckpt, dense_mode='maskclip')
    with pytest.raises(ValueError, match='Grad-CAM'):
        dense_open_vocab_figures(clip_es, str(root), ckpt)


@pytest.mark.parametrize('mode', ['plain', 'naclip'])
def test_demo_vit_clip_configs_build_and_make_maps(tmp_path, mode):
    ckpt = write_random_clip_checkpoint(str(tmp_path / 'vit.pt'), DEMO_CLIP_VIT_NAME, seed=0)
    cfg = Config.fromfile(str(DENSE_DIR / f'dense-clip-{mode}_demo-clip-vit_demo.py'))
    cfg.model.backbone.pretrained = cfg.model.text_encoder.pretrained = ckpt
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model).eval()
    assert model.backbone.arch == 'vit' and model.backbone.dense_mode == mode
    labels = torch.tensor([[1., 1., 0., 0., 0., 0., 1., 0., 0.]])
    with torch.no_grad():
        cams = model.compute_cams(torch.randn(1, 3, 128, 96), labels)
    assert cams.shape == (1, 9, 128, 96) and torch.all(cams[0, [0, 2, 3, 4, 5, 7, 8]] == 0)
    assert 0 <= cams.min() and cams.max() <= 1 + 1e-6


def test_the_demo_tools_take_the_clip_of_their_config_under_the_data_root(tmp_path):
    """The ViT demo configs load their own CLIP (``clip_vit``), not the ModifiedResNet one, and a
    missing one is named with the config whose header tells how to make it."""
    vit = 'configs/dense_clip/dense-clip-naclip_demo-clip-vit_demo.py'
    assert config_clip(vit, str(tmp_path)) == str(tmp_path / 'clip_vit' / 'clip.pt')
    assert config_clip('configs/clip_es/clip-es_demo-clip_demo.py', str(tmp_path)) == str(tmp_path / 'clip' / 'clip.pt')
    make_demo_data(str(tmp_path), seed=0, num_train=1, num_val=1, size=64, show_progress=False)  # data, no CLIP
    with pytest.raises(FileNotFoundError, match=r'clip_vit/clip.pt does not exist; make it as the header of '
                                                r'configs/dense_clip/dense-clip-naclip_demo-clip-vit_demo.py'):
        training_free_row(str(tmp_path), None, str(tmp_path / 'out'), config=vit, split='val')
