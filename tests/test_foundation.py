"""The ground the plugin stands on: the stack imports, shims work, mmseg's own configs train and resume
through our ``tools/train.py`` machinery."""
import copyreg
import io
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS
from PIL import Image

import mmseg_clip_wsss
from mmseg_clip_wsss.cli.train import build_train_config
from mmseg_clip_wsss.cli.train import main as train_main

REPO = Path(__file__).resolve().parents[1]
SWIN_UPERNET = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'


def test_stack_imports_with_compiled_ops():
    """mmcv's compiled CPU ops are present and usable."""
    out = subprocess.run(
        [sys.executable, '-c', 'import mmseg_clip_wsss, mmseg, mmdet; from mmcv.ops import nms, roi_align'],
        capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'pkg_resources' not in out.stderr  # mmdet -> imagecorruptions -> pkg_resources, silenced
    from mmcv.ops import nms, roi_align
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    feat = torch.arange(16.).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0., 0., 0., 4., 4.]])
    pooled = roi_align(feat, rois, (2, 2), 1.0, 2, 'avg', True)
    assert pooled.shape == (1, 1, 2, 2)
    assert torch.allclose(pooled.mean(), feat.mean())


def test_weights_only_load_of_mmengine_checkpoint_objects():
    """numpy scalars/arrays and HistoryBuffers load under torch.load's weights_only default."""
    buffer = HistoryBuffer()
    buffer.update(1.5)
    buffer.update(2.5)
    ckpt = {'meta': {'seed': np.int64(3), 'mean': np.array([1.0, 2.0]), 'lr': np.float32(0.1)},
            'message_hub': {'log_scalars': {'loss': buffer}}}
    stream = io.BytesIO()
    torch.save(ckpt, stream)
    stream.seek(0)
    loaded = torch.load(stream)  # weights_only=True is torch's default
    assert loaded['meta']['seed'] == 3
    np.testing.assert_array_equal(loaded['meta']['mean'], [1.0, 2.0])
    assert loaded['message_hub']['log_scalars']['loss'].mean() == pytest.approx(2.0)


def test_weights_only_still_refuses_arbitrary_objects():
    """The shim allow-lists types; it does not turn the safe loader off."""
    stream = io.BytesIO()
    torch.save({'obj': Path('x')}, stream)
    stream.seek(0)
    with pytest.raises(Exception, match='weights_only'):
        torch.load(stream)


class _GetattrOf:
    """Pickles as ``getattr(owner, name)``: what a crafted checkpoint uses to reach a method."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


def _saved(obj) -> io.BytesIO:
    stream = io.BytesIO()
    torch.save(obj, stream)
    stream.seek(0)
    return stream


@pytest.mark.parametrize('owner, name', [(np.ndarray, 'tofile'), (HistoryBuffer, '__init__'),
                                         (HistoryBuffer, 'register_statistics')])
def test_weights_only_refuses_a_crafted_getattr(owner, name):
    """No general-purpose getattr is allow-listed: a pickle fetching an attribute through it fails."""
    with pytest.raises(pickle.UnpicklingError, match='getattr'):
        torch.load(_saved({'x': _GetattrOf(owner, name)}))


def test_history_buffers_pickle_without_method_references():
    buffer = HistoryBuffer()
    buffer.update(1.0)
    buffer.update(3.0, count=2)
    data = pickle.dumps({'loss': buffer}, protocol=2)  # torch.save's protocol
    assert b'getattr' not in data
    loaded = torch.load(_saved({'loss': buffer}))['loss']
    assert loaded.mean() == pytest.approx(4.0 / 3) and loaded.max_length == buffer.max_length
    assert loaded.statistics('max') == 3.0


def test_checkpoints_with_getattr_history_buffers_of_the_old_pickling_load(monkeypatch):
    """Checkpoints written before (mmengine's own pickling: its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``, ...) load through an exact mapping of those references."""
    buffer = HistoryBuffer()
    buffer.update(2.0)
    monkeypatch.delitem(copyreg.dispatch_table, HistoryBuffer)  # mmengine's pickling, as before
    stream = _saved({'message_hub': {'log_scalars': {'train/loss': buffer}}})
    monkeypatch.undo()
    assert b'getattr' in stream.getvalue()
    loaded = torch.load(stream)['message_hub']['log_scalars']['train/loss']
    assert isinstance(loaded, HistoryBuffer) and loaded.mean() == pytest.approx(2.0)


def test_plugin_registers_into_mm_registries():
    from mmdet.registry import MODELS as DET_MODELS
    from mmseg.registry import MODELS
    assert mmseg_clip_wsss.__version__
    assert MODELS.get('CLIPPromptTextEncoder') is not None
    assert DET_MODELS.get('RSCANeck') is not None


def _write_ade_like_data(root: Path, n: int = 4, size: int = 64) -> None:
    rng = np.random.default_rng(0)
    (root / 'images' / 'training').mkdir(parents=True)
    (root / 'annotations' / 'training').mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            root / 'images' / 'training' / f'img_{i}.jpg')
        Image.fromarray(rng.integers(0, 151, (size, size), dtype=np.uint8)).save(
            root / 'annotations' / 'training' / f'img_{i}.png')


