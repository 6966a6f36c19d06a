"""WSSS datasets and transforms: image-level labels in, no mask ever opened by training, GT masks only
for evaluation, and clear errors on bad input (corrupt/missing images, bad label files)."""
import copy
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS
from PIL import Image
from torch.utils.data import DataLoader

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.datasets import (DEMO_CLASSES, CorruptImageError, DemoWSSSDataset,
                                      LoadWSSSAnnotations, LoadWSSSImage, PackWSSSInputs,
                                      VOCWSSSDataset, labels_to_multi_hot, load_image_labels,
                                      voc_xml_to_labels, write_image_labels)
from mmseg_clip_wsss.datasets.synthetic import make_demo_data
from mmseg_clip_wsss.structures import IMAGE_LABELS, stack_image_labels

REPO = Path(__file__).resolve().parents[1]
DEMO_CFG = REPO / 'configs/_base_/datasets/demo_wsss.py'
K = len(DEMO_CLASSES)


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


@pytest.fixture(scope='module')
def demo_src(tmp_path_factory):
    """A tiny demo dataset (8 train + 4 val images of 64 px), written once per module."""
    root = tmp_path_factory.mktemp('demo_src') / 'demo'
    make_demo_data(str(root), seed=0, num_train=8, num_val=4, size=64, show_progress=False)
    return root


@pytest.fixture
def demo_root(demo_src, tmp_path):
    """A private copy of the demo dataset that a test may damage."""
    root = tmp_path / 'demo'
    shutil.copytree(demo_src, root)
    return root


def dataset_cfg(root, loader='train_dataloader', **overrides):
    cfg = copy.deepcopy(Config.fromfile(str(DEMO_CFG))[loader].dataset)
    cfg.data_root = str(root)
    cfg.update(overrides)
    return cfg


def xml_classes(root, image_id):
    tree = ET.parse(root / 'Annotations' / f'{image_id}.xml')
    return {obj.findtext('name') for obj in tree.getroot().iter('object')}


class _OpenRecorder:
    """Records every path Python opens while active (``sys.addaudithook``: hooks cannot be removed,
    so one hook is installed for the session and switched on/off)."""
    paths = None
    installed = False

    @classmethod
    def hook(cls, event, args):
        if cls.paths is not None and event == 'open' and args and isinstance(args[0], (str, Path)):
            cls.paths.append(str(args[0]))

    def __enter__(self):
        if not _OpenRecorder.installed:
            sys.addaudithook(_OpenRecorder.hook)
            _OpenRecorder.installed = True
        _OpenRecorder.paths = []
        return _OpenRecorder.paths

    def __exit__(self, *exc):
        _OpenRecorder.paths = None


