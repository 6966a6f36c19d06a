"""Bad input to the command-line tools: each is refused with a message that names the option or file
and the fix, before any work, and no finished output is lost."""
import glob
import hashlib
import importlib
import json
import os
import os.path as osp
import re
import shutil
import sys
import types

import numpy as np
import open_clip.factory
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import Registry, init_default_scope
from PIL import Image
from test_pseudo_mask_speed import _tool_config  # the PMSpeedStub config of the pseudo-mask tool tests

from mmseg_clip_wsss.apis.preflight import ConfigMismatchError, MissingAssetError, read_config
from mmseg_clip_wsss.apis.runner import check_resume_checkpoint
from mmseg_clip_wsss.apis.segment import segment_images
from mmseg_clip_wsss.cam import postprocess
from mmseg_clip_wsss.cam import run as cam_run
from mmseg_clip_wsss.cam.protocol import DEFAULT_PROTOCOL
from mmseg_clip_wsss.cam.run import UnknownSplitError, check_protocol, model_record
from mmseg_clip_wsss.datasets import file_stamps
from mmseg_clip_wsss.cli import device_arg
from mmseg_clip_wsss.cli import make_pseudo_masks as make_pseudo_masks_cli
from mmseg_clip_wsss.cli.benchmark import main as benchmark_main
from mmseg_clip_wsss.cli.runner_args import merge_cfg_options, naming_cfg_options
from mmseg_clip_wsss.cli.train import parse_args as train_parse_args
from mmseg_clip_wsss.datasets import (CorruptImageError, DatasetError, MissingDatasetFileError, atomic_file,
                                      check_data_root, write_json_atomically, write_palette_png)
from mmseg_clip_wsss.datasets.synthetic import make_demo_data
from mmseg_clip_wsss.engine import WeightFileError, load_weight_file
from mmseg_clip_wsss.models import (DEMO_CLIP_NAME, TINY_CLIP_NAME, load_open_clip,
                                    write_random_clip_checkpoint)
from mmseg_clip_wsss.models.open_clip_models import DEMO_CLIP_VIT_NAME
from mmseg_clip_wsss.models.text.prompt_learner import _check_templates
from mmseg_clip_wsss.registry import DATASETS, TRANSFORMS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# Every tool with a --device option, and the least command line it parses.
DEVICE_TOOLS = {
    'make_pseudo_masks': ['missing_config.py', '--out-dir', 'out'],
    'segment': ['missing.png', '--config', 'missing_config.py', '--checkpoint', 'missing.pth',
                '--out-dir', 'out'],
    'tune_prompts': ['missing_config.py'],
    'robustness': ['missing_config.py', 'missing.pth'],
    'benchmark': [],
    'benchmark_memory': ['--spec', '{}'],
}


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 0)


@pytest.mark.parametrize('tool', sorted(DEVICE_TOOLS))
def test_device_cuda_without_a_gpu_is_refused_before_any_work(tool, no_gpu, capsys):
    cli = importlib.import_module(f'mmseg_clip_wsss.cli.{tool}')
    argv = DEVICE_TOOLS[tool] + ['--device', 'cuda']
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)  # the config / images do not exist: the device is refused before they are read
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert 'argument --device' in err and 'CUDA is not available' in err and 'use --device cpu' in err
    assert cli.parse_args(DEVICE_TOOLS[tool] + ['--device', 'cpu']).device == 'cpu'


def test_device_arg_refuses_a_missing_gpu_index_and_a_misspelt_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert device_arg('cuda:1') == 'cuda:1'
    with pytest.raises(Exception, match=r'2 CUDA device\(s\), cuda:0 to cuda:1; use --device cpu'):
        device_arg('cuda:2')
    with pytest.raises(Exception, match="'gpu' is not a device .*use cpu, cuda or cuda:N"):
        device_arg('gpu')


# --------------------------------------------------------------------------- Ctrl-C
def _interrupt_at(name, original):
    """A write_palette_png that is interrupted (Ctrl-C) when the mask ``name`` is written."""
    def write(path, mask, palette=None):
        if osp.basename(path) == name:
            raise KeyboardInterrupt
        return original(path, mask, palette)
    return write


def test_ctrl_c_in_make_pseudo_masks_is_one_line_exit_130_and_the_rerun_resumes(tmp_path, monkeypatch,
                                                                               capsys):
    cfg, ckpt = _tool_config(tmp_path, 'none')
    out = str(tmp_path / 'masks')
    argv = [cfg, ckpt, '--split', 'val', '--no-progress', '--device', 'cpu', '--out-dir', out]
    monkeypatch.setattr(postprocess, 'write_palette_png',
                        _interrupt_at('im2.png', postprocess.write_palette_png))
    monkeypatch.setattr(sys, 'argv', ['make_pseudo_masks.py', *argv])
    with pytest.raises(SystemExit) as exc:
        make_pseudo_masks_cli.run()
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    assert err.strip().splitlines()[-1] == (
        f'interrupted (Ctrl-C): 2 pseudo mask(s) are finished in {out}; run the same command again to '
        'resume (finished masks are kept and skipped)')
    assert sorted(glob.glob1(out, '*.png')) == ['im0.png', 'im1.png']
    assert not glob.glob(osp.join(out, '**', '.*'), recursive=True)  # no half-written (temporary) file
    monkeypatch.undo()
    again = make_pseudo_masks_cli.main(argv)
    assert (again['written'], again['skipped']) == (3, 2)


@pytest.mark.parametrize('tool,argv,line', [
    ('segment', ['a.png', '--config', 'c.py', '--checkpoint', 'c.pth', '--out-dir', 'OUT'],
     'OUT holds 1 finished image(s) (.png, _overlay.png and .json each); run the same command again'),
    ('tune_prompts', ['c.py'], 'no learned-prompts file was written'),
    ('training_free', ['--out-dir', 'OUT'], 'the masks in OUT are those of an unfinished run'),
    ('dense_open_vocab', ['c.py'], 'no figures were written'),
    ('pretrain_clip', ['--out-dir', 'OUT'], 'stay in OUT; run the same command again to resume'),
    ('train', ['c.py'], 'run the same command with --resume'),
    ('run_demo', ['--work-dir', 'OUT'], 'the finished steps stay in OUT, each with its log; run the same '
     'command again to resume'),
    ('label_efficiency', ['--work-dir', 'OUT'], 'run the same command again to resume'),
    ('robustness', ['c.py', 'c.pth'], 'stopped before the end; run the same command again'),
])
def test_ctrl_c_in_a_long_tool_says_what_is_finished_and_how_to_resume(tool, argv, line, tmp_path,
                                                                       monkeypatch, capsys):
    out = str(tmp_path / 'out')
    os.makedirs(out)
    open(osp.join(out, 'done.json'), 'w').close()
    cli = importlib.import_module(f'mmseg_clip_wsss.cli.{tool}')

    def interrupted(argv=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, 'main', interrupted)
    monkeypatch.setattr(sys, 'argv', [tool, *[out if a == 'OUT' else a for a in argv]])
    with pytest.raises(SystemExit) as exc:
        cli.run()
    assert exc.value.code == 130
    err = capsys.readouterr().err.splitlines()  # one line: no blank line before it
    assert len(err) == 1 and err[0].startswith('interrupted (Ctrl-C): ')
    assert line.replace('OUT', out) in err[0]


