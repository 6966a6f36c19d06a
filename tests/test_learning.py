"""The full weakly supervised model learns: on generated images whose classes are visible (coloured
shapes), a few dozen iterations from image-level labels only cut the multi-label loss by half and
produce CAMs that overlap the objects far better than chance."""
import copy
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.structures import set_image_labels

REPO = Path(__file__).resolve().parents[1]
CLASSES = ['background', 'red square', 'green disc', 'blue triangle']
COLOURS = np.array([[0.95, 0.15, 0.1], [0.1, 0.85, 0.2], [0.15, 0.25, 0.95]], np.float32)
S, BATCH, ITERS = 64, 8, 60


def make_batch(rng, batch=BATCH, size=S):
    """Images (B, 3, S, S) normalised, masks (B, S, S) (0 = background) and labels (B, K).

    One or two objects per image, each a different class: a square, a disc or a triangle with its own
    colour (plus jitter) on a noisy grey background; a later object may occlude an earlier one, the
    labels follow the visible masks.
    """
    yy, xx = np.mgrid[:size, :size]
    images = 0.5 + 0.15 * rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    masks = np.zeros((batch, size, size), np.int64)
    for b in range(batch):
        for k in rng.choice(3, size=rng.integers(1, 3), replace=False):
            r = int(rng.integers(8, 14))
            cy, cx = rng.integers(r, size - r, size=2)
            if k == 0:
                shape = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
            elif k == 1:
                shape = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            else:
                shape = (yy >= cy - r) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - cy + r) / 2)
            images[b][:, shape] = COLOURS[k][:, None] + 0.05 * rng.standard_normal((3, shape.sum()))
            masks[b][shape] = k + 1
    labels = np.zeros((batch, len(CLASSES)), np.float32)
    labels[:, 0] = 1
    for b in range(batch):
        labels[b, np.unique(masks[b])] = 1
    images = (images - 0.5) / 0.25
    return torch.from_numpy(images), torch.from_numpy(masks), torch.from_numpy(labels)


def data_samples(labels):
    out = []
    for lab in labels:
        s = SegDataSample(metainfo=dict(img_shape=(S, S), pad_shape=(S, S), ori_shape=(S, S)))
        set_image_labels(s, lab)
        out.append(s)
    return out


def build_model(tiny_clip):
    """The base config's full model (Swin -> RSC-A -> text head, learnable prompts), tiny sizes."""
    init_default_scope('mmseg')
    cfg = copy.deepcopy(Config.fromfile(str(REPO / 'configs/_base_/models/clip_wsss_swin.py')).model)
    cfg.backbone.update(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], window_size=4,
                        pretrain_img_size=S, drop_path_rate=0.0, init_cfg=None)
    cfg.neck.update(in_channels=[32, 64, 128, 256], channels=32, num_classes=len(CLASSES))
    cfg.decode_head.update(in_channels=32, channels=32, num_classes=len(CLASSES), embed_dim=32)
    cfg.text_encoder.update(class_names=CLASSES, prompt=dict(type='CoOpPromptLearner', n_ctx=4),
                            **tiny_clip)
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg))
    model.init_weights()
    return model


def cam_iou(cams, masks, labels, thr=0.5):
    """Mean IoU of thresholded foreground CAMs vs. the masks, and of a uniform (chance) CAM."""
    ious, chance = [], []
    for b in range(masks.shape[0]):
        for k in range(1, labels.shape[1]):
            if labels[b, k] > 0:
                pred, gt = cams[b, k] >= thr, masks[b] == k
                ious.append(((pred & gt).sum() / (pred | gt).sum()).item())
                chance.append(gt.float().mean().item())  # a uniform map covers the whole image
    return float(np.mean(ious)), float(np.mean(chance))


def test_weak_training_reduces_loss_and_localises_objects(tiny_clip, torch_threads):
    torch_threads(min(2, torch.get_num_threads()))
    model = build_model(tiny_clip)
    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3,
                              weight_decay=1e-4)
    rng = np.random.default_rng(0)
    prompts = [p.detach().clone() for p in model.text_encoder.prompt_learner.parameters()]
    assert prompts and all(p.requires_grad for p in model.text_encoder.prompt_learner.parameters())
    mlc = []
    for _ in range(ITERS):
        images, _, labels = make_batch(rng)
        losses = model.loss(images, data_samples(labels))
        optim.zero_grad()
        sum(losses.values()).backward()
        optim.step()
        assert all(torch.isfinite(v) for v in losses.values())
        mlc.append(losses['decode.loss_mlc'].item())

    first, last = np.mean(mlc[:5]), np.mean(mlc[-5:])
    assert last <= 0.5 * first, f'multi-label loss {first:.3f} -> {last:.3f} did not halve'
    assert all(not torch.equal(p, q) for p, q in zip(model.text_encoder.prompt_learner.parameters(),
                                                      prompts))  # the prompts learned
    assert model.neck.memory_bank.initialized[1:].all()  # every foreground class has a prototype

    model.eval()
    images, masks, labels = make_batch(np.random.default_rng(123), batch=16)
    with torch.no_grad():
        cams = model.compute_cams(images, labels)
    iou, chance = cam_iou(cams, masks, labels)
    assert iou > chance + 0.2 and iou > 3 * chance, f'CAM IoU {iou:.3f} vs chance {chance:.3f}'
    # the CAMs follow class identity: scoring each object with another present class's map is worse
    swapped = cams.clone()
    swapped[:, 1:] = cams[:, [2, 3, 1]]
    assert cam_iou(swapped, masks, labels)[0] < iou
