"""CAM -> pseudo mask: multi-scale + flip inference, refinement, pseudo-mask files, evaluation, tool."""
import json
import os
import os.path as osp
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.structures import SegDataSample
from PIL import Image
from torch import nn

from mmseg_clip_wsss.cam.evaluate import mean_class_iou
from mmseg_clip_wsss.cam import (CRF_INSTALL_HINT, CAMProtocol, PixelAdaptiveRefiner,
                                 build_refiner, cams_to_pseudo_mask, compute_miou,
                                 generate_pseudo_masks, is_valid_png, multi_scale_flip_cams)
from mmseg_clip_wsss.datasets import read_confidence_png, voc_palette, write_palette_png
from mmseg_clip_wsss.cli.make_pseudo_masks import main as make_pseudo_masks_main
from mmseg_clip_wsss.datasets.errors import DatasetError
from mmseg_clip_wsss.registry import MODELS
from mmseg_clip_wsss.structures import set_image_labels

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from metric_reference import reference_miou  # noqa: E402

CLASSES = ('background', 'red', 'green', 'blue')
K = len(CLASSES)
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


# --------------------------------------------------------------------------- helpers
@MODELS.register_module(name='CAMTestStub', force=True)
class CAMTestStub(BaseModel):
    """A tiny fixed-conv 'segmentor' exposing ``compute_cams`` (stride-2 scores, bilinear up)."""

    def __init__(self, num_classes: int = K, seed: int = 0):
        super().__init__(data_preprocessor=SegDataPreProcessor(mean=MEAN, std=STD, bgr_to_rgb=True))
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, num_classes, 5, padding=2)  # asymmetric kernels: not flip-invariant
        self.background_index = 0

    def compute_cams(self, inputs, image_labels):
        scores = F.avg_pool2d(self.conv(inputs), 2)  # (B, K, H/2, W/2)
        scores = F.interpolate(scores, size=inputs.shape[-2:], mode='bilinear', align_corners=False)
        cams = scores.relu()
        cams = cams / cams.amax(dim=(2, 3), keepdim=True).clamp(min=1e-5)
        keep = (image_labels > 0).float()
        keep[:, 0] = 0  # no background score of its own
        return cams * keep[:, :, None, None]

    def forward(self, inputs, data_samples=None, mode='tensor'):
        raise NotImplementedError


@MODELS.register_module(name='CAMTestColourOracle', force=True)
class CAMTestColourOracle(CAMTestStub):
    """CAMs that know the synthetic data: class c (1..3) = how much RGB channel c-1 dominates."""

    def __init__(self, size_divisor=None):
        super().__init__()
        self.data_preprocessor = SegDataPreProcessor(
            mean=MEAN, std=STD, bgr_to_rgb=True, size_divisor=size_divisor,
            test_cfg=dict(size_divisor=size_divisor) if size_divisor else None)

    def compute_cams(self, inputs, image_labels):
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)
        rgb = inputs * std + mean  # (B, 3, H, W), RGB in [0, 255] (padding = the mean colour)
        scores = [torch.zeros_like(rgb[:, :1])]
        for c in range(3):
            others = torch.cat([rgb[:, i:i + 1] for i in range(3) if i != c], dim=1)
            others = others.amax(dim=1, keepdim=True)
            scores.append((rgb[:, c:c + 1] - others).relu())
        cams = torch.cat(scores, dim=1)
        cams = cams / cams.amax(dim=(2, 3), keepdim=True).clamp(min=1e-5)
        keep = (image_labels > 0).float()
        keep[:, 0] = 0
        return cams * keep[:, :, None, None]


class CAMTestPaddingBright(CAMTestStub):
    """CAMs strongest where the normalised input is 0 -- the data preprocessor's padding value."""

    def compute_cams(self, inputs, image_labels):
        score = torch.exp(-inputs.abs().mean(dim=1, keepdim=True))  # (B, 1, H, W), 1 on padding
        cams = score.expand(-1, image_labels.shape[1], -1, -1)
        cams = cams / cams.amax(dim=(2, 3), keepdim=True)
        keep = (image_labels > 0).float()
        keep[:, 0] = 0
        return cams * keep[:, :, None, None]


class CAMTestRamp(CAMTestStub):
    """Input-independent CAMs: the present foreground classes get a horizontal ramp column / (W - 1),
    rising to the right for the first of them, falling for the second, rising for the third, ..."""

    def compute_cams(self, inputs, image_labels):
        b, _, h, w = inputs.shape
        ramp = (torch.arange(w, dtype=torch.float32) / (w - 1)).expand(h, w)  # (H, W)
        cams = torch.zeros(b, image_labels.shape[1], h, w)
        for i in range(b):
            present = [k for k in torch.nonzero(image_labels[i] > 0).flatten().tolist()
                       if k != self.background_index]
            for rank, k in enumerate(present):
                cams[i, k] = ramp if rank % 2 == 0 else ramp.flip(-1)
        return cams


def _image_batch(image_rgb, labels, name='im'):
    """One mmseg-style batch of an (H, W, 3) uint8 RGB image at its own size (no resize)."""
    h, w = image_rgb.shape[:2]
    sample = SegDataSample(metainfo=dict(img_path=f'{name}.png', ori_shape=(h, w), img_shape=(h, w)))
    set_image_labels(sample, labels)
    bgr = torch.from_numpy(np.ascontiguousarray(image_rgb[..., ::-1])).permute(2, 0, 1)
    return dict(inputs=[bgr.contiguous()], data_samples=[sample])


