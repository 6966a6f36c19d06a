"""Inference with any class names: WSSSInferencer, tools/segment.py, the text encoder's new classes."""
import json
from pathlib import Path

import mmengine.logging
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmengine.runner import save_checkpoint
from PIL import Image

from mmseg_clip_wsss.apis import ConfigMismatchError, MissingAssetError
from mmseg_clip_wsss.apis.inferencer import WSSSInferencer, load_rgb, resolve_classes
from mmseg_clip_wsss.apis import segment as segment_api
from mmseg_clip_wsss.cli.segment import main as segment_main
from mmseg_clip_wsss.engine import CheckpointMismatchError, WeightFileError, build_model_from_checkpoint
from mmseg_clip_wsss.models import DEMO_CLIP_NAME, write_random_clip_checkpoint
from mmseg_clip_wsss.registry import MODELS

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / 'configs' / 'demo' / 'clip_wsss_swin_demo.py'
RN_DEMO_CONFIG = REPO / 'configs' / 'demo' / 'clip_wsss_clip-rn_demo.py'
CLIP_ES_DEMO_CONFIG = REPO / 'configs' / 'clip_es' / 'clip-es_demo-clip_demo.py'
CLASSES = ('background', 'disc', 'ring', 'square', 'triangle', 'star', 'cross', 'hexagon', 'crescent')


@pytest.fixture(scope='module')
def model_files(tiny_clip, tmp_path_factory):
    """The demo config with the tiny text tower, and a checkpoint of its (randomly initialised) model."""
    root = tmp_path_factory.mktemp('segment_model')
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(DEMO_CONFIG))
    cfg.model.text_encoder.pretrained = tiny_clip['pretrained']
    return _config_and_random_checkpoint(cfg, root)


def _config_and_random_checkpoint(cfg: Config, root) -> tuple:
    """``cfg`` dumped into ``root`` and a checkpoint of its model, randomly initialised (seed 0)."""
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    checkpoint = str(root / 'model.pth')
    save_checkpoint(dict(state_dict=model.state_dict(),
                         meta=dict(dataset_meta=dict(classes=CLASSES, palette=None))), checkpoint)
    config = str(root / 'config.py')
    cfg.dump(config)
    return config, checkpoint


def _image(path: Path, size=(96, 64), seed=0) -> str:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return str(path)


def _logits(inferencer, rgb):
    sample = inferencer(np.ascontiguousarray(rgb[..., ::-1]), return_datasamples=True)
    return sample.seg_logits.data, sample.pred_sem_seg.data[0]


def test_new_class_names_replace_the_classifier_rows(model_files):
    config, checkpoint = model_files
    inferencer = WSSSInferencer(config, checkpoint, device='cpu', output='config')
    inferencer.model.test_cfg.output = 'seg'  # the raw score maps
    assert inferencer.classes == CLASSES
    rgb = np.random.default_rng(1).integers(0, 256, (50, 90, 3), dtype=np.uint8)
    inferencer.set_classes(resolve_classes(['disc', 'ring', 'heart']))
    logits, label = _logits(inferencer, rgb)
    assert inferencer.classes == ('background', 'disc', 'ring', 'heart')
    assert logits.shape == (4, 50, 90)  # any size: back at the input's size
    assert set(label.unique().tolist()) <= {0, 1, 2, 3}
    # renaming one class changes only its row: the other score maps stay, labels move only to/from it
    inferencer.set_classes(resolve_classes(['disc', 'ring', 'valentine']))
    renamed, label2 = _logits(inferencer, rgb)
    torch.testing.assert_close(renamed[:3], logits[:3])
    assert not torch.allclose(renamed[3], logits[3])
    changed = label != label2
    assert ((label[changed] == 3) | (label2[changed] == 3)).all()


def test_a_weakly_supervised_model_segments_with_the_cam_protocol_background(model_files):
    config, checkpoint = model_files
    inferencer = WSSSInferencer(config, checkpoint, device='cpu')
    bg_threshold = Config.fromfile(config).cam_cfg.bg_threshold
    assert inferencer.model.test_cfg.output == 'cam' and inferencer.model.test_cfg.bg_threshold == bg_threshold
    rgb = np.random.default_rng(1).integers(0, 256, (50, 90, 3), dtype=np.uint8)
    logits, label = _logits(inferencer, rgb)
    assert logits.shape == (9, 50, 90) and torch.all(logits[0] == bg_threshold)
    assert torch.equal(label == 0, logits[1:].amax(dim=0) <= bg_threshold)
    with pytest.raises(ValueError, match="'auto' or 'config'"):
        WSSSInferencer(config, checkpoint, device='cpu', output='seg')


