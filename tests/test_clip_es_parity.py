"""What the CLIP-ES configs compute as the authors' released code (linyq2117/CLIP-ES) computes it.

Each behaviour agreed in the side-by-side run (docs/clip_es.md, "Parity") is pinned here on a
hand-made case: the boxes at the image edge, a side not divisible by 16, the two VOC names, the
background score and the CRF inputs.
"""
import os.path as osp
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.cam import cams_to_pseudo_mask, fill_background, multi_scale_flip_cams
from mmseg_clip_wsss.cam.refine import DenseCRFRefiner, clip_es_crf_image
from mmseg_clip_wsss.models import TINY_CLIP_NAME, write_random_clip_checkpoint
from mmseg_clip_wsss.models.clip_es import cam_box_mask, class_aware_affinity_refine
from mmseg_clip_wsss.models.text.vocabularies import resolve_class_prompts
from mmseg_clip_wsss.registry import MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from test_cam import CAMTestRamp, _fake_pydensecrf, _image_batch, _masks_of  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VOC_CFG = REPO / 'configs/clip_es/clip-es_vit-b16_voc.py'
COCO_CFG = REPO / 'configs/clip_es/clip-es_vit-b16_coco.py'
DEMO_CFG = REPO / 'configs/clip_es/clip-es_demo-clip_demo.py'


# --------------------------------------------------------------------------- boxes
def test_clip_es_boxes_lose_the_last_row_and_column_at_the_edge():
    cams = torch.zeros(1, 3, 6, 8)
    cams[0, 0, 3:6, 5:8] = 1.  # a region in the bottom-right corner
    cams[0, 1, 1:3, 7] = 1.  # a one-column region in the last column
    cams[0, 2, 1:3, 1:3] = 1.  # an interior region
    exact = cam_box_mask(cams, 0.4, rule='exact')
    clip_es = cam_box_mask(cams, 0.4, rule='clip_es')
    assert exact[0, 0].sum() == 9 and exact[0, 0, 3:6, 5:8].all()
    # CLIP-ES: x1 = min(x + w, W - 1) = 7, y1 = min(y + h, H - 1) = 5, filled [y0:y1, x0:x1]
    assert clip_es[0, 0].sum() == 4 and clip_es[0, 0, 3:5, 5:7].all()
    assert exact[0, 1].sum() == 2 and not clip_es[0, 1].any()  # the one-column box is empty
    assert torch.equal(exact[0, 2], clip_es[0, 2]) and clip_es[0, 2].sum() == 4  # inside: alike


def test_clip_es_boxes_threshold_the_uint8_map():
    # floor(255 * 0.402) = 102 is not above int(0.4 * 255) = 102: outside for CLIP-ES, inside for
    # the exact rule (0.402 > 0.4)
    cams = torch.zeros(1, 1, 5, 5)
    cams[0, 0, 0, 0] = 1.
    cams[0, 0, 2:4, 2:4] = 0.402
    cams[0, 0, 4, 0] = 0.41  # floor(104.55) = 104 > 102: inside for both
    exact = cam_box_mask(cams, 0.4, rule='exact')[0, 0]
    clip_es = cam_box_mask(cams, 0.4, rule='clip_es')[0, 0]
    assert exact[2:4, 2:4].all() and not clip_es[2:4, 2:4].any()
    assert clip_es[0, 0] and not clip_es[4, 0]  # the bottom row is lost at the edge ...
    assert exact[4, 0]  # ... but the region is found (exact keeps it)
    with pytest.raises(ValueError, match='rule'):
        cam_box_mask(cams, 0.4, rule='loose')


def test_affinity_refine_uses_the_rule_and_stays_inside_the_boxes():
    cams = torch.zeros(1, 1, 4, 4)
    cams[0, 0, 1:4, 3] = torch.tensor([1., .9, .8])  # a region along the right edge
    cams[0, 0, 0, 0] = 0.5
    identity = torch.eye(16)[None]
    exact = class_aware_affinity_refine(cams, identity, 0.4, 'exact')
    clip_es = class_aware_affinity_refine(cams, identity, 0.4, 'clip_es')
    assert exact[0, 0, 1:4, 3].min() > 0.5  # the column is kept ...
    assert torch.all(clip_es[0, 0, :, 3] == 0) and clip_es[0, 0, 0, 0] > 0.999  # ... or lost


