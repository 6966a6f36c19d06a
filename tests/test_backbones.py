"""ConvStemSwinTransformer: same outputs as mmseg's Swin, a trainable conv stem, clear errors."""
import pytest
import torch
from mmdet.registry import MODELS as DET_MODELS
from mmseg.models.backbones import SwinTransformer
from mmseg.registry import MODELS

import mmseg_clip_wsss  # noqa: F401  (registers the modules)

SMALL_SWIN = dict(pretrain_img_size=64, embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4],
                  window_size=4, init_cfg=None)


def test_conv_stem_swin_matches_swin_output_shapes_in_both_registries():
    x = torch.randn(2, 3, 64, 96)
    swin = SwinTransformer(**SMALL_SWIN)
    for registry in (MODELS, DET_MODELS):
        model = registry.build(dict(type='ConvStemSwinTransformer', **SMALL_SWIN))
        model.init_weights()
        outs, ref = model(x), swin(x)
        assert [o.shape for o in outs] == [r.shape for r in ref]
        assert outs[0].shape == (2, 16, 16, 24)  # (B, C, H / 4, W / 4)
        assert all(torch.isfinite(o).all() for o in outs)


def test_conv_stem_is_trained_and_swin_weights_load_except_the_stem():
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ConvStemSwinTransformer', stem_channels=12, **SMALL_SWIN))
    out = model(torch.randn(2, 3, 64, 64))[-1]
    # a random projection: the plain sum of a LayerNorm-ed output is constant, so its gradient is
    # zero up to rounding, and the test depended on that noise
    (out * torch.randn_like(out)).sum().backward()
    stem_grads = [p.grad for p in model.patch_embed.parameters()]
    assert stem_grads and all(g is not None and g.abs().sum() > 0 for g in stem_grads)
    assert model.patch_embed.convs[0].conv.out_channels == 12

    swin_state = SwinTransformer(**SMALL_SWIN).state_dict()
    missing, unexpected = model.load_state_dict(swin_state, strict=False)
    assert all(k.startswith('patch_embed.') for k in missing + unexpected)
    assert any(k.startswith('stages.') for k in swin_state) and not any(
        k.startswith('stages.') for k in missing)


def test_conv_stem_swin_freezes_its_stem_with_frozen_stages():
    model = MODELS.build(dict(type='ConvStemSwinTransformer', frozen_stages=0, **SMALL_SWIN))
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert all(p.requires_grad for p in model.stages.parameters())


def test_conv_stem_swin_rejects_a_first_stride_that_is_not_a_power_of_2():
    with pytest.raises(ValueError, match='power-of-2 stride'):
        MODELS.build(dict(type='ConvStemSwinTransformer', patch_size=3, strides=(3, 2, 2, 2),
                          **SMALL_SWIN))


def test_conv_stem_follows_swin_patch_norm_flag():
    with_norm = MODELS.build(dict(type='ConvStemSwinTransformer', **SMALL_SWIN))
    without = MODELS.build(dict(type='ConvStemSwinTransformer', patch_norm=False, **SMALL_SWIN))
    assert isinstance(with_norm.patch_embed.token_norm, torch.nn.LayerNorm)
    assert isinstance(without.patch_embed.token_norm, torch.nn.Identity)
    assert without(torch.randn(1, 3, 64, 64))[0].shape == (1, 16, 16, 16)