def test_open_vocab_prediction_told_the_image_labels_paints_only_those(model_files):
    """The `*_true_labels` figures of demo/open_vocab.py: the model is given each image's classes."""
    from mmseg_clip_wsss.demo.open_vocab import _predict, _true_labels
    config, checkpoint = model_files
    inferencer = WSSSInferencer(config, checkpoint, device='cpu')
    inferencer.model.test_cfg.bg_threshold = 0.0  # every pixel goes to a class of the image
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(2)]
    gts = [np.full((40, 56), 255, np.uint8), np.zeros((40, 56), np.uint8)]
    gts[0][:20] = 3
    gts[1][5:9, 5:9] = 7
    labels = _true_labels(gts, len(CLASSES))  # 255 (ignore) is no class; background always on
    assert labels.tolist() == [[1, 0, 0, 1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 1, 0]]
    told = _predict(inferencer, images, labels)
    assert [p.shape for p in told] == [(40, 56), (40, 56)]
    assert set(np.unique(told[0])) <= {0, 3} and 3 in told[0]
    assert set(np.unique(told[1])) <= {0, 7} and 7 in told[1]
    free = _predict(inferencer, images)  # the classes it finds itself (none, untrained): not the labels
    assert not any(np.array_equal(f, t) for f, t in zip(free, told))


def test_a_fixed_class_model_takes_its_own_class_list_and_refuses_others():
    from types import SimpleNamespace
    fixed = SimpleNamespace(model=SimpleNamespace(dataset_meta=dict(classes=CLASSES)), classes=CLASSES)
    WSSSInferencer.set_classes(fixed, resolve_classes(list(CLASSES[1:])))  # a stage-2 model's own names
    assert fixed.model.dataset_meta['classes'] == CLASSES
    with pytest.raises(ValueError, match='fixed class list'):
        WSSSInferencer.set_classes(fixed, resolve_classes(['disc', 'heart']))


def test_class_specific_context_cannot_take_new_names(tiny_clip):
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(DEMO_CONFIG))
    cfg.model.text_encoder.update(pretrained=tiny_clip['pretrained'],
                                  prompt=dict(type='CoOpPromptLearner', n_ctx=2, ctx_init=None,
                                              class_specific=True))
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match='class-specific'):
        model.set_class_names(['background', 'heart'])
    with pytest.raises(ValueError, match='background'):
        model.text_encoder.set_class_names(['heart', 'arrow'])


def test_resolve_classes():
    assert resolve_classes(['cat', ' dog']) == ['background', 'cat', 'dog']
    assert resolve_classes(vocabulary='voc')[0] == 'background' and len(resolve_classes(vocabulary='voc')) == 21
    with pytest.raises(ValueError, match="'cat' \\(class 1\\) and 'cat' \\(class 2\\) are the same name"):
        resolve_classes(['cat', 'cat'])
    with pytest.raises(ValueError, match='either'):
        resolve_classes(['cat'], 'voc')


@pytest.mark.parametrize('mode', ['P', 'L', 'LA', 'RGBA', 'CMYK', 'I;16', 'F'])
def test_load_rgb_reads_any_mode(tmp_path, mode):
    base = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    if mode == 'I;16':
        img = Image.fromarray((np.arange(600, dtype=np.uint16).reshape(20, 30) * 100))
    elif mode == 'F':
        img = Image.fromarray(np.linspace(-1, 1, 600, dtype=np.float32).reshape(20, 30))
    else:
        img = base.convert(mode)
    path = tmp_path / ('x.tif' if mode in ('F', 'CMYK') else 'x.png')
    img.save(path)
    rgb = load_rgb(str(path))
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    if mode in ('I;16', 'F'):  # scaled by their own range
        assert rgb.min() == 0 and rgb.max() == 255


