"""WSSSEncoderDecoder built from the base model configs: mmseg Swin and timm Swin backbones, losses,
gradients, predict / CAM outputs, text encoder calls, memory bank checkpointing, the CAM baseline."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint, save_checkpoint
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.models.necks import RSCANeck
from mmseg_clip_wsss.models.segmentors import WSSSEncoderDecoder
from mmseg_clip_wsss.structures import set_image_labels

REPO = Path(__file__).resolve().parents[1]
SWIN_CFG = REPO / 'configs/_base_/models/clip_wsss_swin.py'
TIMM_CFG = REPO / 'configs/_base_/models/clip_wsss_timm_swin.py'
CLASSES = ['background', 'cat', 'dog', 'car']
K, S = len(CLASSES), 64
TINY_SWIN = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], window_size=4,
                 pretrain_img_size=S, drop_path_rate=0.0, init_cfg=None)
TINY_TIMM = dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=4, img_size=S,
                 pretrained=False, drop_path_rate=0.0)


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


def model_cfg(path, tiny_clip, backbone='tiny', **overrides):
    """The base config's model with the tiny open_clip text model (K = 4 classes, D = 32)."""
    model = copy.deepcopy(Config.fromfile(str(path)).model)
    model.data_preprocessor.size = (S, S)
    model.text_encoder.update(class_names=CLASSES, **tiny_clip)
    model.neck.update(num_classes=K, channels=16)
    model.decode_head.update(num_classes=K, embed_dim=32, in_channels=16, channels=16)
    if backbone == 'tiny':
        if model.backbone.type == 'SwinTransformer':
            model.backbone.update(TINY_SWIN)
        else:
            model.backbone.update(TINY_TIMM)
        model.neck.in_channels = [16, 32, 64, 128]
    elif model.backbone.type == 'SwinTransformer':
        model.backbone.init_cfg = None  # the real Swin-T, without downloading its checkpoint
    else:
        model.backbone.pretrained = False
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(model.get(key), dict):
            model[key].update(value)
        else:
            model[key] = value
    return model


def build(cfg, seed=0):
    torch.manual_seed(seed)
    model = revert_sync_batchnorm(MODELS.build(cfg))  # as mmengine's runner does without a launcher
    model.init_weights()
    return model


def samples(labels, size=S, ori_shape=None, masks=False):
    out = []
    for lab in labels:
        meta = dict(img_shape=(size, size), pad_shape=(size, size), ori_shape=ori_shape or (size, size))
        s = SegDataSample(metainfo=meta)
        set_image_labels(s, lab)
        if masks:
            s.gt_sem_seg = PixelData(data=torch.randint(0, K, (1, size, size)))
        out.append(s)
    return out


LABELS = torch.tensor([[1., 1., 0., 1.], [1., 0., 1., 0.]])
WEAK_KEYS = {'decode.loss_mlc', 'decode.loss_itc', 'neck.loss_region_nce'}


def count_calls(module):
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


