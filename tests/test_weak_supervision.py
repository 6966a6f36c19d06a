"""Stage 1 never trains on masks: the real demo model (``configs/demo/clip_wsss_swin_demo.py``) gives
the same weak losses whatever masks the samples carry, trains with every mask file deleted, and
refuses an auxiliary head (which would train on ``gt_sem_seg``)."""
import copy
import shutil
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.cli.train import main as train_main
from mmseg_clip_wsss.datasets.synthetic import make_demo_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_helpers import DEMO_CONFIG, cfg_options  # noqa: E402


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


@pytest.fixture(scope='module')
def demo_src(tmp_path_factory):
    """A tiny demo dataset (8 train + 4 val images of 64 px)."""
    root = tmp_path_factory.mktemp('weak') / 'demo'
    make_demo_data(str(root), seed=0, num_train=8, num_val=4, size=64, show_progress=False)
    return root


def demo_model_cfg(clip: str) -> Config:
    cfg = Config.fromfile(str(DEMO_CONFIG))
    cfg.model.text_encoder.pretrained = clip
    return cfg


def batch_with_gt_masks(cfg: Config, data_root: Path, model) -> dict:
    """Four train images with their image labels *and* GT masks (the CAM loader reads both),
    preprocessed as in training."""
    dataset_cfg = copy.deepcopy(cfg.cam_dataloader.dataset)
    dataset_cfg.data_root = str(data_root)
    dataset = DATASETS.build(dataset_cfg)
    data = model.data_preprocessor(pseudo_collate([dataset[i] for i in range(4)]), training=True)
    assert all('gt_sem_seg' in s for s in data['data_samples'])
    return data


def test_weak_losses_are_the_same_with_any_masks_or_none(demo_src, tiny_clip):
    cfg = demo_model_cfg(tiny_clip['pretrained'])
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert model.decode_head.is_weak and not model.with_auxiliary_head
    data = batch_with_gt_masks(cfg, demo_src, model)
    gt_samples = data['data_samples']
    no_masks = copy.deepcopy(gt_samples)
    for sample in no_masks:
        del sample.gt_sem_seg
    wrong_masks = copy.deepcopy(gt_samples)
    for sample in wrong_masks:  # every pixel another class than the GT says
        sample.gt_sem_seg = PixelData(data=(sample.gt_sem_seg.data + 1) % model.decode_head.num_classes)

    losses = {}
    for name, samples in (('gt', gt_samples), ('none', no_masks), ('wrong', wrong_masks)):
        trained = copy.deepcopy(model).train()  # the memory bank update of one run must not leak
        torch.manual_seed(1)  # drop path
        losses[name] = {k: v.detach() for k, v in trained.loss(data['inputs'], samples).items()}
    assert set(losses['gt']) == {'decode.loss_mlc', 'decode.loss_itc', 'neck.loss_region_nce'}
    assert losses['gt']['decode.loss_mlc'] > 0
    for name in ('none', 'wrong'):
        assert losses[name].keys() == losses['gt'].keys()
        for key, value in losses['gt'].items():
            assert torch.equal(losses[name][key], value), (name, key)


def test_weak_training_runs_with_every_mask_file_deleted(demo_src, tiny_clip, tmp_path):
    data_root = tmp_path / 'demo'
    shutil.copytree(demo_src, data_root)
    shutil.rmtree(data_root / 'SegmentationClass')
    work_dir = tmp_path / 'work'
    runner = train_main([
        str(DEMO_CONFIG), '--work-dir', str(work_dir),
        *cfg_options(data_root, tiny_clip['pretrained'], max_iters=2),
        'val_dataloader=None', 'val_cfg=None', 'val_evaluator=None'])
    assert runner.iter == 2
    assert (work_dir / 'iter_2.pth').is_file()
    state = torch.load(work_dir / 'iter_2.pth', weights_only=False)['state_dict']
    assert state['neck.memory_bank.initialized'].any()  # the weak losses ran on the labels
    assert not (data_root / 'SegmentationClass').exists()


def test_auxiliary_head_is_refused_in_weak_mode(tiny_clip):
    cfg = demo_model_cfg(tiny_clip['pretrained'])
    cfg.model.auxiliary_head = dict(
        type='FCNHead', in_channels=64, channels=16, num_convs=1, num_classes=9,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4))
    with pytest.raises(ValueError, match='auxiliary_head trains on masks.*remove auxiliary_head'):
        MODELS.build(cfg.model)
    cfg.model.decode_head.supervision = 'full'  # on masks (stage 2) it is allowed
    model = MODELS.build(cfg.model)
    assert model.with_auxiliary_head and not model.decode_head.is_weak
