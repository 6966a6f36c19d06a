"""Dense zero-shot modes of CLIPVisionBackbone (MaskCLIP, SCLIP, ClearCLIP, NACLIP), each against a
direct computation through torch's own ``nn.MultiheadAttention`` on a tiny random open_clip ViT, and
MaskCLIP's value projection on a small random ModifiedResNet."""
import copy

import open_clip
import pytest
import torch
import torch.nn.functional as F

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.models import DEMO_CLIP_NAME, write_random_clip_checkpoint
from mmseg_clip_wsss.models.backbones import CLIPVisionBackbone
from mmseg_clip_wsss.models.backbones.dense_modes import DENSE_MODES, neighbourhood_bias
from mmseg_clip_wsss.registry import MODELS

# 3 blocks of width 64, 4 heads, 8-px patches: a 4 x 4 grid at 32 px
VIT_NAME = 'WSSS-Test-Dense-ViT'


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    from open_clip import factory
    factory._MODEL_CONFIGS[VIT_NAME] = dict(
        embed_dim=32, vision_cfg=dict(image_size=32, layers=3, width=64, patch_size=8, head_width=16),
        text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))
    root = tmp_path_factory.mktemp('clip')
    return {name: write_random_clip_checkpoint(str(root / f'{name}.pt'), name, seed=7)
            for name in (VIT_NAME, DEMO_CLIP_NAME)}


def _mha_with(attn, q_from=None, k_from=None):
    """A copy of an ``nn.MultiheadAttention`` whose query (key) projection is replaced by another
    one ('q' or 'k' of the original): torch's attention then computes q-q or k-k attention."""
    mha = copy.deepcopy(attn)
    c = attn.embed_dim
    rows = {'q': slice(0, c), 'k': slice(c, 2 * c)}
    with torch.no_grad():
        if q_from:
            mha.in_proj_weight[:c] = attn.in_proj_weight[rows[q_from]]
            mha.in_proj_bias[:c] = attn.in_proj_bias[rows[q_from]]
        if k_from:
            mha.in_proj_weight[c:2 * c] = attn.in_proj_weight[rows[k_from]]
            mha.in_proj_bias[c:2 * c] = attn.in_proj_bias[rows[k_from]]
    return mha


def _direct_last_block(mode, block, x, grid):
    """The last block of each paper's code, written with torch's multi-head attention."""
    n = x.shape[1]
    y = block.ln_1(x)

    def mha(attn, mask=None):
        return attn(y, y, y, need_weights=False, attn_mask=mask)[0]

    if mode == 'plain':
        return block(x)
    if mode == 'maskclip':  # every token attends to itself only: the value embeddings
        eye = torch.full((n, n), float('-inf')).fill_diagonal_(0)
        out = x + mha(block.attn, eye)
        return out + block.mlp(block.ln_2(out))
    if mode == 'sclip':  # out_proj(A_qq v + A_kk v) = mha_qq + mha_kk - out_proj bias
        attn = mha(_mha_with(block.attn, k_from='q')) + mha(_mha_with(block.attn, q_from='k'))
        out = x + attn - block.attn.out_proj.bias
        return out + block.mlp(block.ln_2(out))
    if mode == 'clearclip':
        return mha(_mha_with(block.attn, k_from='q'))
    if mode == 'naclip':  # k-k attention + the Gaussian bias (std 5) as an additive mask
        bias = torch.zeros(n, n)
        for i in range(1, n):
            for j in range(1, n):
                (ri, ci), (rj, cj) = divmod(i - 1, grid[1]), divmod(j - 1, grid[1])
                bias[i, j] = torch.exp(torch.tensor(-((ri - rj)**2 + (ci - cj)**2) / (2 * 5.0**2)))
        return mha(_mha_with(block.attn, q_from='k'), bias)
    raise AssertionError(mode)