def test_the_command_an_interrupted_training_free_row_names_is_accepted(tmp_path, monkeypatch, capsys):
    """The line said "run the same command again", which was then refused (--out-dir with files)."""
    cli = importlib.import_module('mmseg_clip_wsss.cli.training_free')
    out = tmp_path / 'tf'
    argv = ['--out-dir', str(out), '--data-root', str(tmp_path)]

    def interrupted(*args):
        (out / 'im0.png').parent.mkdir(exist_ok=True)
        (out / 'im0.png').write_bytes(b'half a run')
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, 'training_free_row', interrupted)
    monkeypatch.setattr(sys, 'argv', ['training_free', *argv])
    with pytest.raises(SystemExit) as exc:
        cli.run()
    line = capsys.readouterr().err.strip()
    assert exc.value.code == 130 and 'run the same command with --overwrite (it makes every mask anew' in line
    with pytest.raises(FileExistsError, match='pass --overwrite'):  # the plain command is refused ...
        cli.main(argv)
    monkeypatch.setattr(cli, 'training_free_row', lambda *args: {'training_free_miou': 1.0})
    assert cli.main([*argv, '--overwrite']) == {'training_free_miou': 1.0}  # ... the one named is not
    assert 'run the same command again (' in cli.interrupted_line(cli.parse_args([*argv, '--overwrite']))


def test_an_interrupted_atomic_write_leaves_the_old_file(tmp_path):
    path = str(tmp_path / 'row.json')
    write_json_atomically(path, dict(miou=1.0))
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(path) as f:
            f.write('{"miou": ')
            raise KeyboardInterrupt
    with open(path) as f:
        assert json.load(f) == dict(miou=1.0)
    assert os.listdir(tmp_path) == ['row.json']


class _FakeInferencer:
    """Labels every pixel 1; Ctrl-C on the image ``stop``."""
    classes = ('background', 'a')
    model = types.SimpleNamespace(dataset_meta={})

    def __init__(self, stop):
        self.stop, self.calls = stop, 0

    def __call__(self, bgr, return_datasamples=True):
        self.calls += 1
        if self.calls == self.stop:
            raise KeyboardInterrupt
        data = torch.ones(1, *bgr.shape[:2], dtype=torch.long)
        return types.SimpleNamespace(pred_sem_seg=types.SimpleNamespace(data=data))


def test_segment_interrupted_keeps_finished_images_whole(tmp_path):
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f'im{i}.png'))
        Image.fromarray(np.full((8, 10, 3), 40 * i, np.uint8)).save(paths[-1])
    out = str(tmp_path / 'out')
    with pytest.raises(KeyboardInterrupt):
        segment_images(_FakeInferencer(stop=3), paths, out, show_progress=False)
    assert sorted(os.listdir(out)) == ['im0.json', 'im0.png', 'im0_overlay.png',
                                       'im1.json', 'im1.png', 'im1_overlay.png']
    with open(osp.join(out, 'im1.json')) as f:
        assert json.load(f)['classes']['a'] == 100.0


# --------------------------------------------------------------------------- existing outputs
@pytest.mark.parametrize('tool,figures,argv', [
    ('dense_open_vocab', 'dense_open_vocab_figures', ['c.py', '--clip', 'clip.pt']),
    ('open_vocab', 'open_vocab_figures', ['c.py', 'c.pth']),  # it replaced the file without a word
])
def test_open_vocab_tools_refuse_an_existing_out_unless_overwrite(tool, figures, argv, tmp_path, monkeypatch):
    cli = importlib.import_module(f'mmseg_clip_wsss.cli.{tool}')
    out = tmp_path / 'figures.json'
    out.write_text('{"kept": 1}')
    calls = []
    monkeypatch.setattr(cli, figures, lambda *a, **k: calls.append(a) or dict(miou=2.0))
    argv = [*argv, '--out', str(out)]
    monkeypatch.setattr(sys, 'argv', [tool, *argv])
    with pytest.raises(SystemExit) as exc:
        cli.run()
    assert exc.value.code == (f'error: --out {out} exists; pass --overwrite to replace it, or give '
                              'another --out')
    assert not calls and json.loads(out.read_text()) == {'kept': 1}  # refused before any work
    assert cli.main([*argv, '--overwrite']) == dict(miou=2.0)
    assert json.loads(out.read_text()) == dict(miou=2.0)


def test_captions_to_labels_refuses_an_existing_out_or_split_out_unless_overwrite(tmp_path):
    cli = importlib.import_module('mmseg_clip_wsss.cli.captions_to_labels')
    captions = tmp_path / 'captions.jsonl'
    captions.write_text('{"image": "a.jpg", "caption": "a cat on a mat"}\n'
                        '{"image": "b.jpg", "caption": "a dog"}\n')
    out, split = tmp_path / 'labels.txt', tmp_path / 'split.txt'
    argv = [str(captions), '--classes', 'voc', '--out', str(out), '--split-out', str(split)]
    assert cli.main(argv)['images'] == 2
    first = out.read_text()
    with pytest.raises(FileExistsError, match=rf'--out {out} exists; pass --overwrite'):
        cli.main(argv)
    out.unlink()
    with pytest.raises(FileExistsError, match=rf'--split-out {split} exists; pass --overwrite'):
        cli.main(argv)
    assert not out.exists()  # refused before the labels were written
    assert cli.main([*argv, '--overwrite'])['images'] == 2 and out.read_text() == first
    assert not [p for p in os.listdir(tmp_path) if p.startswith('.')]


def test_training_free_refuses_an_out_dir_with_files_or_an_existing_row_unless_overwrite(tmp_path,
                                                                                        monkeypatch):
    cli = importlib.import_module('mmseg_clip_wsss.cli.training_free')
    calls = []
    monkeypatch.setattr(cli, 'training_free_row',
                        lambda *a: calls.append(a) or dict(training_free_miou=1.0))
    out_dir, row = tmp_path / 'masks', tmp_path / 'row.json'
    out_dir.mkdir()
    assert cli.main(['--out-dir', str(out_dir), '--row', str(row)])['training_free_miou'] == 1.0  # empty
    (out_dir / 'im0.png').write_bytes(b'')
    with pytest.raises(FileExistsError, match=rf'--out-dir {out_dir} is a folder with files in it; pass '
                       r'--overwrite to replace it, or give another --out-dir'):
        cli.main(['--out-dir', str(out_dir)])
    with pytest.raises(FileExistsError, match=rf'--row {row} exists; pass --overwrite'):
        cli.main(['--out-dir', str(tmp_path / 'other'), '--row', str(row)])
    assert len(calls) == 1
    cli.main(['--out-dir', str(out_dir), '--row', str(row), '--overwrite'])
    assert len(calls) == 2