# --------------------------------------------------------------------------- names
def test_the_two_voc_names_are_prompted_as_written():
    names = ['background', 'diningtable', 'pottedplant', 'tv_monitor']
    assert resolve_class_prompts(names)[1:] == [['dining table'], ['potted plant'], ['tv monitor']]
    assert resolve_class_prompts(names, readable=False)[1:] == [['diningtable'], ['pottedplant'],
                                                                 ['tv_monitor']]
    with pytest.raises(ValueError, match='non-empty'):
        resolve_class_prompts(['background', ' '], readable=False)
    cfg = Config.fromfile(str(VOC_CFG))
    assert cfg.model.readable_names is False
    assert cfg.model.class_names[11] == 'diningtable' and cfg.model.class_names[16] == 'pottedplant'


def test_text_rows_of_names_as_written(tmp_path):
    ckpt = write_random_clip_checkpoint(str(tmp_path / 'tiny.pt'), TINY_CLIP_NAME)

    def encoder(readable):
        return MODELS.build(dict(type='CLIPPromptTextEncoder', model_name=TINY_CLIP_NAME, pretrained=ckpt,
                                 class_names=['background', 'diningtable', 'pottedplant'],
                                 readable_names=readable,
                                 prompt=dict(type='TemplatePromptLearner',
                                             templates=('a clean origami {}.', ))))

    written, readable = encoder(False), encoder(True)
    assert written.class_prompts[1:] == [['diningtable'], ['pottedplant']]
    assert readable.class_prompts[1:] == [['dining table'], ['potted plant']]
    with torch.no_grad():
        cos = (written()[1:] * readable()[1:]).sum(-1)  # unit rows
    assert torch.all(cos < 0.9999)  # other tokens, other rows


def test_coco_config_carries_the_authors_lists():
    cfg = Config.fromfile(str(COCO_CFG))
    assert cfg.model.box_threshold == 0.7 and len(cfg.model.class_names) == 81
    assert 'keyboard' not in cfg.model.background_words and 'sign' not in cfg.model.background_words
    assert len(cfg.model.background_words) == 23
    assert cfg.model.class_names[61] == 'diningtable' and cfg.model.class_names[59] == 'pottedplant'


# --------------------------------------------------------------------------- input size
def _tiny_vit(tmp_path, **options):
    init_default_scope('mmseg')  # the data preprocessor is mmseg's
    ckpt = write_random_clip_checkpoint(str(tmp_path / 'tiny.pt'), TINY_CLIP_NAME, seed=1)
    return MODELS.build(dict(
        type='TrainingFreeCLIPES', class_names=['background', 'cat', 'dog'], background_words=['sky'],
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[122.7709383, 116.7460125, 104.0937362],
                               std=[68.5005327, 66.6321579, 70.3231631], bgr_to_rgb=True),
        backbone=dict(type='CLIPVisionBackbone', model_name=TINY_CLIP_NAME, pretrained=ckpt,
                      interpolate_mode='bilinear'),
        text_encoder=dict(type='CLIPPromptTextEncoder', model_name=TINY_CLIP_NAME, pretrained=ckpt),
        **options)).eval()


def test_a_side_not_divisible_by_16_is_rounded_up_with_pil_bicubic(tmp_path):
    model = _tiny_vit(tmp_path, resize_to_multiple=16, rescale_output=False, float16_output=True)
    rgb = np.random.default_rng(0).integers(0, 256, (40, 58, 3), dtype=np.uint8)
    pre = model.data_preprocessor
    inputs = (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() - pre.mean) / pre.std
    net = model._resize_inputs(inputs)
    assert net.shape == (1, 3, 48, 64)  # 40 -> 48, 58 -> 64 (nearest would give 32 and 64)
    pil = np.asarray(Image.fromarray(rgb).resize((64, 48), Image.BICUBIC))  # torchvision's Resize of PIL
    expected = (torch.from_numpy(pil).permute(2, 0, 1)[None].float() - pre.mean) / pre.std
    torch.testing.assert_close(net, expected, atol=1e-5, rtol=0)
    with torch.no_grad():
        cams = model.compute_cams(inputs, torch.tensor([[1., 1., 0.]]))
    assert cams.shape == (1, 3, 40, 58)  # back at the image's own size
    assert torch.equal(cams, cams.half().float())  # stored as float16
    assert _tiny_vit(tmp_path)._resize_inputs(inputs) is inputs  # option off
    with pytest.raises(ValueError, match='resize_to_multiple'):
        _tiny_vit(tmp_path, resize_to_multiple=0)