def _masks_of(model, batch, out_dir, **protocol):
    """generate_pseudo_masks on one batch -> the (H, W) mask it wrote."""
    protocol = dict(dict(scales=(1.0, ), flip=False, refine='none'), **protocol)
    generate_pseudo_masks(model, [batch], str(out_dir), skip_existing=False, show_progress=False,
                          background_index=model.background_index, **protocol)
    name = batch['data_samples'][0].metainfo['img_path'][:-4]
    return np.array(Image.open(osp.join(str(out_dir), f'{name}.png')))


def _blur(x, sigma):
    r = int(3 * sigma)
    t = torch.arange(-r, r + 1).float()
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode='replicate'), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
                 groups=c)  # separable Gaussian: rows ...
    return F.conv2d(F.pad(x, (0, 0, r, r), mode='replicate'), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
                    groups=c)  # ... then columns


def _synthetic_scene(h=48, w=48, seed=0):
    """A known 3-class mask (rectangle + disc), an image with those colours plus noise, and the
    CAMs a weak classifier would give: the one-hot mask blurred and under-activated on one side."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(h, w, dtype=torch.long)
    mask[6:26, 8:30] = 1
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    mask[((yy - 33) ** 2 + (xx - 32) ** 2) < 11 ** 2] = 2
    colours = torch.tensor([[0.2, 0.3, 0.7], [0.9, 0.2, 0.1], [0.1, 0.8, 0.2]])
    image = colours[mask].permute(2, 0, 1)[None] + 0.1 * torch.randn(1, 3, h, w, generator=g)
    cams = _blur(F.one_hot(mask, 3).permute(2, 0, 1)[None].float(), 4.0)
    cams = cams * (0.35 + 0.65 * xx.float() / w)[None, None]  # weak on the left (partial activation)
    cams = cams / cams.amax(dim=(2, 3), keepdim=True)
    cams[:, 0] = 0
    return image, cams, mask


def _miou(cams, labels, mask, classes=('bg', 'a', 'b')):
    pred = cams_to_pseudo_mask(cams, labels, bg_threshold=0.5)[0]
    return compute_miou([pred], [mask], classes, log_table=False)['mIoU']


def _write_dataset(root, sizes=((40, 48), (40, 48), (36, 44))):
    """Images (BGR-agnostic colour blocks), VOC-palette GT masks and image labels."""
    os.makedirs(osp.join(root, 'img'))
    os.makedirs(osp.join(root, 'ann'))
    rng = np.random.default_rng(0)
    labels = {}
    for i, (h, w) in enumerate(sizes):
        gt = np.zeros((h, w), np.uint8)
        gt[4:20, 4:24] = 1 + i % 3
        gt[22:34, 26:40] = 1 + (i + 1) % 3
        img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
        img[gt == 1] = (220, 30, 30)
        img[gt == 2] = (30, 220, 30)
        img[gt == 3] = (30, 30, 220)
        Image.fromarray(img).save(osp.join(root, 'img', f'im{i}.png'))
        write_palette_png(osp.join(root, 'ann', f'im{i}.png'), gt)
        lab = np.zeros(K, np.float32)
        lab[0] = 1
        lab[np.unique(gt)] = 1
        labels[f'im{i}'] = lab.tolist()
    return labels


def _batches(root, labels, names, size=(32, 32)):
    """mmseg-style batches (one image each) resized to ``size`` like a test pipeline would."""
    for name in names:
        img = np.array(Image.open(osp.join(root, 'img', f'{name}.png')))[..., ::-1]  # BGR
        ori = img.shape[:2]
        resized = np.array(Image.fromarray(np.ascontiguousarray(img)).resize(size[::-1], Image.BILINEAR))
        sample = SegDataSample(metainfo=dict(img_path=osp.join(root, 'img', f'{name}.png'),
                                             seg_map_path=osp.join(root, 'ann', f'{name}.png'),
                                             ori_shape=ori, img_shape=size))
        set_image_labels(sample, labels[name])
        inputs = torch.from_numpy(resized).permute(2, 0, 1).contiguous()  # (3, h, w) uint8 BGR
        yield dict(inputs=[inputs], data_samples=[sample])


# --------------------------------------------------------------------------- pseudo masks
def test_pseudo_mask_never_uses_absent_class():
    torch.manual_seed(0)
    cams = torch.rand(2, K, 16, 16) * 0.5
    cams[:, 2] = 10.0  # class 2 has by far the largest CAM everywhere ...
    labels = torch.tensor([[1, 1, 0, 1], [1, 0, 0, 0]], dtype=torch.float32)  # ... but is absent
    for kwargs in (dict(), dict(ignore_band=(0.2, 0.4)), dict(ignore_margin=0.05),
                   dict(bg_mode='prompt'), dict(bg_mode='prompt', ignore_margin=0.1)):
        masks = cams_to_pseudo_mask(cams, labels, bg_threshold=0.3, **kwargs)
        assert masks.shape == (2, 16, 16) and masks.dtype == torch.uint8
        values = set(masks.unique().tolist())
        assert 2 not in values, kwargs
        assert set(masks[1].unique().tolist()) <= {0, 255}, kwargs  # only background is present
        assert values <= {0, 1, 3, 255}


def test_pseudo_mask_background_threshold_and_ignore_band():
    cams = torch.zeros(1, K, 1, 4)
    cams[0, 1, 0] = torch.tensor([0.1, 0.3, 0.5, 0.9])
    labels = torch.tensor([[1, 1, 0, 0]], dtype=torch.float32)
    assert cams_to_pseudo_mask(cams, labels, bg_threshold=0.4)[0, 0].tolist() == [0, 0, 1, 1]
    banded = cams_to_pseudo_mask(cams, labels, ignore_band=(0.2, 0.6))[0, 0].tolist()
    assert banded == [0, 255, 255, 1]
    no_bg = cams_to_pseudo_mask(cams[:, 1:], labels[:, 1:], bg_threshold=0.4, background_index=None)
    assert no_bg[0, 0].tolist() == [255, 255, 0, 0]  # classes without background: low -> ignore
    with pytest.raises(ValueError, match='ignore_margin'):
        cams_to_pseudo_mask(cams, labels, bg_mode='prompt', ignore_band=(0.2, 0.6))
    with pytest.raises(ValueError, match='bg_mode'):
        cams_to_pseudo_mask(cams, labels, bg_mode='otsu')


def test_ignore_band_is_the_uncertain_zone_around_the_threshold(tmp_path):
    """The band and the threshold combine one way: the band must contain the threshold; outside the
    band the threshold rule labels, inside it pixels are ignored. A band that contradicts the
    threshold is refused (it used to override the threshold silently)."""
    cams = torch.zeros(1, K, 1, 4)
    cams[0, 1, 0] = torch.tensor([0.1, 0.3, 0.5, 0.9])
    labels = torch.tensor([[1, 1, 0, 0]], dtype=torch.float32)
    plain = cams_to_pseudo_mask(cams, labels, bg_threshold=0.4)[0, 0].tolist()
    banded = cams_to_pseudo_mask(cams, labels, bg_threshold=0.4, ignore_band=(0.2, 0.6))[0, 0]
    assert plain == [0, 0, 1, 1] and banded.tolist() == [0, 255, 255, 1]
    assert all(b in (p, 255) for b, p in zip(banded.tolist(), plain))  # the band only ignores
    with pytest.raises(ValueError, match=r'must contain bg_threshold=0\.2'):
        cams_to_pseudo_mask(cams, labels, bg_threshold=0.2, ignore_band=(0.25, 0.45))
    with pytest.raises(ValueError, match='must contain bg_threshold'):
        CAMProtocol(bg_threshold=0.5, ignore_band=(0.25, 0.45))
    protocol = CAMProtocol.from_cfg(dict(bg_threshold=0.35, ignore_band=[0.25, 0.45]), scales=[1.0])
    assert protocol.record()['ignore_band'] == (0.25, 0.45)
    assert protocol.record()['bg_threshold'] == 0.35 and 'batch_size' not in protocol.record()
    with pytest.raises(KeyError) as exc:
        CAMProtocol.from_cfg(dict(bg_thresh=0.3))
    assert isinstance(exc.value, ValueError)  # printed by the tools as one line, no traceback
    assert str(exc.value) == ('CAM protocol: cam_cfg.bg_thresh is no protocol option (did you mean '
                              'cam_cfg.bg_threshold?); valid: amp, batch_size, bg_mode, bg_power, '
                              'bg_threshold, flip, ignore_band, ignore_margin, normalise, refine, scales, '
                              'size_divisor. Correct the key in the config or --cfg-options.')


def test_ignore_band_end_to_end_bounds_and_no_background(tmp_path):
    """Through generate_pseudo_masks: CAM values 0, 1/8, ..., 1 along each row (9 columns); the band
    [0.25, 0.5) around the threshold 0.375 ignores its lower bound and keeps its upper one."""
    model = CAMTestRamp().eval()
    batch = _image_batch(np.zeros((3, 9, 3), np.uint8), [1, 1, 0, 0])
    plain = _masks_of(model, batch, tmp_path / 'plain', bg_threshold=0.375)
    banded = _masks_of(model, batch, tmp_path / 'band', bg_threshold=0.375, ignore_band=(0.25, 0.5))
    assert banded.tolist() == [[0, 0, 255, 255, 1, 1, 1, 1, 1]] * 3
    assert plain[0, :3].tolist() == [0, 0, 0] and plain[0, 4:].tolist() == [1] * 5
    # a band as wide as the threshold (low == threshold == high) ignores nothing
    assert np.array_equal(_masks_of(model, batch, tmp_path / 'thin', bg_threshold=0.5,
                                    ignore_band=(0.5, 0.5)),
                          _masks_of(model, batch, tmp_path / 'thr', bg_threshold=0.5))
    # low > high can hold no threshold: refused before anything is written
    with pytest.raises(ValueError, match=r'ignore_band .*= \(0\.5, 0\.25\): LOW is above HIGH; give '
                       r'the band as LOW HIGH \(0\.25, 0\.5\)'):
        _masks_of(model, batch, tmp_path / 'reversed', bg_threshold=0.375, ignore_band=(0.5, 0.25))
    assert not (tmp_path / 'reversed').exists()

    # classes without background: below the threshold is ignored, the band ignores up to its top
    model.background_index = None
    batch = _image_batch(np.zeros((3, 9, 3), np.uint8), [0, 1, 0, 0])
    no_bg = _masks_of(model, batch, tmp_path / 'no_bg', bg_threshold=0.375)
    assert no_bg[0].tolist() == [255, 255, 255, 1, 1, 1, 1, 1, 1]
    no_bg_band = _masks_of(model, batch, tmp_path / 'no_bg_band', bg_threshold=0.375,
                           ignore_band=(0.25, 0.5))
    assert no_bg_band[0].tolist() == [255, 255, 255, 255, 1, 1, 1, 1, 1]


def test_write_palette_png_values_and_palette(tmp_path):
    torch.manual_seed(0)
    cams = torch.rand(1, K, 20, 24)
    labels = torch.ones(1, K)
    mask = cams_to_pseudo_mask(cams, labels, ignore_margin=0.1)[0]
    assert (mask == 255).any()
    path = write_palette_png(str(tmp_path / 'a.png'), mask)
    with Image.open(path) as img:
        assert img.mode == 'P' and img.size == (24, 20)
        values = np.array(img)
        palette = np.array(img.getpalette()[:768]).reshape(-1, 3)
    assert set(np.unique(values).tolist()) <= set(range(K)) | {255}
    np.testing.assert_array_equal(values, mask.numpy())
    np.testing.assert_array_equal(palette, voc_palette(256))
    assert palette[255].tolist() == [224, 224, 192] and palette[1].tolist() == [128, 0, 0]
    assert os.listdir(tmp_path) == ['a.png']  # no temporary files left


def test_atomic_write_and_validity(tmp_path, monkeypatch):
    path = str(tmp_path / 'm.png')
    old = np.ones((8, 10), np.uint8)
    write_palette_png(path, old)
    assert is_valid_png(path, (8, 10))
    assert not is_valid_png(path, (10, 8))
    assert not is_valid_png(str(tmp_path / 'missing.png'))

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b'\x89PNG\r\n\x1a\n partial')
        raise KeyboardInterrupt('interrupted while writing')

    monkeypatch.setattr(Image.Image, 'save', broken_save)
    with pytest.raises(KeyboardInterrupt):
        write_palette_png(path, np.zeros((8, 10), np.uint8))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ['m.png']  # temp file cleaned up, old file intact
    with Image.open(path) as img:
        np.testing.assert_array_equal(np.array(img), old)

    truncated = str(tmp_path / 't.png')
    with open(path, 'rb') as f:
        data = f.read()
    with open(truncated, 'wb') as f:
        f.write(data[:len(data) // 2])
    assert not is_valid_png(truncated, (8, 10))


# --------------------------------------------------------------------------- refinement
def test_refinement_keeps_shapes_and_improves_miou():
    image, cams, mask = _synthetic_scene()
    labels = torch.ones(1, 3)
    before = _miou(cams, labels, mask)
    refiner = PixelAdaptiveRefiner(num_iters=10, dilations=(1, 2, 4, 8), colour_sigma=0.3)
    refined = refiner(cams, image)
    assert refined.shape == cams.shape
    assert torch.equal(refined[:, 0], torch.zeros_like(refined[:, 0]))  # zero maps stay zero
    assert refined.min() >= 0 and refined.max() <= 1 + 1e-5
    after = _miou(refined, labels, mask)
    assert before < 90
    assert after >= before + 8, (before, after)

    # batched, different channel count, image at another resolution
    cams4 = torch.rand(2, 5, 24, 20)
    out = PixelAdaptiveRefiner(num_iters=2, dilations=(1, 3))(cams4, torch.rand(2, 3, 48, 40))
    assert out.shape == cams4.shape
    assert build_refiner('none') is None
    assert isinstance(build_refiner(dict(type='par', num_iters=3)), PixelAdaptiveRefiner)


def test_refinement_skips_all_zero_maps_exactly():
    # classes absent from every image of the batch are skipped; the others come out as if the absent
    # ones had never been there, and the skipped ones stay zero
    refiner = PixelAdaptiveRefiner(num_iters=4, dilations=(1, 2, 4))
    image, present = torch.rand(2, 3, 20, 24), torch.rand(2, 2, 20, 24)
    cams = torch.zeros(2, 5, 20, 24)
    cams[:, [1, 3]] = present
    cams[1, 1] = 0  # zero in one image only: still propagated (stays zero there)
    present[1, 0] = 0
    out = refiner(cams, image)
    assert torch.allclose(out[:, [1, 3]], refiner(present, image), atol=1e-6)
    assert torch.all(out[:, [0, 2, 4]] == 0) and torch.all(out[1, 1] == 0)
    assert torch.equal(refiner(torch.zeros(1, 3, 8, 8), image[:1]), torch.zeros(1, 3, 8, 8))


def test_refinement_afa_formula_is_par_of_afa_and_toco_and_project_stays_default():
    # formula='afa': the kernel of the PAR module released with AFA / ToCo, written out by hand at one
    # interior pixel; the default stays the project's kernel
    torch.manual_seed(0)
    image, cams = torch.rand(1, 3, 30, 32), torch.rand(1, 2, 30, 32)
    default = PixelAdaptiveRefiner(num_iters=3, dilations=(1, 2))
    assert default.formula == 'project'
    assert torch.equal(default(cams, image),
                       PixelAdaptiveRefiner(num_iters=3, dilations=(1, 2), formula='project')(cams, image))
    afa = PixelAdaptiveRefiner(num_iters=1, dilations=(1, 2, 4), formula='afa', colour_sigma=0.3,
                               pos_sigma=0.3, pos_weight=0.01)
    weights = afa.kernel(image)  # (1, 24, H, W): 8 neighbours per dilation, no centre
    assert weights.shape == (1, 24, 30, 32)
    assert torch.allclose(weights.sum(1), torch.full((1, 30, 32), 1.01), atol=1e-5)
    y, x = 12, 15
    offsets = [(dy * d, dx * d) for d in (1, 2, 4) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    values = torch.stack([image[0, :, y + dy, x + dx] for dy, dx in offsets], 1)  # (3, 24)
    colour = -((values - image[0, :, y, x, None]).abs() / (values.std(1, keepdim=True) + 1e-8) / 0.3) ** 2
    dist = torch.tensor([float(np.hypot(dy, dx)) for dy, dx in offsets])
    pos = (-(dist / (dist.std() + 1e-8) / 0.3) ** 2).softmax(0)
    expected = colour.mean(0).softmax(0) + 0.01 * pos
    order = [afa.offsets.index(o) for o in offsets]
    assert torch.allclose(weights[0, order, y, x], expected, atol=1e-6)
    refined = afa(cams, image)
    step = sum(expected[i] * cams[0, :, y + dy, x + dx] for i, (dy, dx) in enumerate(offsets))
    assert torch.allclose(refined[0, :, y, x], step, atol=1e-6)
    assert torch.allclose(PixelAdaptiveRefiner(dilations=(1, 2, 4), formula='afa', pos_sigma=None)
                          .kernel(image).sum(1), torch.ones(1, 30, 32), atol=1e-5)
    assert build_refiner(dict(type='par', formula='afa')).formula == 'afa'
    with pytest.raises(ValueError, match='formula'):
        PixelAdaptiveRefiner(formula='toco')


def test_crf_refiner_runs_the_installed_pydensecrf():
    # pydensecrf2 is a runtime requirement: the CRF path must run here, never be skipped
    refiner = build_refiner(dict(type='crf', num_iters=10, pos_sxy=1, pos_compat=3, bi_sxy=67, bi_srgb=3,
                                 bi_compat=4))  # CLIP-ES's parameters
    # two colour halves; noisy scores that lean the right way on each half
    image = torch.zeros(1, 24, 32, 3, dtype=torch.uint8)
    image[:, :, :16] = torch.tensor([200, 40, 40], dtype=torch.uint8)
    image[:, :, 16:] = torch.tensor([40, 40, 200], dtype=torch.uint8)
    torch.manual_seed(0)
    scores = torch.rand(1, K, 24, 32) * 0.8
    scores[:, 1, :, :16] += 0.3
    scores[:, 3, :, 16:] += 0.3
    keep = torch.tensor([[True, True, False, True]])
    out = refiner(scores, image, keep)
    assert out.shape == scores.shape and torch.all(out[:, 2] == 0)
    torch.testing.assert_close(out[:, keep[0]].sum(dim=1), torch.ones(1, 24, 32), atol=1e-4, rtol=0)
    truth = torch.full((24, 32), 3)
    truth[:, :16] = 1
    assert (scores[0].argmax(0) == truth).float().mean() < 0.9  # the noisy scores are often wrong
    assert (out[0].argmax(0) == truth).float().mean() > 0.99  # the CRF follows the colour edge


def test_crf_refiner_without_pydensecrf_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pydensecrf.densecrf', None)
    with pytest.raises(ImportError, match='pydensecrf2') as err:
        build_refiner('crf')
    assert str(err.value) == CRF_INSTALL_HINT


def _fake_pydensecrf(monkeypatch, transform):
    """Put a stand-in ``pydensecrf`` into ``sys.modules``: its "inference" returns ``transform`` of the
    softmax it was given as unary (``transform=lambda q: q`` is a CRF that changes nothing). Records
    every call. The real package's numerics are not tested here; this checks the wiring around it."""
    calls = []

    class DenseCRF2D:

        def __init__(self, width, height, n_labels):
            calls.append(('init', width, height, n_labels))
            self.shape = (n_labels, height, width)

        def setUnaryEnergy(self, unary):
            calls.append(('unary', unary.copy()))
            self.unary = unary

        def addPairwiseGaussian(self, sxy, compat):
            calls.append(('gaussian', sxy, compat))

        def addPairwiseBilateral(self, sxy, srgb, rgbim, compat):
            calls.append(('bilateral', sxy, srgb, rgbim.copy(), compat))

        def inference(self, num_iters):
            calls.append(('inference', num_iters))
            q = np.exp(-self.unary)
            q = (q / q.sum(axis=0, keepdims=True)).reshape(self.shape)
            return transform(q).reshape(self.shape[0], -1)

    def unary_from_softmax(probs):  # -log p, (n_labels, H * W) float32 like the real one
        return -np.log(probs).reshape(probs.shape[0], -1).astype(np.float32)

    package = types.ModuleType('pydensecrf')
    package.densecrf = types.ModuleType('pydensecrf.densecrf')
    package.densecrf.DenseCRF2D = DenseCRF2D
    package.utils = types.ModuleType('pydensecrf.utils')
    package.utils.unary_from_softmax = unary_from_softmax
    for name, module in (('pydensecrf', package), ('pydensecrf.densecrf', package.densecrf),
                         ('pydensecrf.utils', package.utils)):
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_crf_refinement_is_wired_into_pseudo_masks(tmp_path, monkeypatch):
    """refine='crf' runs the dense CRF on the background-filled scores of the present classes and the
    original RGB image, and labels the pixels by its marginals. A stand-in pydensecrf (the real one is
    optional) shows each step: a CRF that changes nothing gives the masks of no refinement, a CRF that
    mirrors its marginals gives mirrored masks."""
    model = CAMTestRamp().eval()
    image = np.random.default_rng(0).integers(0, 256, (4, 10, 3), dtype=np.uint8)
    batch = _image_batch(image, [1, 1, 0, 1])  # ramp up for class 1, down for class 3
    unrefined = _masks_of(model, batch, tmp_path / 'none', bg_threshold=0.6)
    assert unrefined[0].tolist() == [3, 3, 3, 3, 0, 0, 1, 1, 1, 1]

    calls = _fake_pydensecrf(monkeypatch, lambda q: q)
    crf = dict(type='crf', num_iters=4, bi_srgb=7)
    assert np.array_equal(_masks_of(model, batch, tmp_path / 'same', bg_threshold=0.6, refine=crf),
                          unrefined)
    kinds = [c[0] for c in calls]
    assert kinds == ['init', 'unary', 'gaussian', 'bilateral', 'inference']
    assert calls[0][1:] == (10, 4, 3)  # width, height, the 3 classes kept: background, 1 and 3
    probs = np.exp(-calls[1][1]).reshape(3, 4, 10)  # the softmax handed to the CRF ...
    ramp = np.arange(10) / 9
    filled = np.stack([np.full(10, 0.6), ramp, ramp[::-1]]).clip(min=1e-5)  # ... of these scores
    np.testing.assert_allclose(probs[:, 0], filled / filled.sum(axis=0), atol=1e-5)
    np.testing.assert_array_equal(calls[3][3], image)  # the image itself, RGB, at mask size
    assert calls[3][2] == 7 and calls[4][1] == 4  # the refine dict reaches the CRF

    calls.clear()
    _fake_pydensecrf(monkeypatch, lambda q: q[:, :, ::-1])
    mirrored = _masks_of(model, batch, tmp_path / 'mirror', bg_threshold=0.6, refine=crf)
    assert np.array_equal(mirrored, unrefined[:, ::-1])
    # an ignore band is a statement about CAM scores, not CRF marginals: refused
    with pytest.raises(ValueError, match='ignore_band applies to CAM scores'):
        _masks_of(model, batch, tmp_path / 'band', bg_threshold=0.6, refine=crf,
                  ignore_band=(0.5, 0.7))