# ------------------------------------------------------- build + train step
@pytest.mark.parametrize('path', [SWIN_CFG, TIMM_CFG], ids=['mmseg_swin', 'timm_swin'])
def test_tiny_model_shapes_losses_gradients_predict(path, tiny_clip):
    model = build(model_cfg(path, tiny_clip))
    assert isinstance(model, WSSSEncoderDecoder) and isinstance(model.neck, RSCANeck)
    x = torch.randn(2, 3, S, S)
    feats = model.backbone(x)
    assert [f.shape[1:] for f in feats] == [(16, 16, 16), (32, 8, 8), (64, 4, 4), (128, 2, 2)]
    assert model(x, mode='tensor').shape == (2, K, 16, 16)

    model.train()
    calls = count_calls(model.text_encoder)
    losses = model(x, samples(LABELS), mode='loss')
    assert set(losses) == WEAK_KEYS and len(calls) == 1
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    # every trainable parameter is in the graph (the empty bank's read-back only adds zeros)
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), \
        [n for n, g in grads.items() if g is None]
    ctx = [n for n in grads if n.startswith('text_encoder.prompt_learner')]
    assert ctx and all(grads[n].abs().sum() > 0 for n in ctx)  # learnable prompts learn
    assert not any(p.requires_grad for p in model.text_encoder.text_tower.parameters())
    assert grads['backbone.' + next(n for n, _ in model.backbone.named_parameters())].abs().sum() > 0
    assert model.neck.memory_bank.initialized.tolist() == [False, True, True, True]

    # a second step reads the bank: the aggregation parameters get gradients too
    model.zero_grad()
    sum(model(x, samples(LABELS), mode='loss').values()).backward()
    assert model.neck.readout.query.weight.grad.abs().sum() > 0 and model.neck.readout.gate.grad is not None

    model.eval()
    with torch.no_grad():
        calls.clear()
        results = model(x, samples(LABELS, ori_shape=(48, 56)), mode='predict')
    assert len(calls) == 1
    pred = torch.stack([r.pred_sem_seg.data[0] for r in results])
    assert pred.shape == (2, 48, 56) and pred.dtype == torch.int64
    assert results[0].seg_logits.data.shape == (K, 48, 56)
    with torch.no_grad():
        bare = model.predict(x)  # no data samples: input-sized maps
    assert torch.stack([r.pred_sem_seg.data[0] for r in bare]).shape == (2, S, S)


@pytest.mark.parametrize('path', [SWIN_CFG, TIMM_CFG], ids=['mmseg_swin', 'timm_swin'])
def test_train_step_with_data_preprocessor_on_real_swin_t(path, tiny_clip):
    """The base config as written (Swin-T, 4 levels 96..768 channels, SyncBN reverted), one
    optimisation step through mmengine's train_step, raw uint8 images in."""
    model = build(model_cfg(path, tiny_clip, backbone='real'))
    assert model.backbone(torch.zeros(1, 3, S, S))[-1].shape[1] == 768
    model.train()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    data = dict(inputs=[torch.randint(0, 256, (3, S, S), dtype=torch.uint8) for _ in range(2)],
                data_samples=samples(LABELS))
    before = model.decode_head.proj.weight.detach().clone()
    log_vars = model.train_step(data, optim)
    assert WEAK_KEYS <= set(log_vars) and torch.isfinite(log_vars['loss'])
    assert not torch.equal(before, model.decode_head.proj.weight)
    model.eval()
    results = model.val_step(dict(inputs=data['inputs'], data_samples=samples(LABELS)))
    assert results[0].pred_sem_seg.data.shape == (1, S, S)


def test_timm_swin_features_are_made_channels_first():
    """timm's Swin feature extractor returns (B, H, W, C) maps; TIMMNCHWBackbone (a TIMMBackbone)
    permutes them for mmseg necks and leaves channels-first timm models untouched."""
    kwargs = dict(model_name='swin_tiny_patch4_window7_224', **TINY_TIMM)
    torch.manual_seed(0)
    plain = MODELS.build(dict(type='TIMMBackbone', **kwargs))
    torch.manual_seed(0)
    wrapped = MODELS.build(dict(type='TIMMNCHWBackbone', **kwargs))
    x = torch.randn(1, 3, S, S)
    nhwc, nchw = plain(x), wrapped(x)
    assert nhwc[0].shape == (1, 16, 16, 16) and nhwc[1].shape == (1, 8, 8, 32)
    assert [f.shape for f in nchw] == [(1, 16, 16, 16), (1, 32, 8, 8), (1, 64, 4, 4), (1, 128, 2, 2)]
    assert all(torch.equal(a.permute(0, 3, 1, 2), b) for a, b in zip(nhwc, nchw))
    resnet = MODELS.build(dict(type='TIMMNCHWBackbone', model_name='resnet18', pretrained=False,
                               out_indices=(1, 2)))
    assert not resnet.channels_last and resnet(x)[0].shape == (1, 64, 16, 16)


