"""Training-free CLIP-ES pseudo masks: softmax Grad-CAM, class-aware affinity, the no-checkpoint tool."""
import json
import os.path as osp
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.cli.make_pseudo_masks import main as make_pseudo_masks_main
from mmseg_clip_wsss.models.clip_es import (attention_pool_grad_cam, cam_box_mask, class_aware_affinity_refine,
                                         closed_form_supported, sinkhorn_affinity, softmax_grad_cam)
from mmseg_clip_wsss.datasets.synthetic import make_demo_data
from mmseg_clip_wsss.demo.training_free import training_free_row
from mmseg_clip_wsss.models import DEMO_CLIP_NAME, write_random_clip_checkpoint
from mmseg_clip_wsss.models.backbones import resize_pos_embed
from mmseg_clip_wsss.models.segmentors.training_free_clip_es import _block_with_attention
from mmseg_clip_wsss.registry import MODELS

REPO = Path(__file__).resolve().parents[1]
DEMO_CFG = REPO / 'configs/clip_es/clip-es_demo-clip_demo.py'
# a 2-block ViT that pools by averaging its patch tokens (as CLIP-ES pools), so open_clip's own
# encode_image is the direct computation of the scores
VIT_NAME = 'WSSS-Test-CLIPES-ViT'
CLASSES = ['background', 'apple', 'boat', 'cat']
WORDS = ['ground', 'sky']


@pytest.fixture(scope='module')
def vit_checkpoint(tmp_path_factory):
    from open_clip import factory
    factory._MODEL_CONFIGS[VIT_NAME] = dict(
        embed_dim=16, vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8, head_width=16,
                                      pool_type='avg'),
        text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))
    return write_random_clip_checkpoint(str(tmp_path_factory.mktemp('clip') / 'vit.pt'), VIT_NAME, seed=3)


def build_model(name, checkpoint, backbone_kw=None, **kwargs):
    return MODELS.build(dict(
        type='TrainingFreeCLIPES', class_names=CLASSES, background_words=WORDS,
        backbone=dict(type='CLIPVisionBackbone', model_name=name, pretrained=checkpoint, **(backbone_kw or {})),
        text_encoder=dict(type='CLIPPromptTextEncoder', model_name=name, pretrained=checkpoint,
                          **(backbone_kw or {})),
        **kwargs)).eval()


def direct_grad_cam(clip, x, text, target, softmax_rows):
    """Grad-CAM by hand: hook the last block's ln_1, score with open_clip's encode_image, backprop."""
    saved = {}
    handle = clip.visual.transformer.resblocks[-1].ln_1.register_forward_hook(
        lambda mod, inp, out: saved.setdefault('act', out.retain_grad() or out))
    image = F.normalize(clip.encode_image(x), dim=-1)
    handle.remove()
    logits = clip.logit_scale.exp() * image @ F.normalize(text, dim=-1).t()  # (1, T)
    if softmax_rows is not None:
        keep = torch.zeros_like(logits, dtype=torch.bool)
        keep[:, softmax_rows] = True
        logits = logits.masked_fill(~keep, float('-inf')).softmax(dim=-1)
    logits[0, target].backward()
    act, grad = saved['act'][0, 1:], saved['act'].grad[0, 1:]  # patch tokens (n, C)
    return (act * grad.mean(dim=0)).sum(dim=-1).relu()  # (n, )


@pytest.mark.parametrize('grad_cam', ['closed_form', 'autograd'])
@pytest.mark.parametrize('softmax_over', ['labels', 'all', 'none'])
def test_grad_cam_equals_direct_autograd_on_a_tiny_vit(vit_checkpoint, softmax_over, grad_cam):
    model = build_model(VIT_NAME, vit_checkpoint, softmax_over=softmax_over, affinity='none',
                        grad_cam=grad_cam)
    clip = open_clip.create_model(VIT_NAME, pretrained=vit_checkpoint).eval()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 48)  # not the pretraining size: the position embedding is resized
    labels = torch.tensor([[1., 1., 0., 1.]])  # apple and cat
    text = model.text_encoder()  # rows: apple, boat, cat, ground, sky
    targets, competitors = model._rows(labels)
    with torch.no_grad():
        cams, _ = model._vit_cams(x, text, targets, competitors)  # (1, 5, 4, 6)
    softmax_rows = dict(labels=[0, 2, 3, 4], all=[0, 1, 2, 3, 4], none=None)[softmax_over]
    # open_clip runs its own grid only: give it the position embedding resized to the 4 x 6 grid
    clip.visual.positional_embedding = torch.nn.Parameter(
        resize_pos_embed(clip.visual.positional_embedding, (4, 6), 1, 'bicubic'))
    for row in (0, 2):
        direct = direct_grad_cam(clip, x, text, row, softmax_rows)
        assert direct.abs().max() > 1e-4  # the comparison has something to compare
        torch.testing.assert_close(cams[0, row].flatten(), direct, atol=1e-5, rtol=1e-4)
    assert torch.all(cams[0, 1] == 0) and torch.all(cams[0, 3:] == 0)  # absent class, background words