# --------------------------------------------------------------------------- multi-scale + flip
def test_multi_scale_flip_is_flip_equivariant():
    model = CAMTestStub().eval()
    torch.manual_seed(1)
    x = torch.randn(2, 3, 32, 40)
    labels = torch.tensor([[1, 1, 0, 1], [1, 0, 1, 1]], dtype=torch.float32)
    cams = multi_scale_flip_cams(model, x, labels, scales=(1.0, 0.5, 1.5), flip=True)
    assert cams.shape == (2, K, 32, 40)
    assert torch.all(cams[0, 2] == 0) and torch.all(cams[1, 1] == 0)  # absent classes
    assert torch.all(cams[:, 0] == 0)  # the stub has no background score
    np.testing.assert_allclose(cams.amax(dim=(2, 3))[labels.bool() & (torch.arange(K) > 0)].numpy(), 1,
                               atol=1e-5)
    flipped = multi_scale_flip_cams(model, x.flip(-1), labels, scales=(1.0, 0.5, 1.5), flip=True)
    torch.testing.assert_close(flipped, cams.flip(-1), atol=1e-5, rtol=1e-4)
    # without flip augmentation the stub is not equivariant: the check above has teeth
    no_flip = multi_scale_flip_cams(model, x, labels, scales=(1.0,), flip=False)
    no_flip_f = multi_scale_flip_cams(model, x.flip(-1), labels, scales=(1.0,), flip=False)
    assert (no_flip_f - no_flip.flip(-1)).abs().max() > 1e-2