# --------------------------------------------------------------------------- ranges
@pytest.mark.parametrize('option,value,valid', [('--batch-size', '0', 1), ('--batch-size', '-2', 1),
                                                ('--workers', '-1', 0), ('--loader-workers', '-1', 0),
                                                ('--workers', 'two', 0)])
def test_make_pseudo_masks_refuses_counts_out_of_range_in_argparse(option, value, valid, capsys):
    cli = importlib.import_module('mmseg_clip_wsss.cli.make_pseudo_masks')
    with pytest.raises(SystemExit) as exc:
        cli.main(['missing_config.py', '--out-dir', 'out', option, value])  # before the config is read
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f'argument {option}: ' in err and f'valid: {valid} or more' in err
    args = cli.parse_args(['c.py', '--out-dir', 'o', '--batch-size', '1', '--workers', '0',
                           '--loader-workers', '0'])
    assert (args.batch_size, args.workers, args.loader_workers) == (1, 0, 0)


def test_captions_to_labels_ids_of_absolute_image_paths_are_their_file_names(tmp_path):
    cli = importlib.import_module('mmseg_clip_wsss.cli.captions_to_labels')
    captions = tmp_path / 'captions.jsonl'
    captions.write_text(json.dumps(dict(image=str(tmp_path / 'img' / 'a.jpg'), caption='a cat')) + '\n')
    cli.main([str(captions), '--classes', 'voc', '--out', str(tmp_path / 'labels.txt')])
    assert (tmp_path / 'labels.txt').read_text().splitlines()[2:] == ['a cat']


# --------------------------------------------------------------------------- stage-2 masks
STAGE2_CONFIGS = ['stage2/upernet_swin-t_pseudo-voc12aug-512x512.py',
                  'stage2/deeplabv3plus_r101-d8_pseudo-voc12aug-512x512.py',
                  'stage2/clip_wsss_text-head_swin-t_pseudo-voc12aug-512x512.py',
                  'stage2/upernet_swin-t_pseudo-voc12aug-512x512_cgce.py',
                  'stage2/upernet_swin-t_pseudo-voc12aug-512x512_elc.py',
                  'stage2/demo/stage2_clip-rn_upernet_cgce_demo.py',
                  'stage2/demo/stage2_clip-rn_upernet_corruption-aug_demo.py',
                  'stage2/demo/stage2_clip-rn_upernet_elc_demo.py',
                  'demo/stage2_swin_upernet_demo.py', 'demo/stage2_clip-rn_upernet_demo.py']
#: The end of the message of a pseudo mask of another size than its image.
PSEUDO_SIZE_FIX = (r'tools/make_pseudo_masks.py writes each pseudo mask at the size of its image, so this one '
                   r'was made for another image .*: use the folder of the masks made for these images, or make '
                   r'them again \(tools/make_pseudo_masks.py CONFIG CHECKPOINT --split SPLIT --out-dir DIR '
                   r'--overwrite\)\.$')