# a ViT of other make: class-token pooling, layer scales, QuickGELU, 3 blocks, 4 heads
TOK_VIT_NAME = 'WSSS-Test-CLIPES-ViT-tok'


@pytest.fixture(scope='module')
def tok_vit_checkpoint(tmp_path_factory):
    from open_clip import factory
    factory._MODEL_CONFIGS[TOK_VIT_NAME] = dict(
        embed_dim=16, quick_gelu=True,
        vision_cfg=dict(image_size=32, layers=3, width=32, patch_size=8, head_width=8, ls_init_value=0.5),
        text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))
    path = str(tmp_path_factory.mktemp('clip') / 'tok.pt')
    write_random_clip_checkpoint(path, TOK_VIT_NAME, seed=5)
    state = torch.load(path)  # layer scales of 1 + noise: a wrong factor would show
    for key in [k for k in state if k.endswith('.gamma')]:
        state[key] = 1 + 0.5 * torch.randn_like(state[key])
    torch.save(state, path)
    return path


@pytest.mark.parametrize('softmax_over,pool', [('labels', 'tower'), ('all', 'patch_mean'), ('none', 'tower')])
def test_closed_form_grad_cam_equals_autograd_for_every_image_and_class(tok_vit_checkpoint, softmax_over,
                                                                         pool):
    """A batch of images with different labels (2, 1 and 3 classes): the written-out backward pass
    gives every image's CAM of every class, and the last block's attention, as autograd does."""
    kwargs = dict(softmax_over=softmax_over, pool=pool, affinity_layers=1,
                  backbone_kw=dict(quick_gelu=True))
    models = {g: build_model(TOK_VIT_NAME, tok_vit_checkpoint, grad_cam=g, **kwargs)
              for g in ('closed_form', 'autograd')}
    block = models['autograd'].backbone.transformer.resblocks[-1]
    assert type(block.ls_1).__name__ == 'LayerScale' and type(block.mlp.gelu).__name__ == 'QuickGELU'
    torch.manual_seed(4)
    x = torch.randn(3, 3, 40, 24)
    labels = torch.tensor([[1., 1., 0., 1.], [1., 0., 1., 0.], [1., 1., 1., 1.]])
    out = {}
    for g, model in models.items():
        targets, competitors = model._rows(labels)
        with torch.no_grad():
            out[g] = model._vit_cams(x, model.text_encoder(), targets, competitors)
    cams, affinity = out['closed_form']
    assert cams[:, :3][labels[:, 1:] > 0].flatten(1).amax(dim=1).min() > 1e-5  # something to compare
    torch.testing.assert_close(cams, out['autograd'][0], atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(affinity, out['autograd'][1], atol=1e-6, rtol=1e-5)
    model = models['closed_form']  # images without a foreground label: no row to explain
    targets, competitors = model._rows(torch.tensor([[1., 0., 0., 0.]] * 2))
    with torch.no_grad():
        cams, _ = model._vit_cams(x[:2], model.text_encoder(), targets, competitors)
    assert cams.shape[:2] == (2, 5) and torch.all(cams == 0)


@pytest.mark.parametrize('softmax_over', ['labels', 'all', 'none'])
def test_attention_pool_closed_form_equals_autograd_through_open_clips_pooling(softmax_over):
    """ModifiedResNet: the attention pooling's backward pass written out gives the CAMs of autograd
    through open_clip's own ``AttentionPool2d``, for a batch of images with 2, 1 and 3 classes."""
    from open_clip.modified_resnet import AttentionPool2d
    torch.manual_seed(6)
    pool = AttentionPool2d(spacial_dim=4, embed_dim=32, num_heads=4, output_dim=8).eval()
    with torch.no_grad():  # attention far from uniform
        pool.q_proj.weight.mul_(4)
        pool.k_proj.weight.mul_(4)
    x = torch.randn(3, 32, 4, 4)  # (B, C, h, w)
    text = torch.randn(5, 8)  # 3 classes, 2 background words
    targets = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 0, 0, 0], [1, 1, 1, 0, 0]]).bool()
    competitors = dict(labels=targets | torch.tensor([0, 0, 0, 1, 1]).bool(), all=torch.ones_like(targets),
                       none=None)[softmax_over]
    direct = softmax_grad_cam(x.flatten(2).transpose(1, 2), lambda t: pool(t.transpose(1, 2).reshape(x.shape)),
                              text, targets, competitors, 30.)  # (B, T, h * w)
    # the pooling's parameters require gradients here: the closed form keeps no graph all the same
    cams, none = attention_pool_grad_cam(x, pool, pool.positional_embedding, text, targets, competitors, 30.)
    wrong, _ = attention_pool_grad_cam(x, pool, pool.positional_embedding * 1.01, text, targets, competitors, 30.)
    assert none is None and not cams.requires_grad
    assert torch.all(cams[targets].amax(dim=1) > 0) and torch.all(cams[~targets] == 0)
    scale = direct.amax()  # the CAMs are of the order of 1e-4 here
    torch.testing.assert_close(cams / scale, direct / scale, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(wrong / scale, direct / scale, atol=1e-5, rtol=1e-4)  # the check can fail


def test_a_modified_resnets_cams_closed_form_and_autograd_agree(tmp_path):
    """The model's wiring: the resized position embedding of a 3 x 4 last stage, the same pooling."""
    ckpt = write_random_clip_checkpoint(str(tmp_path / 'rn.pt'), DEMO_CLIP_NAME, seed=2)
    models = [build_model(DEMO_CLIP_NAME, ckpt, grad_cam=g, softmax_over='all') for g in ('closed_form', 'autograd')]
    torch.manual_seed(0)
    x = torch.randn(2, 3, 96, 128)
    labels = torch.tensor([[1., 0., 1., 1.], [1., 1., 1., 1.]])
    out = []
    for model in models:
        targets, competitors = model._rows(labels)
        with torch.no_grad():
            out.append(model._resnet_cams(x, model.text_encoder(), targets, competitors))
    (closed, affinity), (autograd, affinity_autograd) = out
    scale = autograd.amax()
    assert closed.shape == (2, 5, 3, 4) and scale > 0
    torch.testing.assert_close(closed / scale, autograd / scale, atol=1e-5, rtol=1e-4)
    # the affinity: the pooling's attention among the positions, as torch's own multi-head attention
    # computes it (heads averaged; on a random map, the tower's being nearly uniform here)
    bb, model = models[0].backbone, models[0]
    pool, pos = bb.attnpool, bb.resize_pool_pos_embed((3, 4))
    targets, competitors = model._rows(labels)
    with torch.no_grad():
        feat = bb.layer4(bb.layer3(bb.layer2(bb.layer1(bb.stem(x)))))  # (2, C, 3, 4)
        _, own = attention_pool_grad_cam(feat, pool, pos, model.text_encoder(), targets, competitors,
                                         model.logit_scale, position_attention=True)
        feat = torch.randn_like(feat) * 30
        tokens = (feat.flatten(2).transpose(1, 2) + pos[1:]).transpose(0, 1)  # (12, 2, C)
        _, attn = F.multi_head_attention_forward(
            tokens, tokens, tokens, tokens.shape[-1], pool.num_heads, None,
            torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]), None, None, False, 0.,
            pool.c_proj.weight, pool.c_proj.bias, training=False, need_weights=True,
            use_separate_proj_weight=True, q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight,
            v_proj_weight=pool.v_proj.weight, average_attn_weights=True)  # (2, 12, 12)
        _, random_own = attention_pool_grad_cam(feat, pool, pos, model.text_encoder(), targets, competitors,
                                                model.logit_scale, position_attention=True)
    assert attn.amax() > 2 * attn.mean()  # not uniform: something to compare
    torch.testing.assert_close(random_own, attn)
    for affinity_of in (affinity, affinity_autograd):
        torch.testing.assert_close(affinity_of, sinkhorn_affinity(own, model.sinkhorn_iters, model.affinity_power))