def test_base_config_with_vit_b16_text_encoder_builds():
    """The config's own text encoder (ViT-B-16, randomly initialised here) fits the head: K=21, D=512."""
    cfg = copy.deepcopy(Config.fromfile(str(SWIN_CFG)).model)
    checkpoint = cfg.backbone.init_cfg.checkpoint
    assert checkpoint.endswith('swin_tiny_patch4_window7_224_20220317-1cdeb081.pth')
    assert cfg.backbone.embed_dims == 96 and cfg.backbone.depths == [2, 2, 6, 2]
    cfg.text_encoder.pretrained = None
    cfg.backbone.init_cfg = None
    model = MODELS.build(cfg)
    assert (model.text_encoder.num_classes, model.text_encoder.embed_dim) == (21, 512)
    assert model.decode_head.num_classes == 21 and model.neck.memory_bank.prototypes.shape == (21, 256)


# ------------------------------------------------------------- config checks
def test_num_classes_must_match_text_encoder(tiny_clip):
    cfg = model_cfg(SWIN_CFG, tiny_clip, decode_head=dict(num_classes=5), neck=dict(num_classes=5))
    with pytest.raises(ValueError, match=r'num_classes=5.*4 classes'):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match=r'embed_dim=16.*32'):
        MODELS.build(model_cfg(SWIN_CFG, tiny_clip, decode_head=dict(embed_dim=16)))
    with pytest.raises(ValueError, match=r'neck.num_classes=5.*decode_head.num_classes=4'):
        MODELS.build(model_cfg(SWIN_CFG, tiny_clip, neck=dict(num_classes=5)))
    cfg = model_cfg(SWIN_CFG, tiny_clip)
    cfg.text_encoder = None
    with pytest.raises(ValueError, match='text_encoder'):
        MODELS.build(cfg)


# ---------------------------------------------------------------- inference
def test_compute_cams_contract_and_cam_predict(tiny_clip):
    model = build(model_cfg(SWIN_CFG, tiny_clip)).eval()
    x = torch.randn(2, 3, S, S)
    with torch.no_grad():
        cams = model.compute_cams(x, LABELS)
    assert cams.shape == (2, K, S, S) and (cams >= 0).all()
    present = LABELS > 0
    peak = cams.amax(dim=(2, 3))
    assert torch.all(peak[~present] == 0)
    # each present class's map peaks at 1 (or is all 0 if the class scores negative everywhere)
    assert torch.all(((peak[present] - 1).abs() < 1e-5) | (peak[present] == 0))
    assert ((peak[present] - 1).abs() < 1e-5).sum() >= 2
    assert model.cam_background == 'score'  # text model: channel 0 is the background prompt's score
    # CAMs are the normalised ReLU of the (upsampled) scores
    with torch.no_grad():
        scores = torch.nn.functional.interpolate(model(x), size=(S, S), mode='bilinear')
    ref = scores.relu() / scores.relu().amax(dim=(2, 3), keepdim=True).clamp(min=1e-5)
    assert torch.allclose(cams, ref * present[..., None, None], atol=1e-5)

    model.test_cfg.output = 'cam'
    with torch.no_grad():
        results = model.predict(x, samples(LABELS))
    assert torch.allclose(torch.stack([r.seg_logits.data for r in results]), cams, atol=1e-5)
    pred = torch.stack([r.pred_sem_seg.data[0] for r in results])
    assert pred.shape == (2, S, S)
    assert set(pred[1].unique().tolist()) <= {0, 2}  # only the image's classes
    with pytest.raises(ValueError, match='data samples'):
        model.predict(x)


