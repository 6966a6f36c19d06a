"""CLIPVisionBackbone: open_clip's image towers (ViT, ModifiedResNet) as dense backbones."""
import copy
from pathlib import Path

import open_clip
import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint_with_prefix

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.models import DEMO_CLIP_NAME, TINY_CLIP_NAME, write_random_clip_checkpoint
from mmseg_clip_wsss.models.backbones import CLIPVisionBackbone, resize_pos_embed
from mmseg_clip_wsss.registry import DET_MODELS, MODELS

REPO = Path(__file__).resolve().parents[1]
# a ViT that pools by averaging its patch tokens (open_clip pool_type='avg'), beside the tiny CLIP's
# class-token pooling
AVG_VIT_NAME = 'WSSS-Test-AvgViT'


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    from open_clip import factory
    factory._MODEL_CONFIGS[AVG_VIT_NAME] = dict(
        embed_dim=16, vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8, head_width=16,
                                      pool_type='avg'),
        text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))
    root = tmp_path_factory.mktemp('clip')
    return {name: write_random_clip_checkpoint(str(root / f'{name}.pt'), name, seed=1)
            for name in (TINY_CLIP_NAME, DEMO_CLIP_NAME, AVG_VIT_NAME)}


@pytest.mark.parametrize('name', [TINY_CLIP_NAME, DEMO_CLIP_NAME, AVG_VIT_NAME])
def test_pooled_embedding_equals_open_clip_encode_image(checkpoints, name):
    model = open_clip.create_model(name, pretrained=checkpoints[name]).eval()
    backbone = CLIPVisionBackbone(name, checkpoints[name]).eval()
    size = model.visual.image_size
    x = torch.randn(2, 3, *((size, size) if isinstance(size, int) else size))
    with torch.no_grad():
        assert torch.allclose(backbone.encode_image(x), model.encode_image(x), atol=1e-5)