def test_position_embedding_rounded_to_float16(tmp_path):
    ckpt = write_random_clip_checkpoint(str(tmp_path / 'tiny.pt'), TINY_CLIP_NAME, seed=2)
    kwargs = dict(type='CLIPVisionBackbone', model_name=TINY_CLIP_NAME, pretrained=ckpt,
                  interpolate_mode='bilinear')
    plain, half = MODELS.build(kwargs), MODELS.build(dict(kwargs, pos_embed_float16=True))
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        diff = (plain.vit_tokens(x)[0] - half.vit_tokens(x)[0]).abs().max()
    assert 0 < diff < 1e-2


# --------------------------------------------------------------------------- background and CRF
def test_complement_background_is_clip_es_power_rule():
    cams = torch.zeros(1, 3, 1, 4)
    cams[0, 1, 0] = torch.tensor([0.38, 0.39, 0.9, 0.0])
    cams[0, 2, 0] = torch.tensor([0.10, 0.00, 0.95, 0.0])
    labels = torch.tensor([[1., 1., 1.]])
    # (1 - 0.38)^2 = 0.3844 > 0.38 -> background; (1 - 0.39)^2 = 0.3721 < 0.39 -> class 1
    mask = cams_to_pseudo_mask(cams, labels, bg_mode='complement', bg_power=2.0)
    assert mask[0, 0].tolist() == [0, 1, 2, 0]  # no CAM at all: (1 - 0)^2 = 1 wins
    scores = fill_background(cams, labels, bg_mode='complement', bg_power=1.0)  # what the CRF gets
    torch.testing.assert_close(scores[0, 0, 0], torch.tensor([0.62, 0.61, 0.05, 1.0]))
    tie = torch.zeros(1, 2, 1, 1)
    tie[0, 1] = 0.5  # 1 - 0.5 = 0.5: a tie goes to the background, as CLIP-ES's arg-max gives it
    assert cams_to_pseudo_mask(tie, torch.ones(1, 2), bg_mode='complement', bg_power=1.0)[0, 0, 0] == 0
    with pytest.raises(ValueError, match='background class'):
        cams_to_pseudo_mask(cams, labels, bg_mode='complement', background_index=None)


def test_clip_es_crf_image_is_bgr_minus_mean_wrapped_to_uint8():
    rgb = np.array([[[0, 120, 200], [255, 255, 255]]], dtype=np.uint8)
    # BGR (200, 120, 0) - (104.008, 116.669, 122.675) = (95.992, 3.331, -122.675)
    # -> truncated (95, 3, -122) -> modulo 256 (95, 3, 134); white: (150.992, 138.331, 132.325)
    out = clip_es_crf_image(rgb)
    assert out.dtype == np.uint8 and out.tolist() == [[[95, 3, 134], [150, 138, 132]]]
    assert np.array_equal(out, (rgb[..., ::-1].astype(np.float32) -
                                np.float32([104.008, 116.669, 122.675])).astype(np.int64).astype(np.uint8))
    with pytest.raises(ValueError, match='image'):
        DenseCRFRefiner(image='bgr')


def test_crf_gets_clip_es_inputs(tmp_path, monkeypatch):
    """With bg_mode='complement' the CRF starts from 1 - max CAM (refine bg_power=1, while the labels
    without CRF use power 2) and sees CLIP-ES's image; the CAMs are taken as made (normalise=False)."""
    model = CAMTestRamp().eval()
    image = np.random.default_rng(0).integers(0, 256, (4, 10, 3), dtype=np.uint8)
    batch = _image_batch(image, [1, 1, 0, 0])  # class 1: a ramp rising to the right
    calls = _fake_pydensecrf(monkeypatch, lambda q: q)
    crf = dict(type='crf', num_iters=2, image='clip_es', bg_power=1.0)
    mask = _masks_of(model, batch, tmp_path / 'crf', refine=crf, bg_mode='complement', bg_power=2.0,
                     normalise=False)
    probs = np.exp(-calls[1][1]).reshape(2, 4, 10)
    ramp = np.arange(10) / 9
    fed = np.stack([1 - ramp, ramp]).clip(min=1e-5)
    np.testing.assert_allclose(probs[:, 0], fed / fed.sum(axis=0), atol=1e-5)
    np.testing.assert_array_equal(calls[3][3], clip_es_crf_image(image))
    assert mask[0].tolist() == [0] * 5 + [1] * 5  # an identity CRF: the larger of 1 - r and r
    plain = _masks_of(model, batch, tmp_path / 'plain', bg_mode='complement', bg_power=2.0,
                      normalise=False)
    assert plain[0].tolist() == [0] * 4 + [1] * 6  # (1 - r)^2 < r from r = 4/9 = 0.44 on