def test_grad_cam_falls_back_to_autograd_where_the_closed_form_does_not_apply(tok_vit_checkpoint):
    model = build_model(TOK_VIT_NAME, tok_vit_checkpoint, backbone_kw=dict(quick_gelu=True))
    block = model.backbone.transformer.resblocks[-1]
    assert closed_form_supported(block)
    assert not closed_form_supported(torch.nn.Linear(4, 4))
    for name, other in (('attn', torch.nn.MultiheadAttention(32, 4, batch_first=True, add_bias_kv=True)),
                        ('attn', torch.nn.MultiheadAttention(32, 4, batch_first=True, add_zero_attn=True)),
                        ('ln_2', torch.nn.LayerNorm(32, bias=False)),
                        ('ln_1', torch.nn.LayerNorm(32, elementwise_affine=False))):
        kept = getattr(block, name)
        setattr(block, name, other)  # computes what the closed form does not: autograd takes it
        assert not closed_form_supported(block), other
        setattr(block, name, kept)
    model.pool, model.backbone.pool_type, model.backbone.final_ln_after_pool = 'tower', 'avg', True
    assert model._token_weights(5) is None  # ln_post of the patch mean: no per-token weighting
    targets, competitors = model._rows(torch.tensor([[1., 1., 0., 1.]]))
    with torch.no_grad():  # runs (by autograd) and explains the labelled classes
        cams, _ = model._vit_cams(torch.randn(1, 3, 32, 32), model.text_encoder(), targets, competitors)
    assert cams[0, [0, 2]].amax() > 0 and torch.all(cams[0, 1] == 0)
    with pytest.raises(ValueError, match='grad_cam'):
        build_model(TOK_VIT_NAME, tok_vit_checkpoint, grad_cam='numeric')


