"""It keeps working and loses nothing: exact resume after SIGKILL, and bad input that fails with the
file and the fix named.

Bad input covered elsewhere (not repeated here): corrupt / truncated JPEG, image listed in the split
file but missing, label file with unknown classes, grayscale and RGBA images
(tests/test_datasets.py); ``num_classes`` of the model disagreeing with the text encoder and empty
``class_names`` at build time (tests/test_segmentor.py, tests/test_text_encoder.py). Here: 16-bit
images, the config-level class checks (naming the config file), checkpoints of another config, and
non-finite losses.
"""
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import save_checkpoint
from mmseg.registry import MODELS
from PIL import Image

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.apis import ConfigMismatchError
from mmseg_clip_wsss.cam.run import build_cam_model
from mmseg_clip_wsss.cli.test import main as run_test_tool  # not a test
from mmseg_clip_wsss.cli.train import main as train_main
from mmseg_clip_wsss.datasets import LoadWSSSImage
from mmseg_clip_wsss.datasets.synthetic import make_demo_data
from mmseg_clip_wsss.engine import (VERIFIED_MMENGINE, CheckpointMismatchError,
                                    MMEngineInternalsError, NonFiniteLossError, RNGStateHook,
                                    capture_rng_state, check_checkpoint_fits,
                                    check_mmengine_internals, restore_rng_state)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_helpers import (DEMO_CONFIG, REPO, cfg_options, run_env, write_config,  # noqa: E402
                         write_probe_module)


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('robust') / 'demo'
    make_demo_data(str(root), seed=0, num_train=8, num_val=4, size=64, show_progress=False)
    return root


def demo_argv(data_root, clip, work_dir, *extra, **options):
    """``tools/train.py`` arguments of a tiny in-process run of the demo config."""
    return [str(DEMO_CONFIG), '--work-dir', str(work_dir),
            *cfg_options(data_root, clip, **options), *extra]


# ------------------------------------------------------------------------------------------------
# exact resume
# ------------------------------------------------------------------------------------------------
def _train_cmd(config, work_dir, data_root, clip, *extra):
    # 4 iterations; checkpoint and validation at 2 and 4; drop path and augmentation draw random numbers
    return [sys.executable, str(REPO / 'tools' / 'train.py'), str(config), '--work-dir', str(work_dir),
            *extra, *cfg_options(data_root, clip, max_iters=4, interval=2)]


