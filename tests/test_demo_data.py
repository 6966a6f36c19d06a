"""The demo data generator (``mmseg_clip_wsss.datasets.synthetic.voc_writer``, ``tools/make_demo_data.py``): the VOC
devkit layout, byte-identical output per seed, XML/labels/masks that agree, a dataset that is not
trivial, and the demo dataset config on top of it."""
import copy
import dataclasses
import hashlib
import importlib.util
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.evaluation import IoUMetric
from mmseg.registry import DATASETS
from PIL import Image

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.datasets import DEMO_CLASSES, load_image_labels, voc_palette
from mmseg_clip_wsss.datasets.synthetic import voc_writer as make_demo
from mmseg_clip_wsss.datasets.synthetic.world import world_preset

DEMO_WORLD = world_preset('demo')

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metric_reference import reference_miou  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO_CFG = REPO / 'configs/_base_/datasets/demo_wsss.py'


make_demo_tool = importlib.import_module('mmseg_clip_wsss.cli.make_demo_data')


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """The small deterministic version: 8 train + 4 val images at the default 128 px."""
    root = tmp_path_factory.mktemp('demo') / 'demo'
    info = make_demo.make_demo_data(str(root), seed=0, num_train=8, num_val=4,
                                    show_progress=False)
    return root, info


def file_hashes(root: Path):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_same_seed_gives_byte_identical_files(demo, tmp_path):
    root, _ = demo
    again = tmp_path / 'again'
    make_demo.make_demo_data(str(again), seed=0, num_train=8, num_val=4, show_progress=False)
    first, second = file_hashes(root), file_hashes(again)
    assert len(first) == 3 * 12 + 3 + 2 + 1  # jpg/png/xml per image, 3 splits, 2 labels, info
    assert first == second
    other = tmp_path / 'other'
    make_demo.make_demo_data(str(other), seed=1, num_train=8, num_val=4, show_progress=False)
    third = file_hashes(other)
    assert third.keys() == first.keys()
    assert third['JPEGImages/train_00000.jpg'] != first['JPEGImages/train_00000.jpg']


def test_voc_layout_and_consistent_annotations(demo):
    root, info = demo
    splits = {s: (root / f'ImageSets/Segmentation/{s}.txt').read_text().split()
              for s in ('train', 'val', 'trainval')}
    assert len(splits['train']) == 8 and len(splits['val']) == 4
    assert splits['trainval'] == splits['train'] + splits['val']
    assert info['classes'] == list(DEMO_CLASSES) and json.loads(
        (root / 'demo_info.json').read_text()) == json.loads(json.dumps(info))
    for split in ('train', 'val'):
        labels = load_image_labels(str(root / f'ImageLabels/{split}.txt'), DEMO_CLASSES)
        assert list(labels) == splits[split]
        for image_id in splits[split]:
            img = Image.open(root / 'JPEGImages' / f'{image_id}.jpg')
            assert img.mode == 'RGB' and img.size == (128, 128)
            png = Image.open(root / 'SegmentationClass' / f'{image_id}.png')
            assert png.mode == 'P'
            assert np.array(png.getpalette()[:768]).reshape(256, 3).tolist() == \
                voc_palette().tolist()
            mask = np.array(png)
            xml = ET.parse(root / 'Annotations' / f'{image_id}.xml').getroot()
            assert xml.findtext('filename') == f'{image_id}.jpg'
            assert xml.findtext('size/width') == '128' and xml.findtext('segmented') == '1'
            objects = xml.findall('object')
            assert 1 <= len(objects) <= 4
            names = {o.findtext('name') for o in objects}
            assert names == set(labels[image_id])  # labels equal the objects written
            assert names == {DEMO_CLASSES[k] for k in np.unique(mask) if k != 0}
            for obj in objects:  # each box lies on pixels of its class
                x0, y0, x1, y1 = (int(obj.findtext(f'bndbox/{k}'))
                                  for k in ('xmin', 'ymin', 'xmax', 'ymax'))
                assert 1 <= x0 <= x1 <= 128 and 1 <= y0 <= y1 <= 128
                region = mask[y0 - 1:y1, x0 - 1:x1]
                assert (region == DEMO_CLASSES.index(obj.findtext('name'))).any()