def test_grad_cam_in_bfloat16_keeps_the_labels_and_the_float32_weights(tok_vit_checkpoint, tmp_path):
    """``grad_cam_dtype='bfloat16'``: the last block's Grad-CAM on bfloat16 copies gives the float32
    labels at GRAD_CAM_LOW_PRECISION_AGREEMENT of the pixels or more; the copies are no part of the
    model (state dict, dtypes) and follow a weight that changes; the options it cannot serve refuse."""
    from mmseg_clip_wsss.models.segmentors.training_free_clip_es import GRAD_CAM_LOW_PRECISION_AGREEMENT
    kwargs = dict(softmax_over='all', affinity_layers=2, backbone_kw=dict(quick_gelu=True))
    exact = build_model(TOK_VIT_NAME, tok_vit_checkpoint, **kwargs)
    low = build_model(TOK_VIT_NAME, tok_vit_checkpoint, grad_cam_dtype='bfloat16', **kwargs)
    torch.manual_seed(7)
    x = torch.randn(4, 3, 64, 48)
    labels = torch.tensor([[1., 1., 0., 1.], [1., 0., 1., 0.], [1., 1., 1., 1.], [1., 0., 1., 1.]])
    with torch.no_grad():
        cams = {name: model.compute_cams(x, labels) for name, model in (('exact', exact), ('low', low))}
    assert cams['low'].dtype == torch.float32
    assert (cams['low'] - cams['exact']).abs().max() < 0.05
    present = labels[:, :, None, None] > 0
    masks = {k: torch.where(present, v, -1.).argmax(dim=1) for k, v in cams.items()}  # (B, H, W)
    assert (masks['low'] == masks['exact']).float().mean() >= GRAD_CAM_LOW_PRECISION_AGREEMENT
    assert not torch.equal(cams['low'], cams['exact'])  # it did run in bfloat16
    assert set(low.state_dict()) == set(exact.state_dict())
    assert all(p.dtype == torch.float32 for p in low.parameters())
    with torch.no_grad():  # a changed weight is copied again
        low.backbone.transformer.resblocks[-1].mlp.c_fc.weight.mul_(0)
        low.compute_cams(x, labels)
    copied_block = low._grad_cam_weights()[0]
    assert copied_block.mlp.c_fc.weight.dtype == torch.bfloat16 and not copied_block.mlp.c_fc.weight.any()
    with pytest.raises(ValueError, match="grad_cam_dtype='bfloat16' needs grad_cam='closed_form'"):
        build_model(TOK_VIT_NAME, tok_vit_checkpoint, grad_cam='autograd', grad_cam_dtype='bfloat16')
    with pytest.raises(ValueError, match='grad_cam_dtype'):
        build_model(TOK_VIT_NAME, tok_vit_checkpoint, grad_cam_dtype='float64')
    assert build_model(TOK_VIT_NAME, tok_vit_checkpoint, grad_cam_dtype='float32').grad_cam_dtype is None
    low.pool, low.backbone.pool_type, low.backbone.final_ln_after_pool = 'tower', 'avg', True
    with torch.no_grad():  # no closed form for a pooling after ln_post: autograd in float32, said once
        low.compute_cams(x[:1], labels[:1])
    assert low._fallback_said
    resnet = write_random_clip_checkpoint(str(tmp_path / 'rn.pt'), DEMO_CLIP_NAME, seed=0)
    with pytest.raises(ValueError, match='ModifiedResNet'):
        build_model(DEMO_CLIP_NAME, resnet, grad_cam_dtype='bfloat16')