def test_cam_predict_of_images_without_labels_uses_the_predicted_classes_and_bg_threshold(tiny_clip):
    model = build(model_cfg(SWIN_CFG, tiny_clip)).eval()
    model.test_cfg.update(output='cam', bg_threshold=0.3)
    x = torch.randn(2, 3, S, S)
    with torch.no_grad():
        scores = model(x)  # (2, K, h, w)
    predicted = (model.decode_head.loss_mlc.pool(scores).sigmoid() > 0.5).float()
    predicted[:, 0] = 1
    unlabelled = samples(LABELS)
    del unlabelled[0].gt_image_labels  # image 0 has no labels, image 1 keeps its own
    with torch.no_grad():
        results = model.predict(x, unlabelled)
        cams = model.compute_cams(x, torch.stack([predicted[0], LABELS[1]]))
    logits = torch.stack([r.seg_logits.data for r in results])
    assert torch.all(logits[:, 0] == 0.3)  # the background channel is the threshold
    torch.testing.assert_close(logits[:, 1:], cams[:, 1:])
    pred = torch.stack([r.pred_sem_seg.data[0] for r in results])
    # background exactly where no class of the image reaches the threshold
    assert torch.equal(pred == 0, cams[:, 1:].amax(dim=1) <= 0.3)
    assert set(pred[1].unique().tolist()) <= {0, 2}


def test_slide_inference_calls_text_encoder_once(tiny_clip):
    model = build(model_cfg(SWIN_CFG, tiny_clip, test_cfg=dict(mode='slide', crop_size=(32, 32),
                                                                stride=(24, 24)))).eval()
    calls = count_calls(model.text_encoder)
    with torch.no_grad():
        results = model.predict(torch.randn(1, 3, S, 80), samples(LABELS[:1], size=S))
    assert len(calls) == 1
    assert results[0].seg_logits.data.shape[0] == K

    # on a pointwise model the averaged windows equal whole inference, and the windows tile the image
    weights = torch.randn(K, 3)
    windows = []

    def pointwise(crop, metas, text_embeds):  # (B, 3, h, w) -> (B, K, h, w), pixel by pixel
        assert text_embeds is not None and metas[0]['img_shape'] == crop.shape[2:]
        windows.append((int(crop[0, 0, 0, 0]), int(crop[0, 1, 0, 0])) + tuple(crop.shape[2:]))
        return torch.einsum('kc,bchw->bkhw', weights, crop) + text_embeds.sum()

    rows, cols = torch.meshgrid(torch.arange(S), torch.arange(80), indexing='ij')
    x = torch.stack([rows.float(), cols.float(), torch.randn(S, 80)])[None]  # (1, 3, S, 80)
    model.encode_decode = pointwise
    with torch.no_grad():
        slid = model.inference(x, [dict(img_shape=(S, 80))])
        text = model.encode_text()
    assert len(calls) == 3  # once for the sliding windows, once for `text` here
    assert torch.allclose(slid, torch.einsum('kc,bchw->bkhw', weights, x) + text.sum(), atol=1e-4)
    # windows of 32 px every 24 px, the last one flush with the border: (0, 24, 32) x (0, 24, 48)
    assert sorted(windows) == [(y, x, 32, 32) for y in (0, 24, 32) for x in (0, 24, 48)]


def test_full_supervision_mode(tiny_clip):
    model = build(model_cfg(SWIN_CFG, tiny_clip, decode_head=dict(supervision='full'))).train()
    losses = model.loss(torch.randn(2, 3, S, S), samples(LABELS, masks=True))
    assert set(losses) == {'decode.loss_ce', 'decode.acc_seg'}
    losses['decode.loss_ce'].backward()
    assert not model.neck.memory_bank.initialized.any()