@pytest.mark.parametrize('config', STAGE2_CONFIGS)
def test_stage2_loaders_name_a_cut_short_pseudo_mask_and_the_rerun_that_mends_it(config, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    assert 'mmseg_clip_wsss' in cfg.custom_imports.imports
    loaders = [t for t in cfg.train_dataloader.dataset.pipeline if 'Annotations' in t['type']]
    assert loaders == [dict(type='LoadWSSSAnnotations', masks='pseudo')]
    loader = TRANSFORMS.build(loaders[0])
    path = str(tmp_path / 'im0.png')
    write_palette_png(path, np.random.default_rng(0).integers(0, 5, (48, 64)).astype(np.uint8))
    whole = open(path, 'rb').read()
    results = dict(seg_map_path=path, img_path='im0.jpg', ori_shape=(48, 64), seg_fields=[],
                   reduce_zero_label=False)
    assert loader(dict(results))['gt_seg_map'].shape == (48, 64)
    for hw in ((1, 1), (1, 64), (48, 1), (64, 48)):  # mmseg's loader squeezes sides of 1 (1x1: shape ())
        write_palette_png(path, np.ones(hw, np.uint8))
        with pytest.raises(DatasetError, match=rf'^pseudo mask {path} is {hw[0]}x{hw[1]} \(HxW\) but its image '
                           rf'im0.jpg is 48x64 as loaded: {PSEUDO_SIZE_FIX}'):
            loader(dict(results, seg_fields=[]))
    with open(path, 'wb') as f:
        f.write(whole[:len(whole) // 2])  # what a killed writer of another tool leaves
    with pytest.raises(CorruptImageError, match=rf'pseudo mask {path} cannot be decoded \(.+\): if '
                       r'tools/make_pseudo_masks.py wrote it, a run was cut short: run it again with the '
                       r'same arguments \(it resumes'):
        loader(dict(results, seg_fields=[]))
    os.remove(path)
    with pytest.raises(FileNotFoundError, match=rf'pseudo mask {path} does not exist: make the pseudo '
                       r'masks of the training split first \(tools/make_pseudo_masks.py'):
        loader(dict(results, seg_fields=[]))


def test_make_pseudo_masks_refuses_an_unknown_split_naming_the_valid_ones(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("model = dict(type='Nothing')\ntrain_dataloader = dict(dataset=dict())\n"
                   "val_dataloader = dict(dataset=dict())\ntest_dataloader = None\n")
    out = tmp_path / 'masks'
    argv = [str(cfg), '--out-dir', str(out), '--split', 'trian', '--device', 'cpu']
    with pytest.raises(UnknownSplitError) as exc:
        make_pseudo_masks_cli.main(argv)
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, ValueError)
    monkeypatch.setattr(sys, 'argv', ['make_pseudo_masks.py', *argv])
    with pytest.raises(SystemExit) as exc:
        make_pseudo_masks_cli.run()
    assert exc.value.code == (f'error: make_pseudo_masks: --split trian: {cfg} has no `trian_dataloader` '
                              '(nor `cam_dataloader` for --split train); valid splits of this config: train, '
                              'val. Choose one, or add the dataloader to the config.')
    assert not out.exists()


def test_an_unknown_cfg_options_key_is_named_with_the_closest_keys(tmp_path, logged):
    cfg, ckpt = _tool_config(tmp_path, 'none')
    argv = [cfg, ckpt, '--split', 'val', '--no-progress', '--device', 'cpu', '--out-dir', str(tmp_path / 'o'),
            '--cfg-options', 'model.num_clases=3']
    with pytest.raises(ConfigMismatchError, match=r"--cfg-options model.num_clases: 'num_clases' is no "
                       r"argument of what the config builds there \(.*PMSpeedStub.*unexpected keyword"):
        make_pseudo_masks_cli.main(argv)
    config = Config(dict(model=dict(backbone=dict(pretrained='a.pth', depth=3)), steps=[dict(lr=1)],
                         val_dataloader=dict(batch_size=1)))
    added = merge_cfg_options(config, {'model.backbone.depth': 4, 'steps.0.lr': 2,
                                       'model.backbone.frozen': True, 'cam_dataloader.batch_size': 2})
    assert added == ['model.backbone.frozen', 'cam_dataloader.batch_size']  # new keys are added ...
    assert config.model.backbone.depth == 4 and config.steps[0].lr == 2  # merged as mmseg merges
    assert config.model.backbone.frozen is True and config.cam_dataloader.batch_size == 2
    assert ('--cfg-options cam_dataloader.batch_size: the config has no such key; it is added (the config '
            'has val_dataloader there: a misspelling?)') in logged  # ... named, 2 letters off
    # an argument the registered type takes (here through a base class) is no new key: no warning
    config = Config(dict(model=dict(type='TrainingFreeDenseCLIP'), val_dataloader=dict(dataset=dict(
        type='DemoWSSSDataset'))))
    assert merge_cfg_options(config, {'model.grad_cam': 'autograd', 'model.grad_cams': 1,
                                      'val_dataloader.dataset.label_file': 'ImageLabels/val.txt'}) == ['model.grad_cams']
    assert config.model.grad_cam == 'autograd' and config.val_dataloader.dataset.label_file == 'ImageLabels/val.txt'
    assert 'model.grad_cam:' not in logged and 'label_file:' not in logged
    with pytest.raises(TypeError, match='another'):  # without --cfg-options a TypeError goes on as it is
        with naming_cfg_options({}):
            _build_calling(lambda: _raise(TypeError("f() got an unexpected keyword argument 'another'")))
    with pytest.raises(ConfigMismatchError, match=r"^TypeError: f\(\) got an unexpected keyword argument "
                       r"'another' -- with --cfg-options model.x=1: check these values"):
        with naming_cfg_options({'model.x': 1}):  # with them, it names every key given
            _build_calling(lambda: _raise(TypeError("f() got an unexpected keyword argument 'another'")))
    with pytest.raises(ConfigMismatchError, match=r"^invalid literal for int\(\) with base 10: 'abc' -- with "
                       r"--cfg-options train_cfg.max_iters='abc': check"):  # the one value the error quotes
        with naming_cfg_options({'model.x': 1, 'train_cfg.max_iters': 'abc'}):
            _build_calling(lambda: int('abc'))
    with pytest.raises(ValueError, match=r'^a step went wrong$'):  # raised outside a build: not blamed
        with naming_cfg_options({'model.x': 1}):
            raise ValueError('a step went wrong')


def _build_calling(call) -> None:
    """Build an object through a registry (mmengine's ``build_from_cfg``) whose constructor calls ``call``."""
    registry = Registry('calling')

    @registry.register_module()
    class Calling:
        def __init__(self):
            call()

    registry.build(dict(type='Calling'))


def _raise(err: Exception) -> None:
    raise err


def test_a_none_where_the_model_needs_a_value_is_refused_naming_the_option():
    """`--cfg-options model.text_encoder.prompt.templates=None` and `model=None` ended in TypeError
    tracebacks."""
    with pytest.raises(ConfigMismatchError) as exc:
        with naming_cfg_options({'model.text_encoder.prompt.templates': None}):
            _build_calling(lambda: _check_templates(None))  # what the prompt learner's build does
    assert str(exc.value).startswith(
        "prompt.templates = None: give a template or a list of them, each with one '{}' for the class "
        "name, e.g. 'a photo of a {}.'. -- with --cfg-options model.text_encoder.prompt.templates=None: ")
    with pytest.raises(ConfigMismatchError) as exc:
        with naming_cfg_options({'x': 1}):  # an error with a complete message goes on as it is
            raise ConfigMismatchError('c.py: 3 classes, 4 prompts')
    assert str(exc.value) == 'c.py: 3 classes, 4 prompts'
    config = Config(dict(model=dict(type='M', depth=3)))
    with pytest.raises(ConfigMismatchError, match=r"^--cfg-options model=None: the model is a dict the tools "
                       r"build \(type=..., ...\), not a value; set a key inside it"):
        merge_cfg_options(config, {'model': None})
    assert config.model.depth == 3  # nothing merged


@pytest.mark.parametrize('key,where,there', [
    ('modle.backbone.pretrained', 'modle', 'model'),  # two letters swapped
    ('trian_cfg.max_iters', 'trian_cfg', 'train_cfg'),
    ('model.backbone.pretraned', 'model.backbone.pretraned', 'pretrained'),  # a letter missing
    ('cam_cfg.bg_treshold', 'cam_cfg.bg_treshold', 'bg_threshold'),
    ('model.backbone.depthh', 'model.backbone.depthh', 'depth'),  # a letter added
])
def test_a_cfg_options_key_one_typo_from_a_config_key_is_refused_before_any_work(key, where, there):
    config = Config(dict(model=dict(backbone=dict(pretrained='a.pth', depth=3)), train_cfg=dict(max_iters=9),
                         cam_cfg=dict(bg_threshold=0.3)))
    with pytest.raises(ConfigMismatchError) as exc:
        merge_cfg_options(config, {'model.backbone.depth': 5, key: 4})
    assert str(exc.value) == (f"--cfg-options {key}: the config has no {where!r}; it has {there!r} there (a "
                              "misspelling?). Correct the key (a key one typo away from one of the config's "
                              "is refused, not added); nothing was run.")
    assert config.model.backbone.depth == 3  # nothing merged


def test_make_pseudo_masks_names_a_misspelt_cfg_options_key_and_an_unknown_cam_cfg_key(tmp_path,
                                                                                     monkeypatch):
    cfg, ckpt = _tool_config(tmp_path, 'none')
    out = tmp_path / 'o'
    common = [cfg, ckpt, '--split', 'val', '--no-progress', '--device', 'cpu', '--out-dir', str(out)]
    for option, line in [
            ('cam_cfg.bg_treshold=0.5', "error: --cfg-options cam_cfg.bg_treshold: the config has no "
             "'cam_cfg.bg_treshold'; it has 'bg_threshold' there"),
            ('cam_cfg.threshold=0.5', 'error: CAM protocol: cam_cfg.threshold is no protocol option (did you '
             'mean cam_cfg.bg_threshold?); valid: amp, batch_size, ')]:
        monkeypatch.setattr(sys, 'argv', ['make_pseudo_masks.py', *common, '--cfg-options', option])
        with pytest.raises(SystemExit) as exc:
            make_pseudo_masks_cli.run()
        assert str(exc.value.code).startswith(line)
        assert not out.exists()


def test_make_pseudo_masks_refuses_to_resume_masks_of_another_model(tmp_path, logged):
    cfg, ckpt = _tool_config(tmp_path, 'none')
    out = str(tmp_path / 'masks')
    common = [cfg, ckpt, '--split', 'val', '--no-progress', '--device', 'cpu', '--out-dir', out]
    assert make_pseudo_masks_cli.main(common)['written'] == 5
    record = json.load(open(osp.join(out, 'protocol.json')))
    assert record['model'] == {'type': 'PMSpeedStub'}
    assert record['files'][osp.abspath(ckpt)].startswith('sha256:')
    # the model dict differs (e.g. model.prompts=<other tuned prompts>): another model, named
    with pytest.raises(ValueError, match=r"made by another model \(model.num_classes: '\(unset\)' -> 5; "
                       r"see .*protocol.json\)\. Write to another --out-dir, or delete "):
        make_pseudo_masks_cli.main([*common, '--cfg-options', 'model.num_classes=5'])
    # the same checkpoint path with other weights: another model
    state = torch.load(ckpt)
    state['state_dict']['conv.bias'] += 1
    torch.save(state, ckpt)
    with pytest.raises(ValueError, match=rf"another model \(file {osp.abspath(ckpt)}: sha256:"):
        make_pseudo_masks_cli.main(common)
    # a record written before the model was recorded: resumed as this model's masks, with a warning
    for field in ('model', 'files'):
        del record[field]
    json.dump(record, open(osp.join(out, 'protocol.json'), 'w'))
    logged.clear()
    again = make_pseudo_masks_cli.main(common)
    assert (again['written'], again['skipped']) == (0, 5)
    assert any('protocol.json does not record the model (written before the model was recorded); its masks '
               'are resumed as masks of this model and config' in line for line in logged)


def test_a_failed_make_pseudo_masks_run_leaves_no_protocol_record(tmp_path, monkeypatch):
    cfg, ckpt = _tool_config(tmp_path, 'none')
    out = tmp_path / 'masks'
    common = [cfg, ckpt, '--split', 'val', '--no-progress', '--device', 'cpu', '--out-dir', str(out)]
    with pytest.raises(ValueError, match=r'scales'):  # refused before any mask: nothing recorded
        make_pseudo_masks_cli.main([*common, '--scales', '0'])
    assert not (out / 'protocol.json').exists()

    def fail(*args, **kwargs):
        raise RuntimeError('forward failed')
    monkeypatch.setattr('mmseg_clip_wsss.cam.generate.mask_jobs_of_batch', fail)  # the CAMs fail
    with pytest.raises(RuntimeError, match='forward failed'):
        make_pseudo_masks_cli.main([*common, '--scales', '0.5'])
    assert not (out / 'protocol.json').exists()
    monkeypatch.undo()
    result = make_pseudo_masks_cli.main(common)  # the next correct run is not refused
    assert result['written'] == 5
    assert json.load(open(out / 'protocol.json'))['scales'] == [1.0, 0.5]


@pytest.mark.parametrize('options,message', [
    (['--bg-threshold', '1.5'], 'argument --bg-threshold: 1.5 is out of range; valid: 0 to 1'),
    (['--bg-threshold', 'x'], "argument --bg-threshold: 'x' is not a number; valid: 0 to 1"),
    (['--ignore-margin', '-0.1'], 'argument --ignore-margin: -0.1 is out of range; valid: 0 or more'),
    (['--ignore-band', '0.6', '0.2'], 'argument --ignore-band: LOW 0.6 is above HIGH 0.2; give the band as '
     'LOW HIGH, e.g. --ignore-band 0.2 0.6'),
    (['--cfg-options', 'cam_cfg'], "argument --cfg-options: 'cam_cfg' is no KEY=VALUE pair; write each "
     'setting as KEY=VALUE'),
])
def test_make_pseudo_masks_refuses_option_values_in_argparse(options, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        make_pseudo_masks_cli.main(['c.py', '--out-dir', str(tmp_path / 'o'), *options])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('option,message', [
    ('cam_cfg.flip=maybe', "flip (--no-flip or --cfg-options cam_cfg.flip=...) = 'maybe' is no bool; use "
     'True or False'),
    ('cam_cfg.scales=[1.0,abc]', "scales (--scales or --cfg-options cam_cfg.scales=...) = [1.0, 'abc']: "
     "'abc' is no number above 0"),
    ('cam_cfg.bg_threshold=2', 'bg_threshold (--bg-threshold or --cfg-options cam_cfg.bg_threshold=...) = 2 '
     'is out of range; valid: 0 to 1'),
    ('cam_cfg.bg_threshold=None', 'bg_threshold (--bg-threshold or --cfg-options cam_cfg.bg_threshold=...) = '
     'None, but it needs a value; give a number from 0 to 1, or leave it out for its default 0.35.'),
    ('cam_cfg.flip=None', 'flip (--no-flip or --cfg-options cam_cfg.flip=...) = None, but it needs a value; '
     'give True or False, or leave it out for its default True.'),
    ('cam_cfg.ignore_margin=-1', 'ignore_margin (--ignore-margin or --cfg-options cam_cfg.ignore_margin=...) '
     '= -1 is out of range; valid: 0 or more'),
])
def test_make_pseudo_masks_refuses_cam_cfg_values_naming_the_option(option, message, tmp_path,
                                                                   monkeypatch):
    cfg, ckpt = _tool_config(tmp_path, 'none')
    out = tmp_path / 'o'
    monkeypatch.setattr(sys, 'argv', ['make_pseudo_masks.py', cfg, ckpt, '--split', 'val', '--no-progress',
                                      '--device', 'cpu', '--out-dir', str(out), '--cfg-options', option])
    with pytest.raises(SystemExit) as exc:
        make_pseudo_masks_cli.run()
    assert str(exc.value.code).startswith(f'error: CAM protocol: {message}')
    assert '-- with --cfg-options' not in str(exc.value.code)  # it names its option: complete as it is
    assert not out.exists()


def test_make_pseudo_masks_refuses_an_out_dir_that_is_a_file(tmp_path, monkeypatch):
    cfg, ckpt = _tool_config(tmp_path, 'none')
    out = tmp_path / 'masks.png'
    out.write_bytes(b'kept')
    monkeypatch.setattr(sys, 'argv', ['make_pseudo_masks.py', cfg, ckpt, '--split', 'val', '--device', 'cpu',
                                      '--out-dir', str(out)])
    with pytest.raises(SystemExit) as exc:
        make_pseudo_masks_cli.run()
    assert exc.value.code == (f'error: --out-dir {out} is a file, not a folder; give a folder for the masks '
                              '(a new one, or one of an earlier run to resume)')
    assert out.read_bytes() == b'kept'


def test_make_pseudo_masks_of_own_images_without_ground_truth_masks(tmp_path, monkeypatch):
    root = tmp_path / 'own'
    make_demo_data(str(root), seed=0, num_train=3, num_val=1, size=64, show_progress=False)
    shutil.rmtree(root / 'SegmentationClass')  # images and image labels only
    clip = write_random_clip_checkpoint(str(tmp_path / 'rn.pt'), DEMO_CLIP_NAME, seed=0)
    config = osp.join(REPO, 'configs/clip_es/clip-es_demo-clip_demo.py')
    options = ['--cfg-options', f'cam_dataloader.dataset.data_root={root}', f'model.backbone.pretrained={clip}',
               f'model.text_encoder.pretrained={clip}']

    def argv(out, *extra):
        return [config, '--out-dir', str(tmp_path / out), '--no-progress', '--scales', '1.0', '--refine',
                'none', *extra, *options]
    assert make_pseudo_masks_cli.main(argv('masks'))['written'] == 3  # no --eval: no mask is read
    assert make_pseudo_masks_cli.main(argv('masks_false', *options, 'cam_dataloader.dataset.with_gt_masks=False')
                                      )['written'] == 3  # the setting the old error suggested
    for out, extra, reason in [
            ('eval', [], r'but DemoWSSSDataset: 3 ground-truth mask\(s\) of the images .* do not exist: '),
            ('eval_false', [*options, 'cam_dataloader.dataset.with_gt_masks=False'],
             r"but its dataset has no mask paths \(with_gt_masks=False, or no data_prefix\['seg_map_path'\]\)\. ")]:
        monkeypatch.setattr(sys, 'argv', ['make_pseudo_masks.py', *argv(out, '--eval', *extra)])
        with pytest.raises(SystemExit) as exc:
            make_pseudo_masks_cli.run()
        assert re.fullmatch(r'error: make_pseudo_masks --eval scores the masks against the ground-truth masks of '
                            r'split "train", ' + reason + r'.*Without ground-truth masks \(own images with image '
                            r'labels\) leave out --eval: the pseudo masks need only the images and their labels\.',
                            str(exc.value.code)), exc.value.code
        assert not (tmp_path / out).exists()


def test_make_pseudo_masks_offline_names_the_clip_tag_and_the_local_file_options(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError('We cannot find the requested files in the local cache.')
    monkeypatch.setattr(open_clip.factory, 'download_pretrained', offline)
    config = osp.join(REPO, 'configs/clip_es/clip-es_vit-b16_voc.py')
    monkeypatch.setattr(sys, 'argv', ['make_pseudo_masks.py', config, '--out-dir', str(tmp_path / 'o'),
                                      '--device', 'cpu'])
    with pytest.raises(SystemExit) as exc:
        make_pseudo_masks_cli.run()
    assert str(exc.value.code).startswith(
        f"error: {config}: the CLIP weights of pretrained tag 'openai' could not be downloaded (open_clip: "
        "Failed to download weights for tag 'openai': We cannot find")
    assert str(exc.value.code).endswith(
        'Without internet, download them elsewhere and give the file: --cfg-options '
        'model.backbone.pretrained=FILE model.text_encoder.pretrained=FILE (README, "Pretrained weights").')
    assert not (tmp_path / 'o').exists()


def test_the_record_of_a_model_identifies_the_files_its_config_names(tmp_path, monkeypatch):
    prompts = tmp_path / 'prompts.pth'
    prompts.write_bytes(b'tuned')
    cfg = Config(dict(model=dict(type='X', prompts=str(prompts), backbone=dict(pretrained='missing.pt'))))
    record = model_record(cfg, None)
    assert record['model']['prompts'] == str(prompts)
    assert record['files'] == {str(prompts): 'sha256:' + hashlib.sha256(b'tuned').hexdigest()}
    out = tmp_path / 'masks'
    protocol = dict(checkpoint=None, split='train', **DEFAULT_PROTOCOL.record())
    write_json_atomically(str(out / 'protocol.json'), json.loads(json.dumps(dict(protocol, **record))))
    check_protocol(str(out), dict(protocol, **model_record(cfg, None)))  # the same model: resumable
    prompts.write_bytes(b'tuned again')  # other prompts in the same file: another model
    with pytest.raises(ValueError, match=rf'another model \(file {prompts}: sha256:[0-9a-f]{{64}} -> '
                       r'sha256:[0-9a-f]{64}; see '):
        check_protocol(str(out), dict(protocol, **model_record(cfg, None)))
    monkeypatch.setattr(file_stamps, 'DIGEST_LIMIT', 4)  # a large file: its size and time, not read
    assert re.fullmatch(r'11 bytes, mtime \d+', model_record(cfg, None)['files'][str(prompts)])


def _weight_files(tmp_path):
    """An empty file, a zip-format checkpoint cut short, a legacy-format one cut short, text, and a
    whole checkpoint."""
    whole = tmp_path / 'whole.pth'
    torch.save(dict(state_dict={'w': torch.zeros(4000)}), str(whole))
    legacy = tmp_path / 'legacy.pth'
    torch.save(dict(state_dict={'w': torch.zeros(4000)}), str(legacy), _use_new_zipfile_serialization=False)
    files = dict(whole=str(whole), empty=str(tmp_path / 'empty.pth'), cut=str(tmp_path / 'cut.pth'),
                 legacy_cut=str(tmp_path / 'legacy_cut.pth'), text=str(tmp_path / 'text.pth'))
    open(files['empty'], 'wb').close()
    with open(files['cut'], 'wb') as f:
        f.write(whole.read_bytes()[:10240])
    with open(files['legacy_cut'], 'wb') as f:
        f.write(legacy.read_bytes()[:2000])
    with open(files['text'], 'w') as f:
        f.write('<html>404 not found</html>')
    return files


def test_a_broken_weight_file_is_named_with_what_is_wrong_and_the_fix(tmp_path):
    files = _weight_files(tmp_path)
    load = lambda name: load_weight_file(files[name], lambda: torch.load(files[name]), fix='copy it again',
                                         what='checkpoint')  # noqa: E731
    assert load('whole')['state_dict']['w'].shape == (4000, )
    expected = dict(empty=r'is empty \(0 bytes\)', cut=r'is cut short \(10240 bytes',
                    legacy_cut='is cut short or damaged', text='is not a torch file')
    for name, problem in expected.items():
        with pytest.raises(WeightFileError, match=rf'checkpoint {files[name]} {problem}.*not a whole '
                           r'checkpoint\. Fix: copy it again'):
            load(name)


def test_clip_weights_that_are_not_a_whole_file_are_refused_naming_it(tmp_path):
    """Every CLIP tower (text encoder, image backbone, tagging, training-free) loads through
    load_open_clip: an empty or cut-short file is named with the fix, not a torch traceback."""
    files = _weight_files(tmp_path)
    for name in ('empty', 'cut', 'text'):
        with pytest.raises(WeightFileError, match=rf'Owner: CLIP weight file {files[name]} .*download or '
                           'copy it again'):
            load_open_clip(TINY_CLIP_NAME, files[name], owner='Owner')


def test_clip_weights_of_another_model_config_name_the_file_and_the_config_they_fit(tmp_path):
    """A state dict loaded as another architecture (tag_images --model-name, a config's model_name)
    ends in a message naming the file, the model asked for and the project config the weights fit,
    not in open_clip's missing-keys dump or its position-embedding assertion."""
    tiny = write_random_clip_checkpoint(str(tmp_path / 'tiny.pt'), TINY_CLIP_NAME)
    demo_vit = write_random_clip_checkpoint(str(tmp_path / 'demo_vit.pt'), DEMO_CLIP_VIT_NAME)
    with pytest.raises(ValueError, match=r"Error\(s\) in loading state_dict.*it fits 'WSSS-Demo-CLIP-ViT'"):
        load_open_clip(DEMO_CLIP_NAME, demo_vit, owner='Owner')  # same text tower: missing keys
    for wrong, cause in ((DEMO_CLIP_NAME, 'AssertionError'), ('ViT-B-16', 'AssertionError')):
        with pytest.raises(ValueError, match=rf"Owner: the CLIP weights in '{re.escape(tiny)}' do not fit "
                           rf"the open_clip model '{wrong}' \({cause}.*it fits '{TINY_CLIP_NAME}' "
                           r'\(tools: --model-name'):
            load_open_clip(wrong, tiny, owner='Owner')
    assert load_open_clip(TINY_CLIP_NAME, tiny) is not None
    tensor = str(tmp_path / 'tensor.pt')  # a torch file that holds no state dict
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match=r"the CLIP weights in .*tensor\.pt' do not fit .*fits none of the "
                       r"project's model configs"):
        load_open_clip(TINY_CLIP_NAME, tensor, owner='Owner')


def test_train_resume_refuses_a_cut_short_latest_checkpoint_naming_an_earlier_one(tmp_path, monkeypatch):
    files = _weight_files(tmp_path)
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    os.replace(files['whole'], work_dir / 'iter_400.pth')
    os.replace(files['cut'], work_dir / 'iter_800.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_800.pth'))
    cfg = Config(dict(resume=True, load_from=None, work_dir=str(work_dir)))
    with pytest.raises(WeightFileError, match=r'train --resume: checkpoint .*iter_800\.pth is cut short.*'
                       r'--resume PATH \(.*iter_400\.pth\)'):
        check_resume_checkpoint(cfg)
    cfg.load_from = str(work_dir / 'iter_400.pth')  # --resume PATH of the earlier one
    check_resume_checkpoint(cfg)
    assert train_parse_args(['c.py', '--resume', 'x.pth']).resume == 'x.pth'
    runner_api = sys.modules['mmseg_clip_wsss.apis.runner']  # tools/test.py: the same check, before the runner
    monkeypatch.setattr(runner_api, 'check_config_assets', lambda *a: None)
    monkeypatch.setattr(runner_api, 'check_config_classes', lambda *a: None)
    with pytest.raises(WeightFileError, match=r'test: checkpoint .*iter_800\.pth is cut short'):
        runner_api.test(Config(dict(load_from=str(work_dir / 'iter_800.pth'))))
    assert train_parse_args(['c.py', '--resume']).resume is True and train_parse_args(['c.py']).resume is False


def test_benchmark_refuses_an_out_dir_with_results_before_measuring(tmp_path, monkeypatch):
    """benchmark.py rewrote the results in --out-dir: refused unless --overwrite, before any model is
    built."""
    out = tmp_path / 'bench'
    out.mkdir()
    (out / 'benchmark.json').write_text('{"models": []}')
    with pytest.raises(FileExistsError, match=rf'--out-dir {out} is a folder with files in it; pass --overwrite'):
        benchmark_main(['--out-dir', str(out), '--no-memory', '--no-train', '--no-profile'])
    assert (out / 'benchmark.json').read_text() == '{"models": []}'
    ran = []
    monkeypatch.setattr(sys.modules['mmseg_clip_wsss.cli.benchmark'], 'run_benchmark',
                        lambda *args, **kwargs: ran.append(kwargs['out_dir']))
    benchmark_main(['--out-dir', str(out), '--overwrite'])
    assert ran == [str(out)]


@pytest.mark.parametrize('content', ['', '\n\n', '{"images": [], "annotations": []}'])
def test_captions_to_labels_names_a_captions_file_that_holds_no_caption(tmp_path, content):
    """An empty JSONL (or a COCO JSON without annotations) ended in torch.cat() of no tensors."""
    cli = importlib.import_module('mmseg_clip_wsss.cli.captions_to_labels')
    captions = tmp_path / ('captions.json' if content.startswith('{') else 'captions.jsonl')
    captions.write_text(content)
    out = tmp_path / 'labels.txt'
    with pytest.raises(DatasetError, match=rf'{captions} holds no caption'):
        cli.main([str(captions), '--classes', 'demo', '--out', str(out)])
    assert not out.exists()


@pytest.mark.parametrize('tool,option,words', [
    ('segment', '--out-dir', 'folder of the outputs'),
    ('segment', '--overwrite', 'outputs of other settings'),
    ('dense_open_vocab', '--split', 'scored against its GT masks'),
])
def test_options_have_a_description_in_the_help(tool, option, words, capsys):
    cli = importlib.import_module(f'mmseg_clip_wsss.cli.{tool}')
    with pytest.raises(SystemExit):
        cli.parse_args(['--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert option in text and words in text


@pytest.mark.parametrize('tool,argv,parts', [
    ('dense_open_vocab', ['configs/dense_clip/dense-clip-maskclip_demo-clip_demo.py'],
     'JPEGImages/, SegmentationClass/, ImageSets/Segmentation/openvocab.txt, demo_info.json'),
    ('open_vocab', ['configs/demo/clip_wsss_clip-rn_demo.py', 'missing.pth'],
     'JPEGImages/, SegmentationClass/, ImageSets/Segmentation/openvocab.txt, ImageSets/Segmentation/train.txt, '
     'ImageSets/Segmentation/val.txt, ImageLabels/train.txt, ImageLabels/val.txt, demo_info.json'),
    ('training_free', [], 'JPEGImages/, SegmentationClass/, ImageSets/Segmentation/train.txt, ImageLabels/train.txt'),
])
def test_an_empty_data_root_is_refused_naming_it_what_it_lacks_and_the_fix(tool, argv, parts, tmp_path,
                                                                             monkeypatch):
    """An empty --data-root ended in a bare `[Errno 2] No such file or directory: .../demo_info.json`."""
    empty, out = tmp_path / 'empty', tmp_path / 'out'
    empty.mkdir()
    monkeypatch.chdir(REPO)
    extra = ['--out-dir', str(out)] if tool == 'training_free' else ['--out', str(out / 'figures.json')]
    monkeypatch.setattr(sys, 'argv', [tool] + argv + ['--data-root', str(empty)] + extra)
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(f'mmseg_clip_wsss.cli.{tool}').run()
    generated = ' of a generated dataset' if 'demo_info' in parts else ''
    assert exc.value.code == (
        f'error: --data-root {empty} is an empty folder; it must hold a dataset in the VOC layout{generated}: '
        f'{parts} (JPEGImages/<id>.jpg, SegmentationClass/<id>.png; docs/datasets.md). Write the demo data '
        f'there with `python tools/make_demo_data.py --out {empty}`, or point --data-root at a folder of that '
        'layout (e.g. data/demo).')
    assert os.listdir(empty) == [] and not out.exists()  # nothing written


def test_a_data_root_is_refused_naming_the_parts_it_lacks(tmp_path):
    root = tmp_path / 'voc'
    with pytest.raises(MissingDatasetFileError, match=rf'--data-root {root} does not exist; it must hold'):
        check_data_root(str(root))
    (root / 'JPEGImages').mkdir(parents=True)
    (root / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    (root / 'ImageSets' / 'Segmentation' / 'val.txt').write_text('a\n')
    with pytest.raises(MissingDatasetFileError, match=rf'cam_dataloader.dataset.data_root {root} lacks '
                       r'SegmentationClass/, ImageSets/Segmentation/train.txt, ImageLabels/val.txt; it'):
        check_data_root(str(root), splits=('train', 'val'), label_splits=('val', ),
                        option='cam_dataloader.dataset.data_root')
    (root / 'SegmentationClass').mkdir()
    check_data_root(str(root), splits=('val', ))  # all there: no error
    with pytest.raises(MissingDatasetFileError) as err:  # a split it has not: writing the demo data again
        check_data_root(str(root), splits=('bogus', ))  # would not make it; the splits it has are named
    assert str(err.value) == (f'--data-root {root} has no split bogus (it lacks ImageSets/Segmentation/bogus.txt); '
                              'its splits: val. Choose one of them, or write the missing file(s), one image id a '
                              'line (docs/datasets.md).')


def test_a_data_root_that_is_empty_text_or_a_file_and_a_config_that_is_a_folder_are_named(tmp_path):
    """`--data-root ''` read "--data-root  does not exist; ... make_demo_data.py --out ", a file "does not
    exist", and `tools/train.py configs` "config configs does not exist"."""
    with pytest.raises(MissingDatasetFileError) as err:
        check_data_root('')
    assert str(err.value) == ("--data-root '' names no folder: give the folder of a dataset in the VOC layout, "
                              'e.g. --data-root data/demo (write the demo data there with `python '
                              'tools/make_demo_data.py --out data/demo`).')
    file = tmp_path / 'labels.txt'
    file.write_text('kept')
    with pytest.raises(MissingDatasetFileError) as err:
        check_data_root(str(file))
    assert str(err.value).startswith(f'--data-root {file} is a file, not a folder; it must hold a dataset')
    assert str(err.value).endswith('docs/datasets.md). Point --data-root at a folder of that layout (e.g. data/demo).')
    assert file.read_text() == 'kept'
    with pytest.raises(MissingAssetError) as err:
        read_config(str(tmp_path))
    assert str(err.value) == (f'config {tmp_path} is a folder, not a config file: give the path of a config file, '
                              'e.g. configs/demo/clip_wsss_clip-rn_demo.py.')


def test_a_stage2_dataset_refuses_a_1x1_pseudo_mask_naming_mask_image_and_fix(tmp_path):
    """A 1x1 pseudo mask: mmseg's LoadAnnotations squeezes it to a 0-d array, which failed deep inside."""
    root, masks = tmp_path / 'demo', tmp_path / 'pseudo_masks'
    make_demo_data(str(root), seed=0, num_train=2, num_val=1, num_openvocab=0, size=64, show_progress=False)
    for name in os.listdir(root / 'SegmentationClass'):
        write_palette_png(str(masks / name), np.ones((1, 1), np.uint8))
    cfg = Config.fromfile(osp.join(REPO, 'configs/demo/stage2_clip-rn_upernet_demo.py'))
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.update(data_root=str(root), data_prefix=dict(dataset_cfg.data_prefix, seg_map_path=str(masks)))
    init_default_scope('mmseg')
    dataset = DATASETS.build(dataset_cfg)
    mask = masks / f'{dataset.get_data_info(0)["img_id"]}.png'
    with pytest.raises(DatasetError, match=rf'^pseudo mask {mask} is 1x1 \(HxW\) but its image '
                       rf'{root}/JPEGImages/\w+.jpg is 64x64 as loaded: {PSEUDO_SIZE_FIX}'):
        dataset[0]


@pytest.mark.parametrize('tool,argv', [
    ('make_pseudo_masks', ['{cfg}', '--out-dir', '{out}']),
    ('segment', ['{image}', '--config', '{cfg}', '--checkpoint', 'c.pth', '--out-dir', '{out}']),
    ('tune_prompts', ['{cfg}', '--out', '{out}/p.pth']),
    ('robustness', ['{cfg}', 'c.pth', '--out-dir', '{out}']),
    ('train', ['{cfg}', '--work-dir', '{out}']),
    ('test', ['{cfg}', 'c.pth', '--work-dir', '{out}']),
    ('dense_open_vocab', ['{cfg}', '--data-root', '{root}', '--out', '{out}/f.json']),
    ('training_free', ['--config', '{cfg}', '--data-root', '{root}', '--out-dir', '{out}']),
])
def test_a_config_that_does_not_exist_is_named_with_the_fix(tool, argv, tmp_path, monkeypatch):
    """A misspelt CONFIG ended in mmengine's bare `[Errno 2] No such file or directory: 'nope.py'`."""
    root = tmp_path / 'demo'
    if tool in ('dense_open_vocab', 'training_free'):  # data that passes their checks before the config's
        make_demo_data(str(root), seed=0, num_train=1, num_val=1, num_openvocab=1, size=64, show_progress=False)
        (root / 'clip.pt').write_bytes(b'')
    image, cfg, out = tmp_path / 'a.png', tmp_path / 'configs' / 'nope.py', tmp_path / 'out'
    Image.new('RGB', (8, 8)).save(image)
    monkeypatch.chdir(tmp_path)
    extra = ['--clip', str(root / 'clip.pt')] if tool in ('dense_open_vocab', 'training_free') else []
    monkeypatch.setattr(sys, 'argv', [tool] + [a.format(cfg=cfg, out=out, image=image, root=root)
                                               for a in argv] + extra)
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(f'mmseg_clip_wsss.cli.{tool}').run()
    example = ('configs/clip_es/clip-es-learned-prompts_demo-clip_demo.py' if tool == 'tune_prompts' else
               'configs/demo/clip_wsss_clip-rn_demo.py')  # tune_prompts: a config with prompts to tune
    assert exc.value.code == (f'error: config {cfg} does not exist: give the path of a config file, e.g. '
                              f'{example} (the configs/ folder of the source checkout).')
    assert not out.exists()