@MODELS.register_module(force=True)
class _ToyImageLabelModel(BaseModel):
    """A multi-label classifier on mean colours: enough to run the runner on gt_image_labels."""

    def __init__(self, num_classes, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.fc = torch.nn.Linear(3, num_classes)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        logits = self.fc(inputs.float().mean(dim=(2, 3)))  # (B, K)
        if mode == 'loss':
            labels = stack_image_labels(data_samples)  # (B, K)
            return dict(loss=torch.nn.functional.binary_cross_entropy_with_logits(logits, labels))
        if mode == 'predict':
            for sample, img in zip(data_samples, inputs):
                sample.pred_sem_seg = PixelData(data=torch.zeros(1, *img.shape[-2:]).long())
            return data_samples
        return logits


def toy_runner(tmp_path, root, with_val=False):
    cfg = Config.fromfile(str(DEMO_CFG))
    train_loader = copy.deepcopy(cfg.train_dataloader)
    train_loader.dataset.data_root = str(root)
    train_loader.batch_size = 4
    kwargs = {}
    if with_val:
        val_loader = copy.deepcopy(cfg.val_dataloader)
        val_loader.dataset.data_root = str(root)
        kwargs = dict(val_dataloader=val_loader, val_cfg=dict(type='ValLoop'),
                      val_evaluator=cfg.val_evaluator)
    return Runner(
        model=dict(type='_ToyImageLabelModel', num_classes=K,
                   data_preprocessor=dict(type='SegDataPreProcessor', mean=[128.] * 3,
                                          std=[64.] * 3, bgr_to_rgb=True, size=(64, 64))),
        work_dir=str(tmp_path / 'work'),
        experiment_name=f'toy_{tmp_path.name}',
        train_dataloader=train_loader,
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=3, val_interval=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook', interval=1000)),
        default_scope='mmseg',
        **kwargs)


# ------------------------------------------------------------------------------------------------
# acceptance 1: the WSSS training pipeline never opens a mask file
# ------------------------------------------------------------------------------------------------
def test_train_pipeline_never_opens_masks_and_eval_needs_them(demo_root, tmp_path):
    mask_dir = demo_root / 'SegmentationClass'
    shutil.rmtree(mask_dir)
    cfg = Config.fromfile(str(DEMO_CFG))
    assert not any('Annotation' in t['type'] for t in cfg.train_pipeline)

    dataset = DATASETS.build(dataset_cfg(demo_root))
    assert len(dataset) == 8
    assert all('seg_map_path' not in dataset.get_data_info(i) for i in range(len(dataset)))
    loader = DataLoader(dataset, batch_size=4, shuffle=False, collate_fn=pseudo_collate)
    with _OpenRecorder() as opened:
        batches = [batch for _ in range(2) for batch in loader]  # two epochs
    assert len(batches) == 4
    for batch in batches:
        labels = stack_image_labels(batch['data_samples'])  # (B, K)
        assert labels.shape == (4, K) and torch.all(labels[:, 0] == 1)
        assert torch.all(labels[:, 1:].sum(1) >= 1)
        assert all('gt_sem_seg' not in s for s in batch['data_samples'])
    assert any('JPEGImages' in p for p in opened)
    assert not [p for p in opened if 'SegmentationClass' in p]

    # a real runner trains on the same config without any mask
    runner = toy_runner(tmp_path, demo_root)
    runner.train()
    assert runner.iter == 3

    # evaluation reads masks: fails at once, naming a missing mask and what to do
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.build(dataset_cfg(demo_root, 'val_dataloader'))
    assert str(mask_dir / 'val_00000.png') in str(err.value)
    assert 'Evaluation reads GT masks' in str(err.value)


def test_corrupt_masks_train_runs_then_evaluation_fails(demo_root, tmp_path):
    for png in sorted((demo_root / 'SegmentationClass').glob('*.png')):
        png.write_bytes(b'this is not a PNG file')
    runner = toy_runner(tmp_path, demo_root, with_val=True)
    with pytest.raises(CorruptImageError) as err:
        runner.train()  # 3 training iterations, then validation at iter 3
    assert runner.iter == 3
    assert str(demo_root / 'SegmentationClass' / 'val_00000.png') in str(err.value)
    assert 'cannot be decoded' in str(err.value)


# ------------------------------------------------------------------------------------------------
# labels, packing, GT masks for evaluation
# ------------------------------------------------------------------------------------------------
def test_image_labels_match_xml_and_masks(demo_src):
    dataset = DATASETS.build(dataset_cfg(demo_src, 'cam_dataloader'))
    assert isinstance(dataset, DemoWSSSDataset)
    assert dataset.metainfo['classes'] == DEMO_CLASSES
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        labels = info[IMAGE_LABELS]
        assert labels.dtype == np.float32 and labels.shape == (K, ) and labels[0] == 1
        present = {DEMO_CLASSES[k] for k in np.flatnonzero(labels[1:]) + 1}
        assert present == xml_classes(demo_src, info['img_id'])
        sample = dataset[i]['data_samples']
        assert torch.equal(sample.gt_image_labels, torch.from_numpy(labels))
        in_mask = set(torch.unique(sample.gt_sem_seg.data).tolist()) - {0}
        assert {DEMO_CLASSES[k] for k in in_mask} == present
        assert sample.img_id == info['img_id']


def test_pack_wsss_inputs_and_multi_hot():
    results = dict(img=np.zeros((8, 6, 3), np.uint8), img_path='x.jpg', img_id='x',
                   gt_image_labels=labels_to_multi_hot(['ring', 'star'], DEMO_CLASSES))
    packed = PackWSSSInputs()(results)
    assert packed['inputs'].shape == (3, 8, 6)
    expected = torch.zeros(K)
    expected[[0, DEMO_CLASSES.index('ring'), DEMO_CLASSES.index('star')]] = 1
    assert torch.equal(packed['data_samples'].gt_image_labels, expected)
    assert packed['data_samples'].img_id == 'x'
    # no labels in the results (plain inference): nothing packed, no error
    packed = PackWSSSInputs()(dict(img=np.zeros((4, 4, 3), np.uint8)))
    assert IMAGE_LABELS not in packed['data_samples']


def test_empty_label_images_are_reported_and_skipped(demo_root):
    labels = load_image_labels(str(demo_root / 'ImageLabels/train.txt'), DEMO_CLASSES)
    labels['train_00002'] = ()
    labels['train_00005'] = ()
    write_image_labels(str(demo_root / 'ImageLabels/train.txt'), labels)
    dataset = DATASETS.build(dataset_cfg(demo_root))
    assert len(dataset) == 6
    assert dataset.empty_label_images == ['train_00002', 'train_00005']
    assert 'train_00002' not in {dataset.get_data_info(i)['img_id'] for i in range(len(dataset))}
    kept = DATASETS.build(dataset_cfg(demo_root, skip_empty_labels=False))
    assert len(kept) == 8
    info = [kept.get_data_info(i) for i in range(8) if kept.get_data_info(i)['img_id'] ==
            'train_00002'][0]
    assert info[IMAGE_LABELS].tolist() == [1.] + [0.] * (K - 1)


def test_val_dataset_without_labels_and_class_subset(demo_src):
    val = DATASETS.build(dataset_cfg(demo_src, 'val_dataloader'))
    sample = val[0]['data_samples']
    assert IMAGE_LABELS not in sample and 'gt_sem_seg' in sample
    # a subset of classes through metainfo: other classes of the label file are dropped silently
    subset = ('background', 'disc', 'ring', 'square', 'triangle')
    ds = DATASETS.build(dataset_cfg(demo_src, metainfo=dict(classes=subset), skip_empty_labels=False))
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        expected = xml_classes(demo_src, info['img_id']) & set(subset)
        assert {subset[k] for k in np.flatnonzero(info[IMAGE_LABELS][1:]) + 1} == expected


def test_voc_dataset_on_voc_layout(tmp_path):
    root = tmp_path / 'VOC2012'
    (root / 'JPEGImages').mkdir(parents=True)
    (root / 'Annotations').mkdir()
    (root / 'ImageSets/Segmentation').mkdir(parents=True)
    objects = {'2007_000032': ['aeroplane', 'aeroplane', 'person'], '2007_000039': ['tvmonitor']}
    for image_id, names in objects.items():
        Image.fromarray(np.full((10, 12, 3), 90, np.uint8)).save(root / 'JPEGImages' /
                                                                 f'{image_id}.jpg')
        body = ''.join(f'<object><name>{n}</name><difficult>0</difficult></object>' for n in names)
        (root / 'Annotations' / f'{image_id}.xml').write_text(f'<annotation>{body}</annotation>')
    (root / 'ImageSets/Segmentation/trainaug.txt').write_text('\n'.join(objects) + '\n')
    voc_xml_to_labels(str(root), 'ImageLabels/trainaug.txt', VOCWSSSDataset.METAINFO['classes'],
                      split_file='ImageSets/Segmentation/trainaug.txt', show_progress=False)
    cfg = copy.deepcopy(Config.fromfile(str(REPO / 'configs/_base_/datasets/voc12_wsss.py')))
    assert cfg.train_dataloader.dataset.with_gt_masks is False
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.update(data_root=str(root), pipeline=[dict(type='LoadWSSSImage'),
                                                 dict(type='PackWSSSInputs')])
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset.metainfo['classes']) == 21
    labels = stack_image_labels([dataset[i]['data_samples'] for i in range(2)])
    classes = dataset.metainfo['classes']
    assert labels[0].nonzero().flatten().tolist() == [0, classes.index('aeroplane'),
                                                      classes.index('person')]
    assert labels[1].nonzero().flatten().tolist() == [0, classes.index('tvmonitor')]