def test_softmax_lowers_a_class_where_the_competing_text_explains_the_region():
    # text A = e1, text B = e2; region 1 (tokens 0-1) is A-like with a strong third feature, region 2
    # (tokens 2-3) is mostly B but also a little A. On the raw cosine logit of A, region 2 is what
    # raises it (region 1's third feature only dilutes the embedding), so plain Grad-CAM puts A there;
    # with the softmax over (A, B), B's text explains region 2 and A is activated on region 1 only.
    text = torch.tensor([[1., 0., 0.], [0., 1., 0.]])
    tokens = torch.tensor([[[1., 0., 2.], [1., 0., 2.], [.5, 1., 0.], [.5, 1., 0.]]])

    def embed(t):  # a linear tower: the mean token
        return t.mean(dim=1)

    targets = torch.tensor([[True, False]])
    raw = softmax_grad_cam(tokens, embed, text, targets, None, logit_scale=10.)[0, 0]
    soft = softmax_grad_cam(tokens, embed, text, targets, torch.tensor([[True, True]]), logit_scale=10.)[0, 0]
    assert torch.all(raw[2:] > 0.1) and torch.all(raw[:2] == 0)
    assert torch.all(soft[2:] == 0) and torch.all(soft[:2] > 0.1)
    assert torch.all(softmax_grad_cam(tokens, embed, text, ~targets, None, 10.)[0, 0] == 0)  # not a target


def test_box_mask_and_class_aware_affinity_stay_inside_the_boxes():
    cams = torch.zeros(1, 2, 8, 8)
    cams[0, 0, 1:3, 1:3] = 1.  # two separate blobs -> two boxes, not their hull
    cams[0, 0, 5:7, 5:8] = .8
    cams[0, 0, 4, 0] = .1  # below 0.4 x max: no box
    boxes = cam_box_mask(cams)
    assert boxes[0, 0].sum() == 4 + 6 and not boxes[0, 0, 3:5].any() and not boxes[0, 1].any()
    # an affinity that links every position with every other: the refined map is constant, but it
    # only gathers from inside the boxes
    affinity = sinkhorn_affinity(torch.rand(1, 64, 64) + 1)
    assert torch.allclose(affinity, affinity.transpose(1, 2), atol=1e-6)
    refined = class_aware_affinity_refine(cams, affinity)
    assert refined.shape == cams.shape and torch.all(refined[0, 1] == 0)  # an empty map stays empty
    identity = torch.eye(64)[None]
    kept = class_aware_affinity_refine(cams, identity)
    assert kept[0, 0, 4, 0] == 0 and abs(kept[0, 0, 1, 1] - 1) < 1e-5  # the weak pixel is outside every box


@pytest.mark.parametrize('tower', ['vit', 'resnet'])
def test_compute_cams_with_the_attention_affinity(vit_checkpoint, tmp_path, tower):
    if tower == 'vit':
        model = build_model(VIT_NAME, vit_checkpoint)
    else:  # the demo CLIP's ModifiedResNet: the affinity of its attention pooling's query and key
        model = build_model(DEMO_CLIP_NAME, write_random_clip_checkpoint(str(tmp_path / 'rn.pt'), DEMO_CLIP_NAME))
    labels = torch.tensor([[1., 0., 1., 0.], [1., 1., 1., 1.]])
    with torch.no_grad():
        cams = model.compute_cams(torch.randn(2, 3, 96, 128), labels)
    assert cams.shape == (2, 4, 96, 128)
    assert torch.all(cams[:, 0] == 0) and torch.all(cams[0, [1, 3]] == 0)  # background, absent
    assert cams.min() >= 0 and cams.max() <= 1 + 1e-6 and cams[1, 1:].amax() > 0.99
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match='mode'):
        model(torch.randn(1, 3, 64, 64), None, mode='loss')