def test_vit_dense_maps_are_the_patch_tokens_and_the_projection(checkpoints):
    model = open_clip.create_model(AVG_VIT_NAME, pretrained=checkpoints[AVG_VIT_NAME]).eval()
    backbone = CLIPVisionBackbone(AVG_VIT_NAME, checkpoints[AVG_VIT_NAME], out_indices=(0, -1),
                                  out_proj=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        first, last, proj = backbone(x)
        out = model.visual.forward_intermediates(x, indices=[0, 1], output_fmt='NCHW')
        assert first.shape == (2, 32, 4, 4) and proj.shape == (2, 16, 4, 4)
        assert torch.allclose(first, out['image_intermediates'][0], atol=1e-5)
        assert torch.allclose(last, out['image_intermediates'][1], atol=1e-5)
        # avg pooling: the mean of the projected tokens is the image embedding
        assert torch.allclose(proj.mean(dim=(2, 3)), model.encode_image(x), atol=1e-5)
        # any input size: 48 x 40 px -> a 6 x 5 grid
        assert [o.shape[-2:] for o in backbone(torch.randn(1, 3, 48, 40))] == [(6, 5)] * 3


def test_resnet_stages_and_dense_projection(checkpoints):
    backbone = CLIPVisionBackbone(DEMO_CLIP_NAME, checkpoints[DEMO_CLIP_NAME], out_proj=True).eval()
    x = torch.randn(1, 3, 128, 96)
    outs = backbone(x)
    assert [tuple(o.shape[1:]) for o in outs] == [(128, 32, 24), (256, 16, 12), (512, 8, 6),
                                                    (1024, 4, 3), (128, 4, 3)]


def test_resized_position_embedding_resizes_back_to_the_original():
    # a smooth field, like trained position embeddings: 4 channels of low-frequency waves on 8 x 8
    yy, xx = torch.meshgrid(torch.arange(8.) / 8, torch.arange(8.) / 8, indexing='ij')
    grid = torch.stack([torch.sin(2 * xx), torch.cos(3 * yy), xx * yy, torch.sin(xx + yy)], dim=-1)
    pos = torch.cat([torch.randn(1, 4), grid.reshape(64, 4)])  # class token first
    assert resize_pos_embed(pos, (8, 8)) is pos
    assert resize_pos_embed(pos, (16, 12)).shape == (1 + 16 * 12, 4)
    up = resize_pos_embed(pos, (16, 16))
    assert torch.equal(up[0], pos[0])
    back = resize_pos_embed(up, (8, 8))
    assert (back - pos).abs().max() < 0.02
    with pytest.raises(ValueError, match='not a square grid'):
        resize_pos_embed(pos[:-1], (4, 4))


def test_frozen_by_default_and_loads_through_init_cfg_with_no_missing_keys(checkpoints):
    path = checkpoints[DEMO_CLIP_NAME]
    backbone = MODELS.build(dict(type='CLIPVisionBackbone', model_name=DEMO_CLIP_NAME,
                                 init_cfg=dict(type='Pretrained', checkpoint=path, prefix='visual.')))
    assert DET_MODELS.get('CLIPVisionBackbone') is CLIPVisionBackbone
    state = _load_checkpoint_with_prefix('visual.', path)
    result = backbone.load_state_dict(state, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    backbone.init_weights()
    reference = CLIPVisionBackbone(DEMO_CLIP_NAME, path)
    for key, value in reference.state_dict().items():
        assert torch.equal(backbone.state_dict()[key], value), key
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training and not backbone.bn1.training
    trainable = CLIPVisionBackbone(DEMO_CLIP_NAME, path, frozen=False).train()
    assert all(p.requires_grad for p in trainable.parameters())
    assert trainable.training and not trainable.bn1.training  # norm_eval keeps batch statistics


def test_bad_arguments_name_the_fix(checkpoints):
    with pytest.raises(ValueError, match='out_indices'):
        CLIPVisionBackbone(DEMO_CLIP_NAME, checkpoints[DEMO_CLIP_NAME], out_indices=(4, ))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        CLIPVisionBackbone(DEMO_CLIP_NAME, '/no/such/clip.pt')
    with pytest.raises(ValueError, match='not an open_clip model config'):
        CLIPVisionBackbone('No-Such-Model', None)


def test_layer_wise_learning_rate_decay_of_a_trainable_tower(checkpoints):
    from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
    from torch import nn

    from mmseg_clip_wsss.engine import CLIPLayerDecayOptimizerConstructor as Constructor
    assert OPTIM_WRAPPER_CONSTRUCTORS.get('CLIPLayerDecayOptimizerConstructor') is Constructor

    class Model(nn.Module):
        def __init__(self, name):
            super().__init__()
            self.backbone = CLIPVisionBackbone(name, checkpoints[name], frozen=False)
            self.head = nn.Linear(4, 2)

    model = Model(AVG_VIT_NAME)  # 2 blocks: layers 0 (embedding), 1, 2 (blocks), 3 (ln_post, proj)
    wrapper = Constructor(dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
                          dict(decay_rate=0.5))(model)
    lr_of = {id(p): (g['lr'], g['weight_decay']) for g in wrapper.optimizer.param_groups for p in g['params']}
    bb = model.backbone
    assert lr_of[id(bb.conv1.weight)] == (0.5 ** 3, 0.05)
    assert lr_of[id(bb.positional_embedding)] == (0.5 ** 3, 0.)  # embeddings: no weight decay
    assert lr_of[id(bb.transformer.resblocks[0].attn.in_proj_weight)] == (0.5 ** 2, 0.05)
    assert lr_of[id(bb.transformer.resblocks[1].mlp.c_fc.weight)] == (0.5, 0.05)
    assert lr_of[id(bb.proj)][0] == 1.0 and lr_of[id(model.head.weight)] == (1.0, 0.05)
    assert len(lr_of) == sum(1 for _ in model.parameters())  # every parameter in exactly one group
    resnet = Model(DEMO_CLIP_NAME).backbone
    assert [resnet.layer_id(n) for n in ('conv1.weight', 'layer1.0.conv1.weight', 'layer4.0.bn1.bias',
                                         'attnpool.q_proj.weight')] == [0, 1, 4, 5]
    with pytest.raises(ValueError, match='decay_rate'):
        Constructor(dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0)))


def test_weclip_style_config_trains_with_the_tower_frozen_and_the_memory_bank_updating(checkpoints, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmseg_clip_wsss.datasets.synthetic import make_demo_data
    root = tmp_path / 'demo'
    make_demo_data(str(root), seed=0, num_train=4, num_val=1, size=64, show_progress=False)
    cfg = Config.fromfile(str(REPO / 'configs/demo/clip_wsss_clip-rn_demo.py'))
    ckpt = checkpoints[DEMO_CLIP_NAME]
    cfg.merge_from_dict({
        'model.backbone.pretrained': ckpt, 'model.text_encoder.pretrained': ckpt,
        'train_dataloader.dataset.data_root': str(root), 'train_dataloader.batch_size': 2,
        'train_cfg.max_iters': 2, 'train_cfg.val_interval': 100, 'work_dir': str(tmp_path / 'work'),
        'default_hooks.checkpoint.interval': 100, 'default_hooks.logger.interval': 1})
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    model = runner.model
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}  # batch-norm statistics too
    bank_before = model.neck.memory_bank.prototypes.clone()
    head_before = {k: v.clone() for k, v in model.decode_head.state_dict().items()}
    runner.train()
    assert runner.iter == 2
    assert all(p.grad is None and not p.requires_grad for p in model.backbone.parameters())
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert model.neck.memory_bank.initialized.any()
    assert not torch.equal(model.neck.memory_bank.prototypes, bank_before)
    assert any(not torch.equal(v, head_before[k]) for k, v in model.decode_head.state_dict().items())