# --------------------------------------------------------------------------- evaluation
def test_compute_miou_through_iou_metric():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 255]], np.uint8)
    perfect = compute_miou([gt.copy()], [gt], ('bg', 'fg'), log_table=False)
    assert perfect['mIoU'] == 100 and perfect['num_images'] == 1
    pred = np.array([[0, 0, 1, 0], [0, 255, 1, 1]], np.uint8)
    m = compute_miou([pred], [gt], ('bg', 'fg'), log_table=False)
    # bg: inter 3, union 4 + 4 - 3 = 5 -> 60; fg: inter 2, union 3 + 2 - 2 = 3 -> 66.67 (the pixel
    # predicted 255 where GT is bg counts as a miss; the GT-255 pixel is skipped)
    assert m['per_class_iou'] == {'bg': 60.0, 'fg': 66.67}
    assert m['mIoU'] == pytest.approx(63.33, abs=0.01)
    assert m['ignored_ratio'] == pytest.approx(1 / 7, abs=1e-4)


# --------------------------------------------------------------------------- generation + tool
def test_generate_pseudo_masks_writes_resumes_and_evaluates(tmp_path):
    root = str(tmp_path / 'data')
    labels = _write_dataset(root)
    names = sorted(labels)
    model = CAMTestStub().eval()
    out = str(tmp_path / 'pseudo')
    kwargs = dict(scales=(1.0, 0.5), refine=dict(type='par', num_iters=3), bg_threshold=0.3,
                  classes=CLASSES, show_progress=False)
    res = generate_pseudo_masks(model, _batches(root, labels, names), out, evaluate=True, **kwargs)
    assert res['written'] == 3 and res['skipped'] == 0
    assert sorted(os.listdir(out)) == ['confidence', 'im0.png', 'im1.png', 'im2.png', 'metrics.json']
    assert sorted(os.listdir(osp.join(out, 'confidence'))) == ['im0.png', 'im1.png', 'im2.png']
    for name in names:
        with Image.open(osp.join(out, f'{name}.png')) as img:
            assert img.mode == 'P'
            values = np.array(img)
        gt = np.array(Image.open(osp.join(root, 'ann', f'{name}.png')))
        assert values.shape == gt.shape  # back at the original size
        present = {i for i, v in enumerate(labels[name]) if v > 0}
        assert set(np.unique(values).tolist()) <= present | {255}
        confidence = read_confidence_png(osp.join(out, 'confidence', f'{name}.png'))
        assert confidence.shape == values.shape
        assert (confidence[values == 255] == 0).all()
        # a labelled pixel's class has at least the share 1 / (classes present)
        assert (confidence[values != 255] >= np.floor(255 / len(present))).all()
    metrics = json.load(open(osp.join(out, 'metrics.json')))
    assert metrics['num_images'] == 3 and set(metrics['per_class_iou']) == set(CLASSES)
    expected = reference_miou([(osp.join(out, f'{n}.png'), osp.join(root, 'ann', f'{n}.png'))
                              for n in names], K)
    assert 5 < expected < 95  # neither a trivial nor a perfect result: the comparison has teeth
    assert metrics['mIoU'] == pytest.approx(expected, abs=0.01)
    assert res['metrics']['mIoU'] == metrics['mIoU']

    # resume: valid files are skipped and untouched; a corrupt one is rewritten
    stamp = os.stat(osp.join(out, 'im0.png')).st_mtime_ns
    with open(osp.join(out, 'im1.png'), 'r+b') as f:
        f.truncate(20)
    res2 = generate_pseudo_masks(model, _batches(root, labels, names), out, **kwargs)
    assert res2['written'] == 1 and res2['skipped'] == 2
    assert os.stat(osp.join(out, 'im0.png')).st_mtime_ns == stamp
    assert is_valid_png(osp.join(out, 'im1.png'), (40, 48))
    assert not [f for f in os.listdir(out) if f.endswith('.tmp')]
    # a mask without its confidence map (masks of an older writer) is made again
    os.remove(osp.join(out, 'confidence', 'im2.png'))
    res3 = generate_pseudo_masks(model, _batches(root, labels, names), out, **kwargs)
    assert res3['written'] == 1 and res3['skipped'] == 2
    with Image.open(osp.join(out, 'im2.png')) as img:
        size = (img.height, img.width)
    assert is_valid_png(osp.join(out, 'confidence', 'im2.png'), size, expected_mode='L')