def test_load_rgb_applies_exif_orientation(tmp_path):
    img = Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / 'rot.jpg', exif=exif)
    assert load_rgb(str(tmp_path / 'rot.jpg')).shape == (30, 20, 3)


def test_segment_tool_writes_outputs_and_skips_a_corrupt_file(model_files, tmp_path, capsys):
    config, checkpoint = model_files
    images = tmp_path / 'images'
    (images / 'sub').mkdir(parents=True)
    _image(images / 'a.jpg', seed=1)
    _image(images / 'sub' / 'b.png', size=(40, 70), seed=2)
    (images / 'broken.jpg').write_bytes(b'not an image at all')
    out = tmp_path / 'out'
    result = segment_main([str(images), '--config', config, '--checkpoint', checkpoint, '--classes',
                           'disc,ring,heart', '--out-dir', str(out), '--device', 'cpu'])
    assert sorted(result['written'].values()) == ['a', 'b']
    assert list(result['skipped']) == [str(images / 'broken.jpg')]
    assert 'broken.jpg' in capsys.readouterr().err
    label = np.asarray(Image.open(out / 'b.png'))
    assert Image.open(out / 'b.png').mode == 'P' and label.shape == (70, 40)
    assert set(np.unique(label).tolist()) <= {0, 1, 2, 3}
    shares = json.loads((out / 'b.json').read_text())
    assert list(shares['classes']) == ['background', 'disc', 'ring', 'heart']
    assert sum(shares['classes'].values()) == pytest.approx(100, abs=0.01)
    for k, name in enumerate(shares['classes']):
        assert shares['classes'][name] == pytest.approx(100 * (label == k).mean(), abs=0.01)
    overlay = Image.open(out / 'a_overlay.png')
    assert overlay.width > overlay.height  # the legend beside the enlarged image


def test_segment_tool_names_a_missing_path(model_files, tmp_path):
    config, checkpoint = model_files
    with pytest.raises(FileNotFoundError, match='nowhere.jpg'):
        segment_main([str(tmp_path / 'nowhere.jpg'), '--config', config, '--checkpoint', checkpoint,
                      '--out-dir', str(tmp_path / 'out')])


def test_segment_tool_takes_cfg_options_and_names_a_missing_weight_file(model_files, tmp_path, capfd):
    config, checkpoint = model_files
    image = _image(tmp_path / 'a.jpg')
    key = 'model.test_cfg.verify_classes.clip_pretrained'
    with pytest.raises(MissingAssetError, match=rf'{key}: file .*nowhere.*clip\.pt does not exist'):
        segment_main([image, '--config', config, '--checkpoint', checkpoint, '--out-dir', str(tmp_path / 'out'),
                      '--cfg-options', f'{key}={tmp_path}/nowhere/clip.pt'])
    shares = {}
    for threshold in ('0.5', '0.0'):  # the untrained model finds no class at 0.5; at 0.0 every class
        out = tmp_path / threshold
        result = segment_main([image, '--config', config, '--checkpoint', checkpoint, '--out-dir', str(out),
                               '--cfg-options', f'model.test_cfg.label_threshold={threshold}', '--no-progress'])
        assert list(result['written'].values()) == ['a']
        shares[threshold] = json.loads((out / 'a.json').read_text())['classes']
    assert shares['0.5']['background'] == 100.0 and shares['0.0']['background'] < 100.0
    shown = capfd.readouterr()
    assert 'Inference' not in shown.out + shown.err  # --no-progress: not mmengine's bar either


@pytest.fixture(scope='module')
def rn_model_files(tmp_path_factory):
    """The CLIP-RN demo config on a random demo CLIP (a ModifiedResNet tower), and a checkpoint of
    its randomly initialised model."""
    root = tmp_path_factory.mktemp('segment_rn_model')
    clip = write_random_clip_checkpoint(str(root / 'clip.pt'), DEMO_CLIP_NAME, seed=0)
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(RN_DEMO_CONFIG))
    cfg.model.backbone.pretrained = cfg.model.text_encoder.pretrained = clip
    return _config_and_random_checkpoint(cfg, root)


