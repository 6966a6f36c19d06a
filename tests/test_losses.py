"""Losses of the plugin: multi-label from score maps, region-memory InfoNCE, image-text contrastive."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS as DET_MODELS
from mmseg.registry import MODELS

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.models.losses import (ImageTextContrastiveLoss, MultiLabelScoreLoss,
                                           RegionMemoryInfoNCELoss)


# ----------------------------------------------------------------- registry
def test_losses_registered_with_loss_names():
    mlc = MODELS.build(dict(type='MultiLabelScoreLoss'))
    nce = MODELS.build(dict(type='RegionMemoryInfoNCELoss'))
    itc = MODELS.build(dict(type='ImageTextContrastiveLoss'))
    assert (mlc.loss_name, nce.loss_name, itc.loss_name) == ('loss_mlc', 'loss_region_nce', 'loss_itc')
    # detection reuses the contrastive losses
    assert isinstance(DET_MODELS.build(dict(type='RegionMemoryInfoNCELoss')), RegionMemoryInfoNCELoss)
    assert isinstance(DET_MODELS.build(dict(type='ImageTextContrastiveLoss')), ImageTextContrastiveLoss)
    for cls in (MultiLabelScoreLoss, RegionMemoryInfoNCELoss, ImageTextContrastiveLoss):
        with pytest.raises(ValueError, match='loss_'):
            cls(loss_name='mlc')


# ------------------------------------------------------- multi-label score
def test_multilabel_pooling_values():
    torch.manual_seed(0)
    scores = torch.randn(2, 3, 5, 4)
    flat = scores.flatten(2)
    assert torch.allclose(MultiLabelScoreLoss(pooling='gap').pool(scores), flat.mean(2))
    top = MultiLabelScoreLoss(pooling='topk', topk_ratio=0.25).pool(scores)  # 5 of 20 pixels
    assert torch.allclose(top, flat.sort(dim=2, descending=True).values[..., :5].mean(2))
    one_pixel = MultiLabelScoreLoss(pooling='topk', topk_ratio=1e-3)
    assert torch.allclose(one_pixel.pool(scores), flat.amax(2))
    lse = MultiLabelScoreLoss(pooling='lse', lse_r=1.0).pool(scores)
    assert torch.allclose(lse, (flat.exp().mean(2)).log())
    assert (lse >= flat.mean(2) - 1e-6).all() and (lse <= flat.amax(2) + 1e-6).all()
    # r -> 0: average pooling, r -> inf: max pooling
    smooth = MultiLabelScoreLoss(pooling='lse', lse_r=1e-2)
    sharp = MultiLabelScoreLoss(pooling='lse', lse_r=1e3)
    assert torch.allclose(smooth.pool(scores), flat.mean(2), atol=2e-2)
    assert torch.allclose(sharp.pool(scores), flat.amax(2), atol=1e-2)


def test_multilabel_loss_values_and_background():
    torch.manual_seed(0)
    scores = torch.randn(4, 5, 6, 6, requires_grad=True)
    labels = torch.tensor([[1, 1, 0, 0, 1], [1, 0, 1, 0, 0], [1, 0, 0, 1, 1], [1, 1, 1, 0, 0]]).float()
    loss_fn = MultiLabelScoreLoss(pooling='gap', loss_weight=2.0)
    loss = loss_fn(scores, labels)
    pooled = scores.mean(dim=(2, 3))[:, 1:]
    expected = 2.0 * F.binary_cross_entropy_with_logits(pooled, labels[:, 1:])
    assert torch.allclose(loss, expected)
    soft = MultiLabelScoreLoss(pooling='gap', loss_type='soft_margin', loss_weight=2.0)(scores, labels)
    assert torch.allclose(soft, expected, atol=1e-6)
    loss.backward()
    assert torch.isfinite(scores.grad).all()
    assert scores.grad[:, 0].abs().sum() == 0  # background ignored
    # background channel values do not matter
    shifted = scores.detach().clone()
    shifted[:, 0] += 100
    assert torch.allclose(loss_fn(shifted, labels), loss.detach())
    # ...unless it is included
    with_bg = MultiLabelScoreLoss(pooling='gap', ignore_background=False)
    assert not torch.allclose(with_bg(shifted, labels), with_bg(scores.detach(), labels))


def test_multilabel_loss_low_for_correct_scores_and_high_for_wrong():
    labels = torch.tensor([[1., 1., 0.], [1., 0., 1.]])
    correct = (labels * 2 - 1)[:, :, None, None].expand(2, 3, 4, 4) * 10
    for pooling in ('gap', 'topk', 'lse'):
        loss_fn = MultiLabelScoreLoss(pooling=pooling)
        assert loss_fn(correct, labels) < 1e-3
        assert loss_fn(-correct, labels) > 5


def test_multilabel_loss_bad_arguments():
    with pytest.raises(ValueError, match='pooling'):
        MultiLabelScoreLoss(pooling='max')
    with pytest.raises(ValueError, match='loss_type'):
        MultiLabelScoreLoss(loss_type='focal')
    with pytest.raises(ValueError, match='topk_ratio'):
        MultiLabelScoreLoss(pooling='topk', topk_ratio=0)
    with pytest.raises(ValueError, match='lse_r'):
        MultiLabelScoreLoss(pooling='lse', lse_r=0)
    with pytest.raises(ValueError, match=r'\(B, K\)'):
        MultiLabelScoreLoss()(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4))


# ------------------------------------------------------ region-memory NCE
def test_region_nce_prefers_matching_prototypes():
    torch.manual_seed(0)
    memory = F.normalize(torch.randn(4, 16), dim=1)
    labels = torch.tensor([1, 2, 3])
    loss_fn = RegionMemoryInfoNCELoss(temperature=0.1)
    matching = loss_fn(memory[labels] + 0.01 * torch.randn(3, 16), labels, memory)
    wrong = loss_fn(memory[torch.tensor([2, 3, 1])], labels, memory)
    assert matching < 0.5 < wrong
    # exact value: cross-entropy of cosine / temperature
    regions = torch.randn(3, 16)
    logits = F.normalize(regions, dim=1) @ memory.t() / 0.1
    assert torch.allclose(loss_fn(regions, labels, memory), F.cross_entropy(logits, labels))
    # a lower temperature sharpens the matching case further
    assert RegionMemoryInfoNCELoss(temperature=0.05)(memory[labels], labels, memory) < \
        RegionMemoryInfoNCELoss(temperature=0.5)(memory[labels], labels, memory)


def test_region_nce_uninitialised_prototypes():
    torch.manual_seed(0)
    memory = F.normalize(torch.randn(4, 8), dim=1)
    valid = torch.tensor([False, True, True, False])
    regions = torch.randn(3, 8, requires_grad=True)
    labels = torch.tensor([1, 2, 3])  # class 3 has no prototype yet: left out
    loss_fn = RegionMemoryInfoNCELoss(temperature=0.2)
    loss = loss_fn(regions, labels, memory, valid)
    logits = F.normalize(regions[:2], dim=1) @ memory[1:3].t() / 0.2  # negatives: initialised rows only
    assert torch.allclose(loss, F.cross_entropy(logits, torch.tensor([0, 1])))
    loss.backward()
    assert torch.isfinite(regions.grad).all() and regions.grad[2].abs().sum() == 0
    # no initialised positive at all: a zero that still backpropagates
    empty = loss_fn(regions, labels, memory, torch.zeros(4, dtype=torch.bool))
    assert empty.item() == 0 and empty.requires_grad
    with pytest.raises(ValueError, match='temperature'):
        RegionMemoryInfoNCELoss(temperature=0)


# --------------------------------------------------- image-text contrastive
def test_image_text_contrastive_multi_positive():
    torch.manual_seed(0)
    text = F.normalize(torch.randn(4, 16), dim=1)  # class 0 = background
    labels = torch.tensor([[1., 1., 1., 0.], [1., 0., 0., 1.]])
    aligned = torch.stack([text[1] + text[2], text[3]])  # images embed their own classes
    misaligned = torch.stack([text[3], text[1] + text[2]])
    loss_fn = ImageTextContrastiveLoss(temperature=0.1, symmetric=False)
    assert loss_fn(aligned, text, labels) < loss_fn(misaligned, text, labels)
    # exact image -> text value, background left out
    logits = F.normalize(aligned, dim=1) @ text[1:].t() / 0.1
    logp = logits.log_softmax(dim=1)
    expected = -((logp[0, 0] + logp[0, 1]) / 2 + logp[1, 2]) / 2
    assert torch.allclose(loss_fn(aligned, text, labels), expected)
    # symmetric adds the text -> image direction (over the batch's images)
    sym = ImageTextContrastiveLoss(temperature=0.1, symmetric=True)(aligned, text, labels)
    t2i = logits.t().log_softmax(dim=1)  # classes 1..3 over the 2 images, one positive each
    assert torch.allclose(sym, 0.5 * (expected - (t2i[0, 0] + t2i[1, 0] + t2i[2, 1]) / 3))


def test_image_text_contrastive_logit_scale_and_grads():
    torch.manual_seed(0)
    text = F.normalize(torch.randn(3, 8), dim=1)
    images = torch.randn(2, 8, requires_grad=True)
    labels = torch.tensor([[1., 1., 0.], [1., 0., 1.]])
    loss_fn = ImageTextContrastiveLoss(temperature=None)
    scale = torch.tensor(5.0, requires_grad=True)
    loss = loss_fn(images, text, labels, logit_scale=scale)
    assert torch.allclose(loss, ImageTextContrastiveLoss(temperature=0.2)(images, text, labels))
    loss.backward()
    assert torch.isfinite(images.grad).all() and scale.grad is not None
    with pytest.raises(ValueError, match='logit_scale'):
        loss_fn(images, text, labels)
    # only background present: nothing to contrast, a graph-connected zero
    none = ImageTextContrastiveLoss()(images, text, torch.tensor([[1., 0., 0.], [1., 0., 0.]]))
    assert none.item() == 0 and none.requires_grad
    assert math.isclose(ImageTextContrastiveLoss(loss_weight=0.0)(images, text, labels).item(), 0.0)


def test_image_text_contrastive_scale_rule():
    """One rule, in one place: a configured temperature wins over the caller's (e.g. the head's
    learnable) logit scale; temperature=None takes the caller's scale."""
    torch.manual_seed(0)
    images, text = torch.randn(3, 8), torch.randn(4, 8)
    labels = torch.tensor([[1., 1., 0., 0.], [1., 0., 1., 0.], [1., 0., 0., 1.]])
    fixed = ImageTextContrastiveLoss(temperature=0.5)
    assert fixed.scale(torch.tensor(30.0)) == 2.0 and fixed.scale() == 2.0
    assert torch.equal(fixed(images, text, labels, logit_scale=30.0), fixed(images, text, labels))
    learned = ImageTextContrastiveLoss(temperature=None)
    assert learned.scale(30.0) == 30.0
    assert torch.allclose(learned(images, text, labels, logit_scale=2.0), fixed(images, text, labels))