WORLD_64 = dataclasses.replace(DEMO_WORLD, image_size=64)


def test_dataset_is_not_trivial(tmp_path):
    root = tmp_path / 'wide'
    info = make_demo.make_demo_data(str(root), seed=3, num_train=60, num_val=0, size=64,
                                    show_progress=False)
    assert DEMO_WORLD.class_names == DEMO_CLASSES
    assert info['world'] == DEMO_WORLD.to_dict() | dict(image_size=64)
    # every texture is shared by two classes: texture alone does not give the class
    textures = [c.texture for c in DEMO_WORLD.classes]
    assert sorted(textures.count(t) for t in set(textures)) == [2, 2, 2, 2]
    counts = info['splits']['train']['image_counts']
    assert all(counts[name] > 0 for name in DEMO_CLASSES[1:])
    labels = load_image_labels(str(root / 'ImageLabels/train.txt'), DEMO_CLASSES)
    sizes = [len(v) for v in labels.values()]
    assert min(sizes) == 1 and max(sizes) >= 3
    assert any(set(pair) <= set(v) for v in labels.values() for pair in DEMO_WORLD.cooccurring)
    # colour is not the class: one class is rendered in different colours
    rng = np.random.default_rng(0)
    colours = set()
    for _ in range(12):
        img, label, _ = make_demo.draw_labelled_scene(rng, WORLD_64)
        square = label == DEMO_CLASSES.index('square')
        if square.sum() > 30:
            colours.add(tuple(np.median(img[square], axis=0).round(-1)))
    assert len(colours) >= 2
    # objects cover a range of scales
    areas = []
    for _ in range(20):
        _, label, objects = make_demo.draw_labelled_scene(rng, WORLD_64)
        areas += [np.sum(label == DEMO_CLASSES.index(o['name'])) for o in objects]
    assert max(areas) > 4 * min(areas)


def test_demo_config_loads_and_gt_vs_gt_miou_is_100(demo):
    root, _ = demo
    cfg = Config.fromfile(str(DEMO_CFG))
    assert cfg.train_dataloader.dataset.with_gt_masks is False
    assert not any('Annotation' in t['type'] for t in cfg.train_pipeline)
    val_cfg = copy.deepcopy(cfg.val_dataloader.dataset)
    val_cfg.data_root = str(root)
    dataset = DATASETS.build(val_cfg)
    assert len(dataset) == 4 and dataset.metainfo['classes'] == DEMO_CLASSES
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset.metainfo
    partial = IoUMetric(iou_metrics=['mIoU'])
    partial.dataset_meta = dataset.metainfo
    pairs = []
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        gt = sample.gt_sem_seg.data
        assert gt.shape == (1, 128, 128) and gt.dtype == torch.int64
        metric.process({}, [dict(pred_sem_seg=dict(data=gt.clone()),
                                 gt_sem_seg=dict(data=gt.clone()))])
        pred = gt.clone()
        pred[:, :, :64] = 0  # the left half predicted as background: a known partial overlap
        partial.process({}, [dict(pred_sem_seg=dict(data=pred), gt_sem_seg=dict(data=gt.clone()))])
        pairs.append((pred[0].numpy(), root / 'SegmentationClass' / f'{Path(sample.img_path).stem}.png'))
    assert metric.evaluate(len(dataset))['mIoU'] == pytest.approx(100.0)
    expected = reference_miou(pairs, len(DEMO_CLASSES))  # against the GT files as written
    assert 20 < expected < 90
    assert partial.evaluate(len(dataset))['mIoU'] == pytest.approx(expected, abs=0.01)