def test_segment_tool_pads_an_image_too_small_for_the_backbone(rn_model_files, tmp_path):
    """A 1000 x 13 px image is resized by the test pipeline to 128 x 2: padded up to the ResNet's
    shortest side instead of a pooling error, and its label map has the image's size."""
    config, checkpoint = rn_model_files
    images = tmp_path / 'images'
    images.mkdir()
    _image(images / 'wide.png', size=(1000, 13), seed=3)
    _image(images / 'normal.jpg', size=(96, 64), seed=4)
    out = tmp_path / 'out'
    result = segment_main([str(images), '--config', config, '--checkpoint', checkpoint, '--classes',
                           'disc,heart', '--out-dir', str(out), '--device', 'cpu', '--no-progress'])
    assert sorted(result['written'].values()) == ['normal', 'wide'] and result['skipped'] == {}
    assert np.asarray(Image.open(out / 'wide.png')).shape == (13, 1000)
    assert json.loads((out / 'wide.json').read_text())['size'] == [13, 1000]


def test_segment_tool_names_and_skips_an_image_the_model_fails_on(model_files, tmp_path, capsys,
                                                                  monkeypatch):
    """An error of the model on one image names it and skips it; the other images are written."""
    config, checkpoint = model_files
    images = tmp_path / 'images'
    images.mkdir()
    _image(images / 'a.jpg', seed=1)
    _image(images / 'b.png', size=(40, 70), seed=2)
    predict = segment_api._predict_label

    def failing_on_b(inferencer, rgb):
        if rgb.shape[:2] == (70, 40):
            raise RuntimeError('Output size is too small')
        return predict(inferencer, rgb)

    monkeypatch.setattr(segment_api, '_predict_label', failing_on_b)
    out = tmp_path / 'out'
    result = segment_main([str(images), '--config', config, '--checkpoint', checkpoint, '--out-dir',
                           str(out), '--device', 'cpu', '--no-progress'])
    assert list(result['written'].values()) == ['a'] and (out / 'a.json').is_file()
    assert list(result['skipped']) == [str(images / 'b.png')]
    assert 'too small' in result['skipped'][str(images / 'b.png')]
    err = capsys.readouterr().err
    assert 'b.png' in err and 'skipped' in err
    assert not (out / 'b.json').exists()


def test_segment_tool_refuses_a_checkpoint_of_another_config(model_files, rn_model_files, tmp_path):
    """The Swin demo config with a checkpoint of the CLIP-RN demo model: refused before any image is
    segmented (mmseg only warned about the keys and ran with random layers)."""
    config, _ = model_files
    _, rn_checkpoint = rn_model_files
    image = _image(tmp_path / 'a.jpg')
    out = tmp_path / 'out'
    with pytest.raises(CheckpointMismatchError, match=r'model\.pth does not fit the model: it was saved '
                       r'from another config'):
        segment_main([image, '--config', config, '--checkpoint', rn_checkpoint, '--out-dir', str(out),
                      '--device', 'cpu'])
    assert not out.exists() or not any(out.iterdir())


@pytest.fixture(scope='module')
def clip_es_config(rn_model_files, tmp_path_factory):
    """The training-free CLIP-ES demo config on the random demo CLIP of ``rn_model_files``."""
    config, _ = rn_model_files
    cfg = Config.fromfile(str(CLIP_ES_DEMO_CONFIG))
    clip = Config.fromfile(config).model.backbone.pretrained
    cfg.model.backbone.pretrained = cfg.model.text_encoder.pretrained = clip
    path = str(tmp_path_factory.mktemp('clip_es') / 'clip_es.py')
    cfg.dump(path)
    return path


def test_a_checkpoint_for_a_training_free_model_is_refused(clip_es_config, rn_model_files, tmp_path):
    """A stage-1 checkpoint given with a training-free config is refused by the shared check (the
    pseudo-mask tools' model building and the segment tool), naming the file and the fix."""
    _, checkpoint = rn_model_files
    init_default_scope('mmseg')
    with pytest.raises(CheckpointMismatchError, match=r'model\.pth was given for TrainingFreeCLIPES, a '
                       r'training-free model.*Leave the checkpoint out'):
        build_model_from_checkpoint(Config.fromfile(clip_es_config), checkpoint, 'cpu', tool='test')
    with pytest.raises(CheckpointMismatchError, match='training-free'):
        segment_main([_image(tmp_path / 'a.jpg'), '--config', clip_es_config, '--checkpoint', checkpoint,
                      '--out-dir', str(tmp_path / 'out'), '--device', 'cpu'])


