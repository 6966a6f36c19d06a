"""Noise: pseudo-mask confidence maps, the noise-robust stage-2 losses, image corruptions and the
robustness tool."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import save_checkpoint
from mmengine.structures import PixelData
from mmseg.models.losses import CrossEntropyLoss
from mmseg.registry import MODELS, TRANSFORMS
from mmseg.structures import SegDataSample
from PIL import Image

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.cli.robustness import main as robustness_main
from mmseg_clip_wsss.apis.robustness import corrupted_dataloader_cfg
from mmseg_clip_wsss.cam import cams_to_pseudo_mask, pseudo_mask_confidence
from mmseg_clip_wsss.datasets import (CORRUPTIONS, confidence_path, corrupt_image,
                                      read_confidence_png, write_confidence_png, write_palette_png)
from mmseg_clip_wsss.datasets.synthetic import make_demo_data
from mmseg_clip_wsss.models.losses import early_learning_ended

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


# --------------------------------------------------------------------------- confidence maps
def test_confidence_png_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    conf = rng.random((13, 17))
    conf[0, 0], conf[0, 1] = 0., 1.
    path = write_confidence_png(str(tmp_path / 'confidence' / 'a.png'), torch.from_numpy(conf))
    with Image.open(path) as img:
        assert img.mode == 'L' and img.size == (17, 13)
    codes = read_confidence_png(path)
    assert codes.dtype == np.uint8 and codes.shape == (13, 17)
    assert np.abs(codes / 255. - conf).max() <= 0.5 / 255 + 1e-9
    assert codes[0, 0] == 0 and codes[0, 1] == 255
    assert confidence_path('/x/masks/a.png') == '/x/masks/confidence/a.png'
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        write_confidence_png(str(tmp_path / 'b.png'), np.full((2, 2), 1.5))
    with pytest.raises(FileNotFoundError, match='--overwrite'):
        read_confidence_png(str(tmp_path / 'missing.png'))
    write_palette_png(str(tmp_path / 'p.png'), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="mode 'L'"):
        read_confidence_png(str(tmp_path / 'p.png'))


def test_confidence_is_the_winning_share_of_the_present_classes():
    cams = torch.zeros(1, 3, 1, 4)
    cams[0, 1] = torch.tensor([0.8, 0.1, 0.3, 0.0])  # class 1 present
    cams[0, 2] = torch.tensor([0.9, 0.9, 0.9, 0.9])  # class 2 absent from the labels
    labels = torch.tensor([[1., 1., 0.]])
    mask = cams_to_pseudo_mask(cams, labels, bg_threshold=0.2, ignore_margin=0.05)
    assert mask[0, 0].tolist() == [1, 0, 1, 0]
    conf = pseudo_mask_confidence(cams, labels, mask, bg_threshold=0.2)[0, 0]
    expected = [0.8 / 1.0, 0.2 / 0.3, 0.3 / 0.5, 1.0]  # the absent class never counts
    assert torch.allclose(conf, torch.tensor(expected))
    mask[0, 0, 0] = 255
    assert pseudo_mask_confidence(cams, labels, mask, bg_threshold=0.2)[0, 0, 0] == 0


def _write_mask_and_confidence(root, size=(40, 48)):
    """A mask (left half 1, right half 2) and a confidence that is 1.0 on the left half, 0.2 on the
    right, and an image whose left half is bright."""
    h, w = size
    mask = np.ones(size, np.uint8)
    mask[:, w // 2:] = 2
    conf = np.where(mask == 1, 1.0, 0.2)
    mask_path = osp.join(root, 'masks', 'a.png')
    write_palette_png(mask_path, mask)
    write_confidence_png(confidence_path(mask_path), conf)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :w // 2] = 200
    return mask_path, img


def test_confidence_map_moves_with_the_mask_and_is_packed(tmp_path):
    mask_path, img = _write_mask_and_confidence(str(tmp_path))
    pipeline = [TRANSFORMS.build(t) for t in [
        dict(type='LoadAnnotations'),
        dict(type='LoadConfidenceMap'),
        dict(type='RandomResize', scale=(64, 64), ratio_range=(1.0, 1.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(32, 32)),
        dict(type='RandomFlip', prob=1.0),
        dict(type='PackWSSSInputs')
    ]]
    results = dict(img=img, img_path='a.jpg', seg_map_path=mask_path, img_shape=img.shape[:2],
                   ori_shape=img.shape[:2], reduce_zero_label=False, seg_fields=[])
    for t in pipeline:
        results = t(results)
    sample = results['data_samples']
    label = sample.gt_sem_seg.data[0]
    conf = sample.gt_confidence.data[0]
    assert conf.shape == label.shape == (32, 32)
    assert torch.allclose(conf[label == 1], torch.tensor(1.0))
    assert torch.allclose(conf[label == 2], torch.tensor(51 / 255))


def test_confidence_map_of_another_size_is_refused(tmp_path):
    mask_path, _ = _write_mask_and_confidence(str(tmp_path))
    write_confidence_png(confidence_path(mask_path), np.ones((8, 8)))
    load = [TRANSFORMS.build(dict(type='LoadAnnotations')),
            TRANSFORMS.build(dict(type='LoadConfidenceMap'))]
    results = dict(seg_map_path=mask_path, reduce_zero_label=False, seg_fields=[])
    with pytest.raises(ValueError, match='--overwrite'):
        load[1](load[0](results))


# --------------------------------------------------------------------------- losses
def _logits_and_labels(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 6, 7, generator=g)
    labels = torch.randint(0, 4, (2, 6, 7), generator=g)
    labels[0, 0, :3] = 255
    return logits, labels


@pytest.mark.parametrize('mode', ['ignore', 'weight'])
def test_confidence_guided_loss_is_ce_at_full_confidence(mode):
    logits, labels = _logits_and_labels()
    loss = MODELS.build(dict(type='ConfidenceGuidedCrossEntropyLoss', threshold=0.6, mode=mode))
    ce = CrossEntropyLoss(avg_non_ignore=True)
    ones = torch.ones(labels.shape)
    assert torch.allclose(loss(logits, labels, weight=ones, ignore_index=255),
                          ce(logits, labels, ignore_index=255))


def test_confidence_guided_loss_ignores_pixels_below_the_threshold():
    logits, labels = _logits_and_labels()
    logits.requires_grad_(True)
    conf = torch.ones(labels.shape)
    low = torch.zeros(labels.shape, dtype=torch.bool)
    low[1, 2:, :] = True
    conf[low] = 0.59
    loss = MODELS.build(dict(type='ConfidenceGuidedCrossEntropyLoss', threshold=0.6))
    value = loss(logits, labels, weight=conf, ignore_index=255)
    expected = CrossEntropyLoss(avg_non_ignore=True)(logits, labels.masked_fill(low, 255),
                                                     ignore_index=255)
    assert torch.allclose(value, expected)
    assert not torch.allclose(value, CrossEntropyLoss(avg_non_ignore=True)(
        logits, labels, ignore_index=255))
    value.backward()
    grad = logits.grad.abs().sum(dim=1)  # (B, H, W)
    assert (grad[low] == 0).all() and (grad[~low & (labels != 255)] > 0).all()
    with pytest.raises(ValueError, match='ConfidenceUPerHead'):
        loss(logits, labels, ignore_index=255)


def test_confidence_head_hands_the_confidence_to_its_loss():
    head_cfg = dict(in_channels=[8, 8], in_index=[0, 1], channels=8, pool_scales=(1, 2),
                    num_classes=3, norm_cfg=dict(type='BN'), align_corners=False, dropout_ratio=0.)
    head = MODELS.build(dict(
        type='ConfidenceUPerHead', **head_cfg,
        loss_decode=dict(type='ConfidenceGuidedCrossEntropyLoss', threshold=0.5)))
    feats = [torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4)]
    samples = []
    for i in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 16, 16)))
        s.gt_confidence = PixelData(data=torch.ones(1, 16, 16))
        samples.append(s)
    full = head.loss(feats, samples, None)['loss_ce']
    samples[1].gt_confidence.data[:, :, :8] = 0.1  # half of image 1 falls below the threshold
    part = head.loss(feats, samples, None)['loss_ce']
    assert not torch.allclose(full, part)
    assert head.sampler is None  # nothing is left behind between batches
    plain = MODELS.build(dict(type='UPerHead', **head_cfg,
                              loss_decode=dict(type='CrossEntropyLoss', avg_non_ignore=True)))
    plain.load_state_dict(head.state_dict())
    for s in samples:
        s.gt_confidence.data.fill_(1.)
    assert torch.allclose(plain.loss(feats, samples, None)['loss_ce'],
                          head.loss(feats, samples, None)['loss_ce'])


def test_early_learning_end_is_detected_on_a_flattening_curve_only():
    t = np.arange(1, 13)
    assert early_learning_ended(0.7 * (1 - np.exp(-0.5 * t)))
    assert not early_learning_ended(0.04 * t)  # still learning at a constant rate
    assert not early_learning_ended(np.array([0.1, 0.2, 0.3]))  # too few points


def test_early_learning_correction_relabels_confident_pixels_of_flagged_classes():
    loss = MODELS.build(dict(type='EarlyLearningCorrectionLoss', num_classes=3, interval=2))
    labels = torch.tensor([[[0, 0, 1, 1, 255]]])  # (1, 1, 5): class 2 is not in this mask
    logits = torch.full((1, 3, 1, 5), -5.)
    logits[0, 1, 0, 0] = 5.  # confident class 1 on a pixel labelled 0
    logits[0, 0, 0, 2] = 5.  # confident class 0 on a pixel labelled 1
    logits[0, 2, 0, 3] = 5.  # confident class 2, absent from the mask
    logits[0, 1, 0, 4] = 5.  # confident class 1 on an ignored pixel
    assert torch.equal(loss.correct(logits, labels), labels)  # no class flagged yet
    loss.correcting[1] = True
    assert loss.correct(logits, labels).tolist() == [[[1, 0, 1, 1, 1]]]
    loss.correcting[2] = True
    assert loss.correct(logits, labels)[0, 0, 3] == 1  # never a class the mask lacks
    # training tracks the IoU curve: one point per `interval` calls
    loss.train()
    for _ in range(4):
        loss(logits, labels, ignore_index=255)
    assert int(loss.num_points) == 2 and int(loss.steps) == 4


# --------------------------------------------------------------------------- corruptions
def _square_image(size=64):
    img = np.full((size, size, 3), 30, np.uint8)
    img[20:40, 24:44] = 220
    mask = np.zeros((size, size), np.uint8)
    mask[20:40, 24:44] = 1
    return img, mask


@pytest.mark.parametrize('corruption', CORRUPTIONS)
def test_severity_zero_is_the_identity(corruption):
    img, _ = _square_image()
    assert corrupt_image(img, corruption, 0) is img
    t = TRANSFORMS.build(dict(type='ImageCorruption', corruption=corruption, severity=0))
    assert np.array_equal(t(dict(img=img.copy(), img_path='a.jpg'))['img'], img)
    noisy = TRANSFORMS.build(dict(type='ImageCorruption', corruption=corruption, severity=3))
    once = noisy(dict(img=img.copy(), img_path='a.jpg'))['img']
    assert once.shape == img.shape and once.dtype == np.uint8 and not np.array_equal(once, img)
    if corruption != 'impulse_noise':  # scikit-image draws that one from a generator of its own
        assert np.array_equal(noisy(dict(img=img.copy(), img_path='a.jpg'))['img'], once)


def test_unknown_corruption_and_severity_are_refused():
    with pytest.raises(ValueError, match='unknown corruption'):
        TRANSFORMS.build(dict(type='ImageCorruption', corruption='fog_of_war', severity=1))
    with pytest.raises(ValueError, match='severity'):
        TRANSFORMS.build(dict(type='ImageCorruption', corruption='motion_blur', severity=6))
    for name in ('fog', 'glass_blur', 'gaussian_blur'):  # imagecorruptions 1.1.2 fails on them today
        with pytest.raises(ValueError, match='fails with numpy 2'):
            TRANSFORMS.build(dict(type='ImageCorruption', corruption=name, severity=1))


def _content_shift(a, b):
    """(dy, dx) that best aligns the grey images of ``a`` and ``b`` (phase correlation)."""
    a, b = (x.astype(np.float64).mean(axis=2) for x in (a, b))
    corr = np.fft.ifft2(np.fft.fft2(a - a.mean()) * np.conj(np.fft.fft2(b - b.mean()))).real
    dy, dx = np.unravel_index(corr.argmax(), corr.shape)
    h, w = corr.shape
    return (dy + h // 2) % h - h // 2, (dx + w // 2) % w - w // 2


def test_corruption_augmentation_keeps_the_mask_aligned():
    img, mask = _square_image()
    aug = TRANSFORMS.build(dict(type='RandomImageCorruption', max_severity=5, prob=1.0))
    assert 'motion_blur' not in aug.corruptions
    np.random.seed(0)
    for _ in range(15):
        out = aug(dict(img=img.copy(), gt_seg_map=mask.copy(), seg_fields=['gt_seg_map']))
        assert np.array_equal(out['gt_seg_map'], mask)
        assert not np.array_equal(out['img'], img)
        assert _content_shift(out['img'], img) == (0, 0)  # the square stays on its mask
        grey = out['img'].astype(np.float64).mean(axis=2)
        assert grey[mask == 1].mean() > grey[mask == 0].mean() + 50
    # the package's motion blur displaces content: refused as an augmentation
    assert _content_shift(corrupt_image(img, 'motion_blur', 5), img) != (0, 0)
    with pytest.raises(ValueError, match='motion_blur'):
        TRANSFORMS.build(dict(type='RandomImageCorruption', corruptions=['motion_blur']))


# --------------------------------------------------------------------------- robustness tool
def test_corruption_goes_right_after_the_image_loader():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', 'stage2_swin_upernet_demo.py'))
    dl = corrupted_dataloader_cfg(cfg, 'motion_blur', 2, subset=3)
    types = [t['type'] for t in dl['dataset']['pipeline']]
    assert types[:2] == ['LoadWSSSImage', 'ImageCorruption'] and dl['dataset']['indices'] == 3
    assert 'ImageCorruption' not in [t['type'] for t in
                                     corrupted_dataloader_cfg(cfg, None, 0)['dataset']['pipeline']]


def test_robustness_tool_writes_json_table_and_chart(tmp_path):
    data = tmp_path / 'demo'
    make_demo_data(str(data), num_train=2, num_val=3, seed=0, show_progress=False)
    config = osp.join(REPO, 'configs', 'demo', 'stage2_swin_upernet_demo.py')
    options = [f'test_dataloader.dataset.data_root={data}', 'model.backbone.init_cfg=None']
    model = MODELS.build(Config.fromfile(config).model)
    ckpt = str(tmp_path / 'model.pth')
    save_checkpoint(dict(state_dict=model.state_dict()), ckpt)
    out = tmp_path / 'rob'
    res = robustness_main([config, ckpt, '--out-dir', str(out), '--subset', '2', '--corruptions',
                           'gaussian_noise', 'defocus_blur', '--severities', '1', '5',
                           '--no-progress', '--cfg-options', *options])
    assert res['num_images'] == 2 and set(res['miou']) == {'gaussian_noise', 'defocus_blur'}
    assert all(len(v) == 2 and all(0 <= x <= 100 for x in v) for v in res['miou'].values())
    saved = json.load(open(out / 'robustness.json'))
    assert saved['clean'] == res['clean'] and saved['severities'] == [1, 5]
    table = (out / 'robustness.md').read_text()
    assert '| defocus_blur |' in table and '| 0 | 1 | 5 | mean 1, 5 |' in table
    with Image.open(out / 'robustness.png') as img:
        assert img.size[0] > 300