def _tool_setup(tmp_path):
    """Data, a CAMTestStub checkpoint and a config for tools/make_pseudo_masks.py.

    Returns:
        tuple: (config path, checkpoint path, data root, image labels by id)
    """
    root = str(tmp_path / 'data')
    labels = _write_dataset(root)
    model = CAMTestStub()
    ckpt = str(tmp_path / 'stub.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    cfg_path = tmp_path / 'cfg.py'
    cfg_path.write_text(f"""
default_scope = 'mmseg'
model = dict(type='CAMTestStub')
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='RandomFlip', prob=1.0)]
train_dataloader = dict(
    batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='RepeatDataset', times=3, dataset=dict(
        type='BaseSegDataset', data_root={root!r}, img_suffix='.png', seg_map_suffix='.png',
        data_prefix=dict(img_path='img', seg_map_path='ann'),
        metainfo=dict(classes={CLASSES!r}), pipeline=train_pipeline)))
cam_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='PackSegInputs'),
    dict(type='CAMTestSetImageLabels', labels={labels!r}),
]
cam_cfg = dict(scales=(1.0, 0.5), refine=dict(type='par', num_iters=2), bg_threshold=0.3)
""")
    return str(cfg_path), ckpt, root, labels


def test_make_pseudo_masks_tool(tmp_path):
    cfg_path, ckpt, root, labels = _tool_setup(tmp_path)
    out = str(tmp_path / 'masks')
    res = make_pseudo_masks_main([str(cfg_path), ckpt, '--out-dir', out, '--eval', '--no-progress',
                                  '--device', 'cpu'])
    assert res['written'] == 3  # the RepeatDataset wrapper is unwrapped: each image once
    metrics = json.load(open(osp.join(out, 'metrics.json')))
    assert metrics['num_images'] == 3
    expected = reference_miou([(osp.join(out, f'{n}.png'), osp.join(root, 'ann', f'{n}.png'))
                              for n in labels], K)
    assert 5 < expected < 95 and metrics['mIoU'] == pytest.approx(expected, abs=0.01)
    for name in labels:
        with Image.open(osp.join(out, f'{name}.png')) as img:
            gt = Image.open(osp.join(root, 'ann', f'{name}.png'))
            assert img.mode == 'P' and img.size == gt.size
    res2 = make_pseudo_masks_main([str(cfg_path), ckpt, '--out-dir', out, '--no-progress'])
    assert res2['written'] == 0 and res2['skipped'] == 3  # same protocol: resumed, nothing redone
    # a record written before a protocol field existed: the field counts as its default
    record = json.load(open(osp.join(out, 'protocol.json')))
    for added in ('bg_power', 'normalise', 'amp'):
        del record[added]
    json.dump(record, open(osp.join(out, 'protocol.json'), 'w'))
    res2 = make_pseudo_masks_main([str(cfg_path), ckpt, '--out-dir', out, '--no-progress'])
    assert res2['written'] == 0 and res2['skipped'] == 3
    # another protocol into the same directory would mix masks of two protocols: refused ...
    changed = ['--refine', 'none', '--scales', '1.0', '--no-flip']
    with pytest.raises(ValueError, match=r"another protocol \(flip: True -> False; refine:"):
        make_pseudo_masks_main([str(cfg_path), ckpt, '--out-dir', out, '--no-progress', *changed])
    # ... unless asked to replace them; the directory then records the new protocol
    res3 = make_pseudo_masks_main([str(cfg_path), ckpt, '--out-dir', out, '--no-progress', '--overwrite',
                                   *changed])
    assert res3['written'] == 3
    protocol = json.load(open(osp.join(out, 'protocol.json')))
    assert protocol['refine'] == 'none' and protocol['scales'] == [1.0] and protocol['flip'] is False
    with pytest.raises(FileNotFoundError, match='checkpoint'):
        make_pseudo_masks_main([str(cfg_path), str(tmp_path / 'nope.pth'), '--out-dir', out])
    with pytest.raises(KeyError, match='val_dataloader'):
        make_pseudo_masks_main([str(cfg_path), ckpt, '--out-dir', out, '--split', 'val'])


def test_make_pseudo_masks_refuses_images_without_image_labels_naming_one(tmp_path):
    cfg_path, ckpt, _, labels = _tool_setup(tmp_path)
    text = Path(cfg_path).read_text()
    unlabelled = tmp_path / 'unlabelled.py'  # a split read without its label file
    unlabelled.write_text(text.replace(f"    dict(type='CAMTestSetImageLabels', labels={labels!r}),\n", ''))
    assert unlabelled.read_text() != text
    with pytest.raises(DatasetError, match=r'has no image-level labels.*label_file'):
        make_pseudo_masks_main([str(unlabelled), ckpt, '--out-dir', str(tmp_path / 'm'), '--no-progress'])


def test_make_pseudo_masks_tool_ignore_band_and_a_change_of_band_alone(tmp_path):
    cfg_path, ckpt, root, labels = _tool_setup(tmp_path)
    plain_dir, band_dir = str(tmp_path / 'plain'), str(tmp_path / 'band')
    common = [cfg_path, ckpt, '--no-progress', '--refine', 'none']
    make_pseudo_masks_main([*common, '--out-dir', plain_dir])
    res = make_pseudo_masks_main([*common, '--out-dir', band_dir, '--ignore-band', '0.2', '0.4'])
    assert res['written'] == 3
    assert json.load(open(osp.join(band_dir, 'protocol.json')))['ignore_band'] == [0.2, 0.4]

    def masks(out_dir):
        return {n: np.array(Image.open(osp.join(out_dir, f'{n}.png'))) for n in labels}

    plain, banded = masks(plain_dir), masks(band_dir)
    for name in labels:  # the band only turns labels into ignore
        changed = plain[name] != banded[name]
        assert np.all(banded[name][changed] == 255), name
    ignored = sum(int(np.sum((b == 255) & (p != 255))) for p, b in zip(plain.values(), banded.values()))
    assert ignored > 0
    # a band wider than the threshold allows (0.3 is the config's bg_threshold): refused, nothing written
    with pytest.raises(ValueError, match='must contain bg_threshold=0.3'):
        make_pseudo_masks_main([*common, '--out-dir', str(tmp_path / 'bad'), '--ignore-band', '0.4',
                                '0.5'])
    assert not (tmp_path / 'bad').exists()
    # a protocol that differs in the band alone is another protocol: refused, then replaced
    with pytest.raises(ValueError, match=r'another protocol \(ignore_band: \[0\.2, 0\.4\] -> '
                                         r'\[0\.25, 0\.45\]; see'):
        make_pseudo_masks_main([*common, '--out-dir', band_dir, '--ignore-band', '0.25', '0.45'])
    res = make_pseudo_masks_main([*common, '--out-dir', band_dir, '--ignore-band', '0.25', '0.45',
                                  '--overwrite'])
    assert res['written'] == 3
    assert json.load(open(osp.join(band_dir, 'protocol.json')))['ignore_band'] == [0.25, 0.45]


def test_padding_of_the_batch_changes_no_pseudo_mask(tmp_path):
    """CAMs are normalised and refined over the valid image only: padding the inputs (a data
    preprocessor with a size divisor) gives the very masks of the unpadded inputs."""
    root = str(tmp_path / 'data')
    labels = _write_dataset(root)
    names = sorted(labels)
    masks = {}
    for divisor in (None, 32):  # 40x48 inputs, or padded to 64x64
        model = CAMTestPaddingBright().eval()
        model.data_preprocessor = SegDataPreProcessor(
            mean=MEAN, std=STD, bgr_to_rgb=True,
            test_cfg=dict(size_divisor=divisor) if divisor else None)
        out = tmp_path / f'pseudo_{divisor}'
        generate_pseudo_masks(model, _batches(root, labels, names, size=(40, 48)), str(out),
                              scales=(1.0, ), flip=False, refine=dict(type='par', num_iters=3),
                              bg_threshold=0.5, show_progress=False)
        masks[divisor] = [np.array(Image.open(out / f'{name}.png')) for name in names]
    assert any(len(np.unique(m)) > 1 for m in masks[None])  # the masks are not trivial
    for unpadded, padded in zip(masks[None], masks[32]):
        np.testing.assert_array_equal(padded, unpadded)


def test_generate_with_padding_and_resize_recovers_ground_truth(tmp_path):
    """An oracle CAM model through padding (size_divisor), resizing and refinement gives the GT back."""
    root = str(tmp_path / 'data')
    labels = _write_dataset(root)
    names = sorted(labels)
    model = CAMTestColourOracle(size_divisor=16).eval()  # 30x30 inputs are padded to 32x32
    for refine in ('none', dict(type='par', num_iters=5)):
        out = str(tmp_path / f'pseudo_{refine if isinstance(refine, str) else "par"}')
        res = generate_pseudo_masks(model, _batches(root, labels, names, size=(30, 30)), out,
                                    scales=(1.0, 0.75), refine=refine, bg_threshold=0.5,
                                    evaluate=True, classes=CLASSES, show_progress=False)
        assert res['written'] == 3
        assert res['metrics']['mIoU'] >= 90, res['metrics']


def test_mean_class_iou_leaves_out_classes_neither_in_the_truth_nor_predicted():
    gts = [np.array([[0, 1], [1, 1]], dtype=np.uint8)]
    preds = [np.array([[0, 1], [2, 1]], dtype=np.uint8)]  # 'b' predicted, never true; 'c' nowhere
    iou = compute_miou(preds, gts, ['bg', 'a', 'b', 'c'], log_table=False)['per_class_iou']
    assert iou['c'] is None and iou['b'] == 0.0 and iou['a'] == pytest.approx(66.67)
    assert mean_class_iou(iou, ['a', 'c']) == iou['a']  # 'c' does not count as 0
    assert mean_class_iou(iou, ['b', 'c']) == 0.0  # a false positive does
    assert mean_class_iou(iou, ['c']) is None