def test_a_single_scale_is_kept_as_made_without_normalise():
    model = CAMTestRamp().eval()
    labels = torch.tensor([[1., 1., 0., 0.]])
    x = torch.zeros(1, 3, 2, 5)
    kept = multi_scale_flip_cams(model, x, labels, scales=(1.0, ), flip=False, normalise=False)
    torch.testing.assert_close(kept, model.compute_cams(x, labels))
    halved = model.compute_cams(x, labels) * 0.5
    model.compute_cams = lambda inputs, image_labels: halved
    assert multi_scale_flip_cams(model, x, labels, scales=(1.0, ), flip=False).amax() == 1  # rescaled
    assert multi_scale_flip_cams(model, x, labels, scales=(1.0, ), flip=False,
                                 normalise=False).amax() == 0.5


# --------------------------------------------------------------------------- configs
def test_configs_need_quick_gelu_for_openai_weights_and_the_demo_keeps_its_own():
    for path in (VOC_CFG, COCO_CFG):
        cfg = Config.fromfile(str(path))
        assert cfg.model.backbone.quick_gelu is True and cfg.model.text_encoder.quick_gelu is True
        assert cfg.model.box_rule == 'clip_es' and cfg.model.resize_to_multiple == 16
        assert cfg.cam_cfg.bg_mode == 'complement' and cfg.cam_cfg.normalise is False
        assert cfg.cam_cfg.refine.image == 'clip_es' and cfg.cam_cfg.refine.bg_power == 1.0
    weclip = Config.fromfile(str(REPO / 'configs/weclip/clip_wsss_frozen-clip-vit-b16_voc.py'))
    assert weclip.model.backbone.quick_gelu is True and weclip.model.text_encoder.quick_gelu is True
    demo = Config.fromfile(str(DEMO_CFG))
    assert demo.model.backbone.quick_gelu is None and demo.model.text_encoder.quick_gelu is None
    assert demo.model.box_rule == 'exact' and demo.model.resize_to_multiple is None
    assert demo.cam_cfg.bg_mode == 'threshold' and demo.cam_cfg.normalise is True
    assert demo.cam_cfg.refine.image == 'rgb'


def test_a_torchscript_weights_file_loads_with_quick_gelu(tmp_path):
    """OpenAI's released files (CLIP-ES's ViT-B-16.pt) are TorchScript archives, which open_clip's
    file loader refuses: they load here, with QuickGELU, and a wrong architecture is named."""
    import open_clip

    from mmseg_clip_wsss.models import DEMO_CLIP_NAME
    from mmseg_clip_wsss.models.open_clip_models import is_torchscript_archive, load_open_clip
    torch.manual_seed(0)
    eager = load_open_clip(TINY_CLIP_NAME, None, quick_gelu=True, warn_random=False)
    path = str(tmp_path / 'openai_style.pt')
    torch.jit.script(eager).save(path)
    assert is_torchscript_archive(path)
    assert not is_torchscript_archive(write_random_clip_checkpoint(str(tmp_path / 'sd.pt'), TINY_CLIP_NAME))
    with pytest.raises(RuntimeError, match='TorchScript'):
        open_clip.create_model(TINY_CLIP_NAME, pretrained=path)  # what a plain open_clip load does
    loaded = load_open_clip(TINY_CLIP_NAME, path)
    assert all(torch.equal(a, b) for a, b in zip(eager.state_dict().values(), loaded.state_dict().values()))
    assert type(loaded.visual.transformer.resblocks[0].mlp.gelu).__name__ == 'QuickGELU'
    with pytest.raises(ValueError, match='TorchScript archive .* do not fit'):
        load_open_clip(DEMO_CLIP_NAME, path)