def _flatten(obj, prefix=''):
    """Every tensor / number of a nested checkpoint entry, by path."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f'{prefix}{k}/'))
        return out
    if isinstance(obj, (list, tuple)):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flatten(v, f'{prefix}{i}/'))
        return out
    return {prefix.rstrip('/'): obj}


def test_resume_after_sigkill_matches_the_uninterrupted_run(tmp_path, data_root, tiny_clip):
    clip = tiny_clip['pretrained']
    probe = write_probe_module(tmp_path / 'probe')
    plain = write_config(tmp_path / 'plain.py')
    marker = tmp_path / 'checkpointed'
    stalling = write_config(tmp_path / 'stalling.py', [
        f'dict(type="StallAfterIterHook", at_iter=2, marker={str(marker)!r})'])
    env = run_env(probe)
    # the runs one after the other: each has the cores to itself, no deadline depends on speed
    full = subprocess.run(_train_cmd(plain, tmp_path / 'full', data_root, clip), env=env,
                          capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]
    killed = subprocess.Popen(_train_cmd(stalling, tmp_path / 'killed', data_root, clip), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not marker.exists() and killed.poll() is None:  # it stalls (900 s) once the marker is written
        time.sleep(0.5)
    assert marker.exists(), 'the run to kill exited before its first checkpoint'
    killed.send_signal(signal.SIGKILL)  # right after iter_2.pth was written
    assert killed.wait(timeout=60) == -signal.SIGKILL
    assert (tmp_path / 'killed' / 'iter_2.pth').exists()
    assert not (tmp_path / 'killed' / 'iter_4.pth').exists()

    resumed = subprocess.run(_train_cmd(plain, tmp_path / 'killed', data_root, clip, '--resume'),
                             env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert 'Advance dataloader 2 steps' in resumed.stdout + resumed.stderr

    ref = torch.load(tmp_path / 'full' / 'iter_4.pth', weights_only=True)
    got = torch.load(tmp_path / 'killed' / 'iter_4.pth', weights_only=True)
    assert got['meta']['iter'] == ref['meta']['iter'] == 4
    for key in ('state_dict', 'optimizer', 'param_schedulers', 'rng_state'):
        a, b = _flatten(ref[key]), _flatten(got[key])
        assert a.keys() == b.keys(), key
        for name, value in a.items():
            other = b[name]
            if isinstance(value, torch.Tensor):
                assert value.shape == other.shape, name
                if value.is_floating_point():
                    assert torch.allclose(value, other, rtol=0, atol=1e-6), (key, name)
                else:
                    assert torch.equal(value, other), (key, name)
            elif isinstance(value, float):
                assert value == pytest.approx(other, abs=1e-6) or (math.isnan(value)
                                                                   and math.isnan(other)), name
            else:
                assert value == other, (key, name)
    # what must be restored does change during training: the comparison is not vacuous
    assert ref['state_dict']['neck.memory_bank.initialized'].any()
    assert ref['optimizer']['state'] and ref['rng_state']['states']


def test_mmengine_internals_of_exact_resume_are_pinned_and_present():
    """Exact resume reaches into private mmengine internals: the version they were verified on is
    pinned in one place (and agrees with the install pin), and each internal is checked by name."""
    import mmengine
    checked = check_mmengine_internals()
    assert {'Runner._train_loop', 'InfiniteSampler._indices_of_rank',
            'IterBasedTrainLoop.dataloader_iterator'} <= set(checked)
    pinned = re.search(r'^mmengine==(\S+)', (REPO / 'requirements/runtime.txt').read_text(), re.M)
    assert pinned.group(1) == VERIFIED_MMENGINE, 'requirements/runtime.txt and VERIFIED_MMENGINE differ'
    assert mmengine.__version__ == VERIFIED_MMENGINE, (
        f'mmengine {mmengine.__version__} is installed; exact resume was verified on '
        f'{VERIFIED_MMENGINE}: re-verify mmseg_clip_wsss/engine/mmengine_internals.py')


def test_a_missing_mmengine_internal_stops_the_resume_naming_it(monkeypatch):
    """A changed internal fails loudly instead of skipping a step of the resume silently."""
    from types import SimpleNamespace

    from mmengine.dataset import InfiniteSampler
    from mmengine.runner import BaseLoop

    class Loop(BaseLoop):
        def __init__(self, dataloader):
            self.dataloader = dataloader

        def run(self):
            pass

    sampler = InfiniteSampler(list(range(4)), shuffle=True, seed=0)
    loop = Loop(SimpleNamespace(sampler=sampler, batch_sampler=None))
    runner = SimpleNamespace(_train_loop=loop, train_loop=loop)
    monkeypatch.delattr(InfiniteSampler, '_indices_of_rank')
    with pytest.raises(MMEngineInternalsError, match='InfiniteSampler._indices_of_rank'):
        RNGStateHook()._reseed_sampler(runner, seed=1)


def test_rng_state_round_trip():
    state = capture_rng_state()
    first = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    random.random(), np.random.rand(7), torch.randn(5)  # move on
    restore_rng_state(state)
    assert (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()) == first


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_16_bit_images_are_converted_to_8_bit(tmp_path, backend):
    gray16 = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000)  # up to 57000
    rgb16 = np.stack([gray16, gray16 // 2, 65535 - gray16], axis=2)  # RGB order
    gray_path, rgb_path = tmp_path / 'gray16.png', tmp_path / 'rgb16.png'
    assert cv2.imwrite(str(gray_path), gray16)
    assert cv2.imwrite(str(rgb_path), rgb16[..., ::-1])  # OpenCV writes BGR
    for path, expected in ((gray_path, np.repeat(gray16[..., None], 3, axis=2)),
                           (rgb_path, rgb16[..., ::-1])):  # the loader gives BGR, like mmcv
        for color_type in ('color', 'unchanged'):
            out = LoadWSSSImage(color_type=color_type, imdecode_backend=backend)(
                dict(img_path=str(path)))
            img = out['img']
            assert img.dtype == np.uint8 and img.shape == (4, 5, 3), (path, color_type)
            # the 16-bit range is scaled to 8 bits (not clipped at 255)
            assert np.abs(img.astype(int) - (expected >> 8).astype(int)).max() <= 1, (path, color_type)


def test_empty_class_list_names_the_config(data_root, tiny_clip, tmp_path):
    with pytest.raises(ConfigMismatchError) as err:
        train_main(demo_argv(data_root, tiny_clip['pretrained'], tmp_path,
                             '--cfg-options', 'model.text_encoder.class_names=[]'))
    message = str(err.value)
    assert str(DEMO_CONFIG) in message and 'class_names is empty' in message
    assert isinstance(err.value, ValueError)


def test_num_classes_disagreeing_with_vocabulary_or_prompts_names_the_config(data_root, tiny_clip,
                                                                            tmp_path):
    clip = tiny_clip['pretrained']
    with pytest.raises(ConfigMismatchError) as err:
        train_main(demo_argv(data_root, clip, tmp_path, '--cfg-options',
                             'model.decode_head.num_classes=21', 'model.neck.num_classes=21'))
    message = str(err.value)
    assert str(DEMO_CONFIG) in message
    assert "model.decode_head.num_classes=21 but the vocabulary model.text_encoder.class_names='demo' " \
           'has 9 classes' in message
    assert 'train_dataloader.dataset has 9 classes' in message  # the dataset disagrees as well
    with pytest.raises(ConfigMismatchError) as err:
        train_main(demo_argv(data_root, clip, tmp_path, '--cfg-options',
                             'model.text_encoder.prompt.num_classes=20'))
    assert str(DEMO_CONFIG) in str(err.value)
    assert 'prompt.num_classes=20 disagrees with the 9 classes' in str(err.value)
    with pytest.raises(ConfigMismatchError, match='neck.num_classes=5 .*the 9 classes of '
                                                  'model.text_encoder.class_names'):
        train_main(demo_argv(data_root, clip, tmp_path, '--cfg-options', 'model.neck.num_classes=5'))
    with pytest.raises(ConfigMismatchError, match='neck.num_classes=5 .*decode_head.num_classes=9'):
        train_main(demo_argv(data_root, clip, tmp_path, '--cfg-options', 'model.neck.num_classes=5',
                             'model.decode_head.num_classes=9'))


def test_checkpoint_of_another_config_names_file_keys_and_shapes(data_root, tiny_clip, tmp_path):
    clip = tiny_clip['pretrained']
    # a checkpoint of the demo model with 48 neck channels instead of 64
    cfg = Config.fromfile(str(DEMO_CONFIG))
    cfg.model.text_encoder.pretrained = clip
    cfg.model.neck.channels = 48
    cfg.model.decode_head.in_channels = 48
    other = MODELS.build(cfg.model)
    ckpt = tmp_path / 'other_config.pth'
    save_checkpoint(dict(state_dict=other.state_dict(), meta=dict()), str(ckpt))

    with pytest.raises(CheckpointMismatchError) as err:  # tools/test.py
        run_test_tool([str(DEMO_CONFIG), str(ckpt), '--work-dir', str(tmp_path / 'test'),
                   *cfg_options(data_root, clip)])
    message = str(err.value)
    assert f'checkpoint {ckpt}' in message
    assert 'shape mismatch (35 tensor(s))' in message
    assert 'neck.memory_bank.prototypes: checkpoint (9, 48) vs model (9, 64)' in message
    assert ('neck.lateral_convs.0.conv.weight: checkpoint (48, 32, 1, 1) vs model (64, 32, 1, 1)'
            in message)
    assert "checkpoint['meta']['cfg']" in message
    # load_from
    with pytest.raises(CheckpointMismatchError, match='neck.memory_bank.prototypes: checkpoint'):
        train_main(demo_argv(data_root, clip, tmp_path / 'train', '--cfg-options',
                             f'load_from={ckpt}'))
    pseudo_cfg = Config.fromfile(str(DEMO_CONFIG))
    pseudo_cfg.model.text_encoder.pretrained = clip
    with pytest.raises(CheckpointMismatchError, match=str(ckpt)):  # tools/make_pseudo_masks.py
        build_cam_model(pseudo_cfg, str(ckpt), 'cpu')

    # DDP checkpoints ('module.' prefix) and a fitting checkpoint pass; a partial one is refused
    model = MODELS.build(pseudo_cfg.model)
    state = model.state_dict()
    check_checkpoint_fits(model, {f'module.{k}': v for k, v in state.items()}, 'ddp.pth')
    partial = {k: v for k, v in state.items() if not k.startswith('decode_head.')}
    with pytest.raises(CheckpointMismatchError, match='missing from the checkpoint: decode_head'):
        check_checkpoint_fits(model, partial, 'partial.pth')
    check_checkpoint_fits(model, partial, 'partial.pth', allow_missing=True)


@pytest.mark.parametrize('term,value', [('loss_itc', 'nan'), ('loss_mlc', 'inf')])
def test_non_finite_loss_stops_naming_iteration_and_term(data_root, tiny_clip, tmp_path, term, value):
    work_dir = tmp_path / 'nan'
    with pytest.raises(NonFiniteLossError) as err:
        train_main(demo_argv(data_root, tiny_clip['pretrained'], work_dir, '--cfg-options',
                             f'model.decode_head.{term}.loss_weight={value}', max_iters=2))
    message = str(err.value)
    assert isinstance(err.value, FloatingPointError)
    assert 'non-finite loss at iteration 1 of 2' in message
    assert f"loss term(s) decode.{term}" in message
    assert str(DEMO_CONFIG) in message and 'JPEGImages' in message and '.jpg' in message
    assert 'optim_wrapper.optimizer.lr' in message
    assert not list(work_dir.rglob('*.pth'))  # stopped before any checkpoint