def test_background_index_none_is_handed_down_and_class_0_learns(tiny_clip):
    """Without a background class (background_index=None on the segmentor, nowhere else), class 0 is
    trained by the multi-label loss, contrasted by the image-text loss and the RSC-A neck."""
    model = build(model_cfg(SWIN_CFG, tiny_clip, background_index=None, cam_norm='minmax')).train()
    head, neck = model.decode_head, model.neck
    assert head.background_index is None and neck.background_index is None
    assert head.loss_mlc.background_index is None and head.loss_itc.background_index is None
    scores = torch.zeros(2, K, 4, 4, requires_grad=True)
    head.loss_mlc(scores, LABELS).backward()
    assert scores.grad[:, 0].abs().sum() > 0  # channel 0 is trained
    only_class_0 = torch.tensor([[1., 0., 0., 0.], [1., 0., 0., 0.]])
    assert head.loss_itc(torch.randn(2, 32), torch.randn(K, 32), only_class_0, 1.0) > 0
    model.loss(torch.randn(2, 3, S, S), samples(only_class_0))
    assert neck.memory_bank.initialized.tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match='set it once, as model.background_index'):
        build(model_cfg(SWIN_CFG, tiny_clip, background_index=None,
                        decode_head=dict(background_index=0)))


# ------------------------------------------------------------- memory bank
def test_memory_bank_training_only_and_checkpoint_roundtrip(tiny_clip, tmp_path):
    cfg = model_cfg(SWIN_CFG, tiny_clip)
    model = build(cfg)
    x = torch.randn(2, 3, S, S)
    model.eval()
    model.loss(x, samples(LABELS))  # e.g. a validation loss: no update
    assert not model.neck.memory_bank.initialized.any()
    assert model.neck.memory_bank.prototypes.abs().sum() == 0

    model.train()
    model.loss(x, samples(torch.tensor([[1., 1., 0., 0.], [1., 1., 0., 0.]])))
    assert model.neck.memory_bank.initialized.tolist() == [False, True, False, False]
    before = model.neck.memory_bank.prototypes.clone()
    model.loss(x, samples(torch.tensor([[1., 0., 1., 0.], [1., 0., 0., 0.]])))
    changed = (model.neck.memory_bank.prototypes != before).any(dim=1)
    assert changed.tolist() == [False, False, True, False]  # only the present class's row
    assert model.neck.memory_bank.initialized.tolist() == [False, True, True, False]
    model.eval()
    snapshot = model.neck.memory_bank.prototypes.clone()
    model.loss(x, samples(LABELS))
    assert torch.equal(model.neck.memory_bank.prototypes, snapshot)

    path = str(tmp_path / 'iter_2.pth')
    save_checkpoint(model.state_dict(), path)
    fresh = build(cfg, seed=1)
    assert not fresh.neck.memory_bank.initialized.any()
    load_checkpoint(fresh, path, map_location='cpu', strict=True)
    assert torch.equal(fresh.neck.memory_bank.prototypes, model.neck.memory_bank.prototypes)
    assert torch.equal(fresh.neck.memory_bank.initialized, model.neck.memory_bank.initialized)
    assert fresh.neck.memory_bank.initialized.dtype == torch.bool
    for name, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name


# ------------------------------------------------------------ CAM baseline
def test_cam_baseline_same_framework():
    cfg = dict(
        type='WSSSEncoderDecoder',
        backbone=dict(type='SwinTransformer', out_indices=(0, 1, 2, 3), **TINY_SWIN),
        decode_head=dict(type='CAMClassifierHead', in_channels=128, channels=128, num_classes=K),
        test_cfg=dict(mode='whole'))
    model = build(cfg).train()
    assert model.text_encoder is None and not model.with_neck and model.cam_background == 'zero'
    x = torch.randn(2, 3, S, S)
    losses = model.loss(x, samples(LABELS))
    assert set(losses) == {'decode.loss_mlc'}
    losses['decode.loss_mlc'].backward()
    assert torch.isfinite(model.decode_head.classifier.weight.grad).all()
    model.eval()
    with torch.no_grad():
        cams = model.compute_cams(x, LABELS)
        results = model.predict(x, samples(LABELS))
    assert cams.shape == (2, K, S, S) and (cams >= 0).all() and cams.amax() <= 1 + 1e-6
    assert torch.all(cams[:, 0] == 0)  # no background score of its own
    assert torch.all(cams[~(LABELS > 0)] == 0)
    assert results[0].pred_sem_seg.data.shape == (1, S, S)