# ------------------------------------------------------------------------------------------------
# acceptance 4: bad input -> errors that name the file and what to do
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('damage', ['garbage', 'truncated'])
def test_corrupt_jpeg_names_the_file(demo_root, damage):
    path = demo_root / 'JPEGImages' / 'train_00003.jpg'
    data = path.read_bytes()
    path.write_bytes(b'\x00garbage' * 20 if damage == 'garbage' else data[:len(data) // 2])
    dataset = DATASETS.build(dataset_cfg(demo_root))
    index = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))].index('train_00003')
    with pytest.raises(CorruptImageError) as err:
        dataset[index]
    message = str(err.value)
    assert str(path) in message and 'remove its id from the split file' in message
    if damage == 'truncated':
        assert 'truncated JPEG' in message


def test_missing_image_listed_in_split(demo_root):
    missing = demo_root / 'JPEGImages' / 'train_00004.jpg'
    missing.unlink()
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.build(dataset_cfg(demo_root))
    message = str(err.value)
    assert str(missing) in message and 'ImageSets/Segmentation/train.txt' in message
    assert 'remove their ids from the split file' in message
    # without the load-time check, the loading transform names the file
    dataset = DATASETS.build(dataset_cfg(demo_root, check_files=False))
    index = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))].index('train_00004')
    with pytest.raises(FileNotFoundError, match='train_00004.jpg does not exist'):
        dataset[index]