@pytest.mark.parametrize('mode', DENSE_MODES)
@pytest.mark.parametrize('size', [(32, 32), (48, 40)])
def test_vit_mode_equals_direct_computation(checkpoints, mode, size):
    clip = open_clip.create_model(VIT_NAME, pretrained=checkpoints[VIT_NAME]).eval()
    backbone = CLIPVisionBackbone(VIT_NAME, checkpoints[VIT_NAME], dense_mode=mode, out_indices=(0, -1),
                                  out_proj=True).eval()
    x = torch.randn(2, 3, *size)
    grid = (size[0] // 8, size[1] // 8)
    with torch.no_grad():
        tokens, _ = backbone.vit_tokens(x)  # patch + position embedding, checked by the plain tests
        blocks = clip.visual.transformer.resblocks
        first = blocks[0](tokens)
        last = _direct_last_block(mode, blocks[2], blocks[1](first), grid)
        direct = clip.visual.ln_post(last[:, 1:]) @ clip.visual.proj
        direct = direct.transpose(1, 2).reshape(2, 32, *grid)
        dense = backbone.dense_embeddings(x)
        outs = backbone(x)
    assert dense.shape == (2, 32, *grid)
    assert torch.allclose(dense, direct, atol=1e-5), (dense - direct).abs().max()
    assert [tuple(o.shape) for o in outs] == [(2, 64, *grid), (2, 64, *grid), (2, 32, *grid)]
    assert torch.allclose(outs[0], first[:, 1:].transpose(1, 2).reshape(2, 64, *grid), atol=1e-5)
    assert torch.allclose(outs[1], last[:, 1:].transpose(1, 2).reshape(2, 64, *grid), atol=1e-5)
    assert torch.allclose(outs[2], dense, atol=1e-6)


def test_modes_differ_and_pooled_embedding_stays_plain(checkpoints):
    x = torch.randn(1, 3, 32, 32)
    clip = open_clip.create_model(VIT_NAME, pretrained=checkpoints[VIT_NAME]).eval()
    maps = {}
    with torch.no_grad():
        for mode in DENSE_MODES:
            backbone = CLIPVisionBackbone(VIT_NAME, checkpoints[VIT_NAME], dense_mode=mode).eval()
            maps[mode] = backbone.dense_embeddings(x)
            assert torch.allclose(backbone.encode_image(x), clip.encode_image(x), atol=1e-5)
    for a in DENSE_MODES:
        for b in DENSE_MODES:
            if a < b:
                assert (maps[a] - maps[b]).abs().max() > 1e-3, (a, b)


def test_switches_override_a_mode(checkpoints):
    x = torch.randn(1, 3, 32, 32)
    ckpt = checkpoints[VIT_NAME]
    with torch.no_grad():
        # ClearCLIP with SCLIP's attention and MaskCLIP's residual + feed-forward is SCLIP
        sclip = CLIPVisionBackbone(VIT_NAME, ckpt, dense_mode='sclip').eval().dense_embeddings(x)
        mixed = CLIPVisionBackbone(VIT_NAME, ckpt, dense_mode='clearclip', dense_cfg=dict(
            attention='qq+kk', residual=True, ffn=True)).eval().dense_embeddings(x)
        # a wider neighbourhood changes NACLIP's map
        wide = CLIPVisionBackbone(VIT_NAME, ckpt, dense_mode='naclip',
                                  dense_cfg=dict(gaussian_std=50.0)).eval().dense_embeddings(x)
        naclip = CLIPVisionBackbone(VIT_NAME, ckpt, dense_mode='naclip').eval().dense_embeddings(x)
    assert torch.allclose(sclip, mixed, atol=1e-6)
    assert (wide - naclip).abs().max() > 1e-4


def test_neighbourhood_bias_is_the_gaussian_of_patch_distances():
    bias = neighbourhood_bias((2, 3), std=1.5)
    assert bias.shape == (7, 7)
    assert torch.equal(bias[0], torch.zeros(7)) and torch.equal(bias[:, 0], torch.zeros(7))
    # patch (0, 0) is token 1, patch (1, 2) is token 6: squared distance 1 + 4
    assert bias[1, 6].item() == pytest.approx(torch.exp(torch.tensor(-5 / (2 * 1.5**2))).item())
    assert torch.allclose(torch.diagonal(bias)[1:], torch.ones(6))
    assert torch.equal(bias, bias.t())


@pytest.mark.parametrize('mode', ['plain', 'maskclip'])
def test_resnet_value_projection(checkpoints, mode):
    clip = open_clip.create_model(DEMO_CLIP_NAME, pretrained=checkpoints[DEMO_CLIP_NAME]).eval()
    backbone = CLIPVisionBackbone(DEMO_CLIP_NAME, checkpoints[DEMO_CLIP_NAME], dense_mode=mode,
                                  out_proj=True).eval()
    x = torch.randn(2, 3, 128, 96)
    v = clip.visual
    with torch.no_grad():
        x4 = v.layer4(v.layer3(v.layer2(v.layer1(backbone.stem(x)))))  # (2, 256, 4, 3)
        tokens = x4.flatten(2).transpose(1, 2)
        if mode == 'plain':  # the pooling's position embedding (grid 2 x 2 resized to 4 x 3) first
            grid = v.attnpool.positional_embedding[1:].reshape(1, 2, 2, -1).permute(0, 3, 1, 2)
            pos = F.interpolate(grid, size=(4, 3), mode='bicubic', align_corners=False)
            tokens = tokens + pos.flatten(2).transpose(1, 2)
        # MaskCLIP's RN head: v_proj then c_proj at every position
        direct = v.attnpool.c_proj(v.attnpool.v_proj(tokens)).transpose(1, 2).reshape(2, 128, 4, 3)
        dense = backbone.dense_embeddings(x)
        outs = backbone(x)
    assert dense.shape == (2, 128, 4, 3)
    assert torch.allclose(dense, direct, atol=1e-5)
    assert torch.allclose(outs[-1], dense)
    assert [tuple(o.shape[1:]) for o in outs[:4]] == [(128, 32, 24), (256, 16, 12), (512, 8, 6),
                                                        (1024, 4, 3)]


def test_resnet_maskclip_with_position_embedding_is_plain(checkpoints):
    x = torch.randn(1, 3, 96, 96)
    ckpt = checkpoints[DEMO_CLIP_NAME]
    with torch.no_grad():
        plain = CLIPVisionBackbone(DEMO_CLIP_NAME, ckpt).eval().dense_embeddings(x)
        with_pos = CLIPVisionBackbone(DEMO_CLIP_NAME, ckpt, dense_mode='maskclip',
                                      dense_cfg=dict(pos_embed=True)).eval().dense_embeddings(x)
        maskclip = CLIPVisionBackbone(DEMO_CLIP_NAME, ckpt, dense_mode='maskclip').eval().dense_embeddings(x)
    assert torch.equal(plain, with_pos)
    assert (plain - maskclip).abs().max() > 1e-4


def test_unknown_or_inapplicable_modes_are_refused(checkpoints):
    with pytest.raises(ValueError, match=r"dense_mode='gem'.*valid: \('plain', 'maskclip', 'sclip', "
                       r"'clearclip', 'naclip'\)"):
        CLIPVisionBackbone(VIT_NAME, checkpoints[VIT_NAME], dense_mode='gem')
    with pytest.raises(ValueError, match=r"WSSS-Demo-CLIP-RN.*'sclip'.*valid: \('plain', 'maskclip'\).*"
                       r"need a ViT tower"):
        CLIPVisionBackbone(DEMO_CLIP_NAME, checkpoints[DEMO_CLIP_NAME], dense_mode='sclip')
    with pytest.raises(ValueError, match=r"dense_cfg keys \['residul'\] are unknown.*'residual'"):
        CLIPVisionBackbone(VIT_NAME, checkpoints[VIT_NAME], dense_mode='sclip', dense_cfg=dict(residul=False))
    with pytest.raises(ValueError, match=r"attention='kq' must be one of"):
        CLIPVisionBackbone(VIT_NAME, checkpoints[VIT_NAME], dense_cfg=dict(attention='kq'))
    with pytest.raises(ValueError, match=r'gaussian_std=0.*> 0'):
        CLIPVisionBackbone(VIT_NAME, checkpoints[VIT_NAME], dense_mode='naclip',
                           dense_cfg=dict(gaussian_std=0))


def test_dense_mode_from_a_config(checkpoints):
    backbone = MODELS.build(dict(type='CLIPVisionBackbone', model_name=VIT_NAME,
                                 pretrained=checkpoints[VIT_NAME], dense_mode='naclip', out_proj=True))
    assert backbone.dense_mode == 'naclip' and "dense_mode='naclip'" in repr(backbone)
    assert backbone.dense_settings == dict(attention='kk+neighbourhood', residual=False, ffn=False,
                                           gaussian_std=5.0)


def test_position_embedding_scale_offset_resizes_as_the_authors_code(checkpoints):
    """SCLIP/ClearCLIP/NACLIP resize with scale factors (side + 0.1) / g: the same size, other samples."""
    from mmseg_clip_wsss.models.backbones import resize_pos_embed
    pos = torch.randn(1 + 16, 8)
    grid = pos[1:].reshape(1, 4, 4, 8).permute(0, 3, 1, 2)
    theirs = F.interpolate(grid, scale_factor=(6.1 / 4, 5.1 / 4), mode='bicubic')
    ours = resize_pos_embed(pos, (6, 5), scale_offset=0.1)
    assert torch.allclose(ours[1:], theirs.permute(0, 2, 3, 1).reshape(30, 8), atol=1e-6)
    assert torch.equal(ours[0], pos[0])
    assert (resize_pos_embed(pos, (6, 5))[1:] - ours[1:]).abs().max() > 1e-3
    with pytest.raises(ValueError, match='scale_offset=1.5'):
        resize_pos_embed(pos, (6, 5), scale_offset=1.5)