def test_segment_tool_names_a_checkpoint_that_is_not_a_whole_file(model_files, tmp_path):
    config, _ = model_files
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(WeightFileError, match=rf'segment: checkpoint {empty} is empty .*Fix: copy it again'):
        segment_main([_image(tmp_path / 'a.jpg'), '--config', config, '--checkpoint', str(empty),
                      '--out-dir', str(tmp_path / 'out'), '--device', 'cpu'])


def test_segment_tool_refuses_an_out_dir_of_other_classes_and_resumes_the_same(model_files, tmp_path,
                                                                                monkeypatch):
    """An --out-dir holding outputs of other --classes is refused (it was rewritten silently) unless
    --overwrite; the same settings go on from the finished images without segmenting them again."""
    config, checkpoint = model_files
    images = tmp_path / 'images'
    images.mkdir()
    _image(images / 'a.jpg', seed=1)
    out = tmp_path / 'out'
    run = lambda *extra: segment_main([str(images), '--config', config, '--checkpoint', checkpoint,  # noqa: E731
                                       '--out-dir', str(out), '--device', 'cpu', '--no-progress', *extra])
    run('--classes', 'disc,ring')
    before = (out / 'a.json').read_text()
    with pytest.raises(FileExistsError, match=r'--out-dir .*out holds the outputs of other settings \(classes: '
                       r"\['background', 'disc', 'ring'\] there, \['background', 'heart'\] now\); pass "
                       '--overwrite'):
        run('--classes', 'heart')
    assert (out / 'a.json').read_text() == before
    _image(images / 'b.png', size=(40, 70), seed=2)
    calls = []
    predict = segment_api._predict_label
    monkeypatch.setattr(segment_api, '_predict_label', lambda inf, rgb: calls.append(rgb.shape) or predict(inf, rgb))
    result = run('--classes', 'disc,ring')  # the same settings: a.jpg is finished, only b.png is new
    assert sorted(result['written'].values()) == ['a', 'b'] and calls == [(70, 40, 3)]
    result = run('--classes', 'heart', '--overwrite')
    assert list(json.loads((out / 'a.json').read_text())['classes']) == ['background', 'heart']
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='is a folder with files in it'):
        segment_main([str(images), '--config', config, '--checkpoint', checkpoint, '--out-dir', str(other)])


def test_segment_refuses_an_out_dir_that_is_a_file(tmp_path):
    out = tmp_path / 'afile'
    out.write_text('kept')
    with pytest.raises(FileExistsError, match=rf'--out-dir {out} is a file, not a folder'):
        segment_api.check_out_dir(str(out), dict(classes=['disc']))
    assert out.read_text() == 'kept'


def test_an_ordinary_segment_run_logs_no_registry_scope_warning(model_files, tmp_path, monkeypatch):
    """Every run logged mmengine's 'Failed to search registry with scope "mmseg" in the "function"
    registry tree': the inferencer looked its collate function up in mmseg's scope, which has no function
    registry."""
    logged = []
    real = mmengine.logging.print_log
    monkeypatch.setattr(mmengine.logging, 'print_log',  # mmengine's registry imports it at each call
                        lambda msg, *a, **k: logged.append(str(msg)) or real(msg, *a, **k))
    config, checkpoint = model_files
    result = segment_main([_image(tmp_path / 'a.jpg'), '--config', config, '--checkpoint', checkpoint,
                           '--out-dir', str(tmp_path / 'out'), '--device', 'cpu', '--no-progress'])
    assert list(result['written'].values()) == ['a']
    assert logged and not [m for m in logged if 'Failed to search registry' in m], logged


def test_the_inferencer_takes_a_collate_function_of_the_config_and_names_an_unknown_one(model_files):
    config, checkpoint = model_files
    cfg = Config.fromfile(config)
    cfg.test_dataloader.collate_fn = dict(type='default_collate')
    assert WSSSInferencer(cfg, checkpoint, device='cpu').collate_fn is default_collate
    cfg.test_dataloader.collate_fn = 'pseudo_colate'
    with pytest.raises(ConfigMismatchError, match="test_dataloader.collate_fn 'pseudo_colate' is no registered"):
        WSSSInferencer(cfg, checkpoint, device='cpu')