def test_label_file_with_unknown_class(demo_root):
    label_file = demo_root / 'ImageLabels' / 'train.txt'
    lines = label_file.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith('train_00001'))
    lines[row] += ',zebra'
    label_file.write_text('\n'.join(lines) + '\n')
    with pytest.raises(ValueError) as err:
        DATASETS.build(dataset_cfg(demo_root))
    message = str(err.value)
    assert f'{label_file}:{row + 1}' in message and "'zebra'" in message
    assert 'not in the dataset classes' in message and 'voc_xml_to_labels.py' in message


def test_label_file_problems(demo_root):
    label_file = demo_root / 'ImageLabels' / 'train.txt'
    text = label_file.read_text()
    # an image of the split without a line in the label file
    label_file.write_text('\n'.join(l for l in text.splitlines() if not l.startswith('train_00006')))
    with pytest.raises(ValueError, match=r'have no line in label file .*train\.txt \(train_00006\)'):
        DATASETS.build(dataset_cfg(demo_root))
    # the same image twice
    label_file.write_text(text + 'train_00000 disc\n')
    with pytest.raises(ValueError, match=r"train\.txt:\d+: image 'train_00000' is listed again"):
        DATASETS.build(dataset_cfg(demo_root))
    # no label file at all
    label_file.unlink()
    with pytest.raises(FileNotFoundError, match=r'label file .*train\.txt does not exist'):
        DATASETS.build(dataset_cfg(demo_root))


def test_missing_split_or_image_dir(tmp_path, demo_root):
    with pytest.raises(FileNotFoundError, match=r'split file .*nothing\.txt does not exist'):
        DATASETS.build(dataset_cfg(demo_root, ann_file='ImageSets/Segmentation/nothing.txt'))
    shutil.rmtree(demo_root / 'JPEGImages')
    with pytest.raises(FileNotFoundError, match=r'image directory .*JPEGImages does not exist'):
        DATASETS.build(dataset_cfg(demo_root, ann_file=''))
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.build(dataset_cfg(tmp_path / 'no_such_root'))
    assert f'dataset root {tmp_path / "no_such_root"} (data_root) does not exist' in str(err.value)
    assert 'docs/datasets.md' in str(err.value)


def test_loading_transforms_channels_and_mask_errors(tmp_path):
    gray = tmp_path / 'gray.png'
    Image.fromarray(np.arange(20, dtype=np.uint8).reshape(4, 5)).save(gray)
    rgba = tmp_path / 'rgba.png'
    Image.fromarray(np.full((4, 5, 4), 200, np.uint8), 'RGBA').save(rgba)
    for path, color_type in ((gray, 'color'), (gray, 'unchanged'), (rgba, 'unchanged')):
        out = LoadWSSSImage(color_type=color_type)(dict(img_path=str(path)))
        assert out['img'].shape == (4, 5, 3) and out['ori_shape'] == (4, 5)
    # an info without a mask path (a with_gt_masks=False dataset) in an evaluation pipeline
    with pytest.raises(KeyError, match='with_gt_masks=False'):
        LoadWSSSAnnotations()(dict(img_path='a.jpg', reduce_zero_label=False, seg_fields=[]))
    with pytest.raises(FileNotFoundError, match='ground-truth mask .*nope.png does not exist'):
        LoadWSSSAnnotations()(dict(seg_map_path=str(tmp_path / 'nope.png'),
                                   reduce_zero_label=False, seg_fields=[]))
    # ignore_empty keeps mmengine's refetch behaviour
    assert LoadWSSSImage(ignore_empty=True)(dict(img_path=str(tmp_path / 'nope.jpg'))) is None