@HOOKS.register_module(force=True)
class RecordStartIterHook(Hook):
    """Records the iteration a training run starts from (after any resume)."""
    started_at = []

    def before_train(self, runner):
        RecordStartIterHook.started_at.append(runner.iter)


def test_mmseg_swin_upernet_trains_and_resumes(tmp_path):
    """mmseg's own Swin-T UperNet config trains 2 iterations, checkpoints, and resumes at iteration 2."""
    data_root = tmp_path / 'ade'
    _write_ade_like_data(data_root)
    config = tmp_path / 'swin_upernet_tiny_run.py'
    config.write_text(f"""
_base_ = ['{SWIN_UPERNET}']
crop_size = (64, 64)
model = dict(data_preprocessor=dict(size=crop_size), backbone=dict(init_cfg=None))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root='{data_root}', pipeline=train_pipeline))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
train_cfg = dict(max_iters=2, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
custom_hooks = [dict(type='RecordStartIterHook')]
""")
    work_dir = tmp_path / 'work'
    RecordStartIterHook.started_at.clear()
    runner = train_main([str(config), '--work-dir', str(work_dir)])
    assert runner.iter == 2
    assert (work_dir / 'iter_2.pth').is_file()
    weights_after_2 = {k: v.clone() for k, v in runner.model.state_dict().items()}

    # A second run with a longer schedule resumes from iter_2.pth (loaded with weights_only=True).
    cfg = build_train_config([str(config), '--work-dir', str(work_dir), '--resume',
                              '--cfg-options', 'train_cfg.max_iters=3'])
    assert cfg.resume is True and cfg.work_dir == str(work_dir)
    runner = train_main([str(config), '--work-dir', str(work_dir), '--resume',
                         '--cfg-options', 'train_cfg.max_iters=3'])
    assert RecordStartIterHook.started_at == [0, 2]
    assert runner.iter == 3
    assert (work_dir / 'iter_3.pth').is_file()
    # the resumed run started from the saved weights, then trained one more step
    changed = [k for k, v in runner.model.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, weights_after_2[k])]
    assert changed, 'the resumed iteration did not update any weight'


def test_train_config_arguments(tmp_path):
    config = tmp_path / 'c.py'
    config.write_text(f"_base_ = ['{SWIN_UPERNET}']\n")
    cfg = build_train_config([str(config), '--amp', '--cfg-options', 'train_cfg.max_iters=7'])
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.train_cfg.max_iters == 7
    assert cfg.work_dir.endswith('work_dirs/c')
    assert cfg.resume is False


def test_tool_scripts_exist_and_are_executable():
    for name in ['train.py', 'test.py', 'dist_train.sh', 'dist_test.sh']:
        assert (REPO / 'tools' / name).is_file(), name
    for name in ['dist_train.sh', 'dist_test.sh']:
        assert (REPO / 'tools' / name).stat().st_mode & 0o111, name
    out = subprocess.run([sys.executable, str(REPO / 'tools' / 'train.py'), '--help'],
                         capture_output=True, text=True)
    assert out.returncode == 0 and '--resume' in out.stdout and '--cfg-options' in out.stdout