def test_cli_and_out_dir_guard(tmp_path, monkeypatch, capsys):
    out = tmp_path / 'cli'
    argv = ['make_demo_data.py', '--out', str(out), '--num-train', '3', '--num-val', '2',
            '--num-openvocab', '2', '--size', '48', '--no-progress']
    monkeypatch.setattr(sys, 'argv', argv)
    make_demo_tool.main()
    printed = capsys.readouterr().out
    assert "demo data 'demo' (3 train + 2 val + 2 open-vocabulary, 48x48 px, seed 0)" in printed
    assert len(list((out / 'JPEGImages').glob('*.jpg'))) == 7
    with pytest.raises(FileExistsError, match='--overwrite'):
        make_demo_tool.main()
    (out / 'keep.txt').write_text('not ours')
    monkeypatch.setattr(sys, 'argv', argv[:4] + ['1', '--num-val', '1', '--num-openvocab', '0',
                                                 '--size', '48', '--no-progress', '--overwrite'])
    make_demo_tool.main()
    assert len(list((out / 'JPEGImages').glob('*.jpg'))) == 2  # stale files are gone
    assert (out / 'keep.txt').read_text() == 'not ours'
    # run as a command, refused input ends with the message alone (exit status 1)
    for args, message in ((['--out', str(out)], '--overwrite'), (['--out', str(tmp_path / 'small'), '--size', '16'],
                                                                  'use >= 32')):
        result = subprocess.run([sys.executable, str(REPO / 'tools' / 'make_demo_data.py'), *args,
                                 '--no-progress'], capture_output=True, text=True, cwd=str(REPO))
        assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr
        assert result.stderr.splitlines()[-1].startswith('error: ') and message in result.stderr


def test_openvocab_split_labels_unseen_classes_after_the_labelled_ones(tmp_path):
    root = tmp_path / 'ov'
    info = make_demo.make_demo_data(str(root), world=WORLD_64, num_train=2, num_val=0,
                                    num_openvocab=12, show_progress=False)
    vocab = info['open_vocab_classes']
    assert vocab[:len(DEMO_CLASSES)] == list(DEMO_CLASSES)
    assert vocab[len(DEMO_CLASSES):] == [c.name for c in DEMO_WORLD.unseen]
    ids = (root / 'ImageSets/Segmentation/openvocab.txt').read_text().split()
    assert len(ids) == 12
    values = set()
    for image_id in ids:
        values |= set(np.unique(np.array(Image.open(root / 'SegmentationClass' / f'{image_id}.png'))))
    assert max(values) >= len(DEMO_CLASSES)  # unseen classes are drawn and labelled
    labels = load_image_labels(str(root / 'ImageLabels/openvocab.txt'), tuple(vocab))
    assert any(set(v) - set(DEMO_CLASSES) for v in labels.values())
    # the labelled splits never show an unseen class
    train = load_image_labels(str(root / 'ImageLabels/train.txt'), DEMO_CLASSES)
    assert all(set(v) <= set(DEMO_CLASSES) for v in train.values())
    # a world without unseen classes has no open-vocabulary split
    closed = make_demo.make_demo_data(str(tmp_path / 'closed'), num_train=2, num_val=0, num_openvocab=5,
                                      world=dataclasses.replace(WORLD_64, unseen=()), show_progress=False)
    assert closed['num_openvocab'] == 0 and 'openvocab' not in closed['splits']


@pytest.mark.parametrize('damage', ['cut', 'not an object'])
def test_a_damaged_demo_info_is_refused_naming_the_file_and_the_fix(tmp_path, damage):
    """A ``demo_info.json`` cut short (or holding a list) ends in the file, where it breaks and the
    command that writes it again, not in json's own error; the tools that read the world say it too."""
    from mmseg_clip_wsss.cli.tag_images import main as tag_main
    from mmseg_clip_wsss.datasets import DatasetError
    from mmseg_clip_wsss.datasets.synthetic import load_world, read_demo_info
    root = tmp_path / 'demo'
    make_demo.make_demo_data(str(root), seed=0, num_train=2, num_val=1, size=64, show_progress=False)
    info = root / 'demo_info.json'
    text = info.read_text()
    info.write_text(text[:len(text) // 2] if damage == 'cut' else '[1, 2]')
    where = r' \(.* at line \d+, column \d+\)' if damage == 'cut' else ''
    expected = (rf'{info} is not the JSON object the data generator writes{where}: it was cut short or edited\. '
                rf'Write the data again with `python tools/make_demo_data.py --out {root} --overwrite`')
    for read in (read_demo_info, load_world):
        with pytest.raises(DatasetError, match=expected):
            read(str(root))
    with pytest.raises(DatasetError, match=expected):
        tag_main(['clip.pt', '--data-root', str(root), '--out', str(tmp_path / 'tags.txt')])
    assert not (tmp_path / 'tags.txt').exists()
