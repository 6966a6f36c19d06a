"""RSC-A neck (fusion, memory aggregation, regional contrast, memory bank) and the decode heads."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS as DET_MODELS
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.engine import check_checkpoint_fits
from mmseg_clip_wsss.models.heads import CAMClassifierHead, TextGuidedHead
from mmseg_clip_wsss.models.necks import RSCANeck
from mmseg_clip_wsss.structures import set_image_labels

REPO = Path(__file__).resolve().parents[1]
IN_CHANNELS = [8, 16, 32, 64]
K, C, D = 4, 16, 12


def _feats(b=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, c, size >> i, size >> i, generator=g) for i, c in enumerate(IN_CHANNELS)]


def _neck(**kwargs):
    cfg = dict(type='RSCANeck', in_channels=IN_CHANNELS, channels=C, num_classes=K)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _text(k=K, d=D, seed=0):
    return F.normalize(torch.randn(k, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def _labels():
    return torch.tensor([[1., 1., 0., 1.], [1., 0., 1., 0.]])


# ---------------------------------------------------------------- RSC-A neck
@pytest.mark.parametrize('fusion', ['sum', 'concat'])
def test_neck_fusion_shapes_without_labels(fusion):
    neck = _neck(fusion=fusion, num_outs=3)
    outs = neck(_feats())
    assert isinstance(outs, tuple) and [tuple(o.shape) for o in outs] == [(2, C, 16, 16), (2, C, 8, 8),
                                                                          (2, C, 4, 4)]
    outs, fused = neck(_feats(), return_fused=True)
    assert fused.shape == (2, C, 16, 16)
    sub = _neck(fusion=fusion, in_index=[1, 3])  # finest selected level: index 1
    assert sub(_feats())[0].shape == (2, C, 8, 8)
    with pytest.raises(ValueError, match='in_index'):
        _neck(in_index=[4])


def test_neck_registered_for_detection():
    neck = DET_MODELS.build(dict(type='RSCANeck', in_channels=IN_CHANNELS, channels=C, num_classes=K,
                                 num_outs=2))
    assert isinstance(neck, RSCANeck) and len(neck(_feats())) == 2


def test_neck_aggregation_reads_initialised_prototypes_only():
    torch.manual_seed(0)
    neck = _neck().eval()
    feats = _feats()
    fused = neck.fuse(feats)
    # empty bank: the read-back adds nothing
    assert torch.equal(neck(feats)[0], fused)
    assert abs(torch.sigmoid(neck.readout.gate).item() - 0.1) < 1e-6
    # with prototypes: output changes, and only the initialised rows are read
    neck.memory_bank.prototypes.copy_(F.normalize(torch.randn(K, C), dim=1))
    neck.memory_bank.initialized[1] = True
    out1 = neck(feats)[0]
    assert not torch.allclose(out1, fused)
    neck.memory_bank.prototypes[2] += 5.0  # an uninitialised row: ignored
    assert torch.allclose(neck(feats)[0], out1)
    # a single valid prototype: every pixel reads exactly its value
    value = neck.readout.value(neck.memory_bank.prototypes[1])[None, :, None, None]
    read = neck.readout.out_proj(value.expand(2, C, 16, 16))
    assert torch.allclose(out1, fused + 0.1 * read, atol=1e-5)
    # two valid prototypes: pixel-wise attention over exactly those rows (written out unfolded)
    neck.memory_bank.initialized[3] = True
    bank = neck.memory_bank.prototypes[[1, 3]]  # (2, C)
    query = neck.readout.query(fused).flatten(2)  # (B, C, HW)
    attn = (neck.readout.key(bank) @ query / C ** 0.5).softmax(dim=1)  # (B, 2, HW)
    mixed = (neck.readout.value(bank).t() @ attn).reshape(2, C, 16, 16)  # (B, C, H, W)
    expected = fused + torch.sigmoid(neck.readout.gate) * neck.readout.out_proj(mixed)
    assert torch.allclose(neck(feats)[0], expected, atol=1e-5)
    assert attn.min() < 0.45 and attn.max() > 0.55  # the pixels read the two rows differently
    # without aggregation the same filled bank is never read
    plain = _neck(use_aggregation=False).eval()
    plain.load_state_dict(neck.state_dict(), strict=False)
    assert plain.memory_bank.initialized.any()
    assert torch.equal(plain(feats)[0], plain.fuse(feats))
    assert torch.equal(plain.fuse(feats), fused)  # same fusion weights: only the read-back differs


def test_region_embeddings_are_activation_weighted_means():
    neck = _neck()
    fused = torch.randn(2, C, 8, 8)
    cams = torch.zeros(2, K, 8, 8)
    cams[0, 1, 2, 3] = 1.0  # one pixel
    cams[1, 2, :, :4] = 0.5  # left half, uniform weights
    emb = neck.region_embeddings(fused, cams)
    assert emb.shape == (2, K, C)
    assert torch.allclose(emb[0, 1], fused[0, :, 2, 3])
    assert torch.allclose(emb[1, 2], fused[1, :, :, :4].mean(dim=(1, 2)), atol=1e-6)
    assert emb[0, 3].abs().sum() == 0  # no activation: zero embedding


def test_region_contrast_loss_and_memory_update_training_only():
    torch.manual_seed(0)
    neck = _neck(memory_momentum=0.5).train()
    feats = _feats()
    _, fused = neck(feats, return_fused=True)
    cams = torch.rand(2, K, 4, 4)
    labels = _labels()
    # eval mode: loss but no update
    neck.eval()
    losses = neck.region_contrast_loss(fused, cams, labels)
    assert list(losses) == ['loss_region_nce']
    assert not neck.memory_bank.initialized.any() and neck.memory_bank.prototypes.abs().sum() == 0
    # training: only present foreground classes (1, 2, 3 -- background excluded by default) change
    neck.train()
    neck.region_contrast_loss(fused, cams, torch.tensor([[1., 1., 0., 0.], [1., 0., 1., 0.]]))
    assert neck.memory_bank.initialized.tolist() == [False, True, True, False]
    emb = F.normalize(neck.region_embeddings(fused, cams).detach(), dim=2)
    assert torch.allclose(neck.memory_bank.prototypes[1], F.normalize(emb[0, 1], dim=0), atol=1e-6)
    assert neck.memory_bank.prototypes[[0, 3]].abs().sum() == 0
    # momentum update of row 2 only
    before = neck.memory_bank.prototypes.clone()
    new_fused = torch.randn_like(fused)
    only_2 = torch.tensor([[1., 0., 1., 0.], [1., 0., 0., 0.]])
    losses = neck.region_contrast_loss(new_fused, cams, only_2)
    new = F.normalize(neck.region_embeddings(new_fused, cams)[0, 2], dim=0)
    expected = F.normalize(0.5 * before[2] + 0.5 * new, dim=0)
    assert torch.allclose(neck.memory_bank.prototypes[2], expected, atol=1e-6)
    assert torch.equal(neck.memory_bank.prototypes[[0, 1, 3]], before[[0, 1, 3]])
    assert losses['loss_region_nce'].item() > 0
    # the loss trains the fused features
    fused = neck(feats, return_fused=True)[1]
    loss = neck.region_contrast_loss(fused, cams, labels)['loss_region_nce']
    loss.backward()
    grads = [p.grad for p in neck.lateral_convs.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    with pytest.raises(ValueError, match='num_classes'):
        neck.region_contrast_loss(fused, cams[:, :3], labels[:, :3])


def test_empty_regions_take_no_part_in_the_contrast_or_the_memory():
    """A present class whose CAM is all zero has no region: it neither sets (and marks initialised) its
    prototype nor adds a constant term to the InfoNCE."""
    torch.manual_seed(0)
    neck = _neck().train()
    fused = torch.randn(2, C, 8, 8)
    cams = torch.rand(2, K, 8, 8)
    cams[0, 2] = 0.0  # class 2 is in image 0's labels, but nothing of it activates
    labels = torch.tensor([[1., 0., 1., 0.], [1., 1., 0., 0.]])
    neck.region_contrast_loss(fused, cams, labels)
    assert neck.memory_bank.initialized.tolist() == [False, True, False, False]
    assert neck.memory_bank.prototypes[2].abs().sum() == 0
    # with every prototype set, the empty region changes nothing in the loss
    neck.memory_bank.prototypes.copy_(F.normalize(torch.randn(K, C), dim=1))
    neck.memory_bank.initialized.fill_(True)
    neck.eval()
    with_empty = neck.region_contrast_loss(fused, cams, labels)['loss_region_nce']
    without = neck.region_contrast_loss(fused, cams, torch.tensor([[1., 0., 0., 0.],
                                                                   [1., 1., 0., 0.]]))['loss_region_nce']
    assert torch.allclose(with_empty, without)


def test_memory_bank_loads_checkpoints_of_the_bank_as_neck_buffers():
    """Checkpoints written when the bank was two buffers of the neck load into the ClassMemoryBank."""
    neck = _neck()
    old = {k: v for k, v in neck.state_dict().items() if not k.startswith('memory_bank.')}
    old['memory_bank'] = torch.full((K, C), 0.5)
    old['memory_initialized'] = torch.tensor([False, True, False, True])
    check_checkpoint_fits(neck, old)  # the shape check maps the old keys as the load does
    neck.load_state_dict(old, strict=True)
    assert torch.equal(neck.memory_bank.prototypes, old['memory_bank'])
    assert neck.memory_bank.initialized.tolist() == [False, True, False, True]


def test_memory_bank_is_in_state_dict():
    neck = _neck()
    assert {'memory_bank.prototypes', 'memory_bank.initialized'} <= set(neck.state_dict())
    neck.memory_bank.prototypes.fill_(0.25)
    neck.memory_bank.initialized[2] = True
    other = _neck()
    other.load_state_dict(neck.state_dict())
    assert torch.equal(other.memory_bank.prototypes, neck.memory_bank.prototypes)
    assert torch.equal(other.memory_bank.initialized, neck.memory_bank.initialized)


# ------------------------------------------------------------------- heads
def _head(**kwargs):
    cfg = dict(type='TextGuidedHead', in_channels=C, channels=C, num_classes=K, embed_dim=D,
               dropout_ratio=0.0)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _samples(labels, size=16, with_masks=False):
    out = []
    for lab in labels:
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        pad_shape=(size, size)))
        set_image_labels(s, lab)
        if with_masks:
            s.gt_sem_seg = PixelData(data=torch.randint(0, K, (1, size, size)))
        out.append(s)
    return out


def test_text_guided_head_scores_are_scaled_cosines():
    torch.manual_seed(0)
    head = _head()
    x = (torch.randn(2, C, 8, 8),)
    text = _text()
    scores, embeds = head(x, text, return_embeds=True)
    assert scores.shape == (2, K, 8, 8) and embeds.shape == (2, D, 8, 8)
    scale = head.scale.item()
    assert abs(scale - 1 / 0.07) < 1e-3
    cos = torch.einsum('bdhw,kd->bkhw', F.normalize(embeds, dim=1), text)
    assert torch.allclose(scores, scale * cos, atol=1e-5)
    assert scores.abs().max() <= scale + 1e-4
    # the scale is clamped to max_logit_scale
    with torch.no_grad():
        head.logit_scale.fill_(10.0)
    assert abs(head.scale.item() - 100.0) < 1e-3
    assert 'logit_scale' not in dict(_head(learnable_logit_scale=False).named_parameters())


def test_text_guided_head_weak_and_full_losses():
    torch.manual_seed(0)
    x = (torch.randn(2, C, 8, 8),)
    text = _text().requires_grad_()
    head = _head(loss_mlc=dict(type='MultiLabelScoreLoss', pooling='topk', topk_ratio=0.2))
    losses = head.loss(x, _samples(_labels()), dict(), text_embeds=text)
    assert set(losses) == {'loss_mlc', 'loss_itc'}
    sum(losses.values()).backward()
    for name, p in list(head.named_parameters()) + [('text', text)]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    no_itc = _head(loss_itc=None)
    assert set(no_itc.loss(x, _samples(_labels()), dict(), text_embeds=text)) == {'loss_mlc'}
    full = _head(supervision='full')
    losses = full.loss(x, _samples(_labels(), with_masks=True), dict(), text_embeds=text)
    assert set(losses) == {'loss_ce', 'acc_seg'} and torch.isfinite(losses['loss_ce'])
    pred = full.predict(x, [dict(img_shape=(16, 16), pad_shape=(16, 16))] * 2, dict(), text_embeds=text)
    assert pred.shape == (2, K, 16, 16)


def test_text_guided_head_checks_text_and_labels():
    head = _head()
    x = (torch.randn(2, C, 8, 8),)
    with pytest.raises(ValueError, match='text_encoder'):
        head(x)
    with pytest.raises(ValueError, match=r'\(num_classes, embed_dim\) = \(4, 12\)'):
        head(x, _text(k=5))
    with pytest.raises(ValueError, match='num_classes=4'):
        scores, emb = head(x, _text(), return_embeds=True)
        head.loss_weak(scores, emb, _text(), torch.ones(2, 3))
    with pytest.raises(ValueError, match='supervision'):
        _head(supervision='strong')


def test_cam_classifier_head():
    torch.manual_seed(0)
    head = MODELS.build(dict(type='CAMClassifierHead', in_channels=C, channels=C, num_classes=K))
    assert isinstance(head, CAMClassifierHead) and head.loss_mlc.pooling == 'gap'
    x = (torch.randn(2, C, 8, 8),)
    scores = head(x)
    assert scores.shape == (2, K, 8, 8)
    # the CAM is the classifier applied per pixel: its average is the image-level logit
    image_logits = head.classifier(x[0].mean(dim=(2, 3), keepdim=True))[..., 0, 0]  # (B, K)
    assert torch.allclose(scores.mean(dim=(2, 3)), image_logits, atol=1e-5)
    losses = head.loss(x, _samples(_labels()), dict())
    assert set(losses) == {'loss_mlc'}
    losses['loss_mlc'].backward()
    assert torch.isfinite(head.classifier.weight.grad).all()
    deeper = MODELS.build(dict(type='CAMClassifierHead', in_channels=C, channels=6, num_classes=K,
                               num_convs=2, norm_cfg=dict(type='BN')))
    assert deeper(x).shape == (2, K, 8, 8)


def test_heads_and_neck_build_from_base_config():
    cfg = Config.fromfile(str(REPO / 'configs/_base_/models/clip_wsss_swin.py'))
    neck_cfg = cfg.model.neck.copy()
    neck_cfg.update(in_channels=IN_CHANNELS, channels=C, num_classes=K, norm_cfg=dict(type='BN'))
    neck = MODELS.build(neck_cfg)
    head_cfg = cfg.model.decode_head.copy()
    head_cfg.update(in_channels=C, channels=C, num_classes=K, embed_dim=D, norm_cfg=dict(type='BN'))
    head = MODELS.build(head_cfg)
    assert isinstance(neck, RSCANeck) and isinstance(head, TextGuidedHead)
    assert neck.loss_region.temperature == 0.1 and head.loss_mlc.pooling == 'lse'
    scores = head(neck(_feats()), _text())
    assert scores.shape == (2, K, 16, 16)