def test_make_pseudo_masks_without_checkpoint_on_demo_data(tmp_path):
    root = tmp_path / 'demo'
    make_demo_data(str(root), seed=0, num_train=4, num_val=1, size=64, show_progress=False)
    ckpt = write_random_clip_checkpoint(str(tmp_path / 'rn.pt'), DEMO_CLIP_NAME, seed=0)
    out = str(tmp_path / 'masks')
    options = ['--cfg-options', f'cam_dataloader.dataset.data_root={root}',
               f'model.backbone.pretrained={ckpt}', f'model.text_encoder.pretrained={ckpt}']
    res = make_pseudo_masks_main([str(DEMO_CFG), '--out-dir', out, '--eval', '--no-progress',
                                  '--scales', '1.0', *options])
    assert res['written'] == 4
    metrics = json.load(open(osp.join(out, 'metrics.json')))
    assert metrics['num_images'] == 4 and 0 <= metrics['mIoU'] <= 100
    assert json.load(open(osp.join(out, 'protocol.json')))['checkpoint'] is None
    # the demo's training-free row: the same command on the demo config, as a function
    row = training_free_row(str(root), ckpt, str(tmp_path / 'row'), config=str(DEMO_CFG),
                            key='training_free_clip_es')
    assert row['training_free_clip_es_images'] == 4 and 0 <= row['training_free_clip_es_miou'] <= 100
    assert row['training_free_clip_es_seconds_per_image'] > 0
    # the val split: its masks are logged and recorded as val, and the row's keys name the split
    row = training_free_row(str(root), ckpt, str(tmp_path / 'row_val'), config=str(DEMO_CFG),
                            key='training_free_clip_es', split='val')
    assert set(row) == {'training_free_clip_es_val_miou', 'training_free_clip_es_val_seconds_per_image',
                        'training_free_clip_es_val_images'}
    assert row['training_free_clip_es_val_images'] == 1
    assert json.load(open(tmp_path / 'row_val' / 'protocol.json'))['split'] == 'val'
    # a trained model still needs its checkpoint
    trained = str(REPO / 'configs/demo/cam_baseline_swin_demo.py')
    with pytest.raises(ValueError, match='CHECKPOINT'):
        make_pseudo_masks_main([trained, '--out-dir', str(tmp_path / 'x'), '--no-progress',
                                '--cfg-options', f'cam_dataloader.dataset.data_root={root}'])


def test_a_batch_gives_the_cams_of_its_images_one_at_a_time(vit_checkpoint):
    """Grad-CAM, affinity and boxes of a batch of images with other labels each: the CAMs of the
    images computed alone."""
    model = build_model(VIT_NAME, vit_checkpoint)  # attention affinity, softmax over the labels
    torch.manual_seed(1)
    x = torch.randn(3, 3, 32, 48)
    labels = torch.tensor([[1., 1., 0., 1.], [1., 0., 1., 0.], [1., 1., 1., 1.]])
    with torch.no_grad():
        batched = model.compute_cams(x, labels)  # (3, 4, 32, 48)
        alone = torch.cat([model.compute_cams(x[i:i + 1], labels[i:i + 1]) for i in range(3)])
    assert batched[:, 1:].amax(dim=(-2, -1)).gt(0.5).sum() == 6  # every present class has a map
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=0)  # float rounding of other shapes

    def labels_of(cams):  # background where no class reaches 0.4
        return torch.cat([torch.full_like(cams[:, :1], 0.4), cams[:, 1:]], dim=1).argmax(dim=1)
    assert torch.equal(labels_of(batched), labels_of(alone))


def test_the_affinity_reads_the_last_block_attention_of_the_grad_cam_pass(vit_checkpoint):
    """The last block runs once (in the Grad-CAM pass); its attention, from its query and key
    projections, and that of the blocks before it give the affinity of plain passes of every block
    of ``affinity_layers``."""
    model = build_model(VIT_NAME, vit_checkpoint, affinity_layers=2)
    torch.manual_seed(2)
    x = torch.randn(2, 3, 32, 48)
    targets, competitors = model._rows(torch.tensor([[1., 1., 0., 1.], [1., 0., 1., 0.]]))
    with torch.no_grad():
        _, affinity = model._vit_cams(x, model.text_encoder(), targets, competitors)
        tokens, _ = model.backbone.vit_tokens(x)
        attentions = []
        for block in model.backbone.transformer.resblocks:
            tokens, attn = _block_with_attention(block, tokens)
            attentions.append(attn)
        expected = sinkhorn_affinity(torch.stack(attentions).mean(dim=0)[:, 1:, 1:],
                                     model.sinkhorn_iters, model.affinity_power)
    torch.testing.assert_close(affinity, expected, atol=1e-6, rtol=1e-5)
