"""Annotation converters on generated fixtures: VOC XML -> label file, COCO instances json -> label
file + split + semantic masks; the label-file format itself."""
import copy
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from PIL import Image
from pycocotools import mask as mask_utils

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.datasets import (COCO_CLASSES, COCOWSSSDataset, VOCWSSSDataset,
                                      coco_category_to_label, coco_to_labels, load_image_labels,
                                      parse_voc_xml, voc_palette, voc_xml_to_labels,
                                      write_image_labels)

REPO = Path(__file__).resolve().parents[1]
VOC_CLASSES = VOCWSSSDataset.METAINFO['classes']
#: COCO's official (non-contiguous) category ids, in class order.
COCO_IDS = (list(range(1, 12)) + list(range(13, 26)) + [27, 28] + list(range(31, 45)) +
            list(range(46, 66)) + [67, 70] + list(range(72, 83)) + list(range(84, 91)))


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


# ------------------------------------------------------------------------------------------------
# VOC XML
# ------------------------------------------------------------------------------------------------
VOC_OBJECTS = {  # image id -> [(name, difficult)]
    '2007_000032': [('aeroplane', 0), ('aeroplane', 0), ('person', 1), ('person', 0)],
    '2007_000039': [('tvmonitor', 0)],
    '2008_000002': [('diningtable', 0), ('chair', 1), ('pottedplant', 0), ('bottle', 0)],
    '2009_000010': [('cat', 1)],
    '2010_000005': [('sheep', 0), ('cow', 0)],
}


def write_voc_fixture(root: Path, objects=VOC_OBJECTS):
    (root / 'Annotations').mkdir(parents=True, exist_ok=True)
    for image_id, objs in objects.items():
        body = ''.join(f'\n  <object>\n    <name> {name} </name>\n    <pose>Left</pose>\n'
                       f'    <difficult>{difficult}</difficult>\n    <bndbox><xmin>1</xmin><ymin>1'
                       '</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>\n  </object>'
                       for name, difficult in objs)
        (root / 'Annotations' / f'{image_id}.xml').write_text(
            f'<annotation>\n  <filename>{image_id}.jpg</filename>{body}\n</annotation>\n')
    split = root / 'ImageSets' / 'Segmentation'
    split.mkdir(parents=True, exist_ok=True)
    (split / 'train.txt').write_text('2008_000002\n2007_000032\n2009_000010\n')
    return root


def test_voc_xml_to_labels_equals_objects_written(tmp_path):
    root = write_voc_fixture(tmp_path / 'VOC2012')
    summary = voc_xml_to_labels(str(root), 'ImageLabels/train.txt', VOC_CLASSES,
                                split_file='ImageSets/Segmentation/train.txt', show_progress=False)
    labels = load_image_labels(str(root / 'ImageLabels/train.txt'), VOC_CLASSES)
    assert list(labels) == ['2008_000002', '2007_000032', '2009_000010']  # split order
    for image_id, names in labels.items():
        expected = {name for name, _ in VOC_OBJECTS[image_id]}
        assert set(names) == expected
        assert list(names) == sorted(expected, key=VOC_CLASSES.index)
    assert summary['num_images'] == 3 and summary['num_empty'] == 0
    assert summary['image_counts']['aeroplane'] == 1 and summary['object_counts']['aeroplane'] == 2
    assert summary['object_counts']['person'] == 2 and summary['image_counts']['cow'] == 0
    # difficult objects can be left out; an image left without objects is an id-only line
    voc_xml_to_labels(str(root), str(tmp_path / 'easy.txt'), VOC_CLASSES,
                      split_file='ImageSets/Segmentation/train.txt', skip_difficult=True,
                      show_progress=False)
    easy = load_image_labels(str(tmp_path / 'easy.txt'), VOC_CLASSES)
    assert easy['2008_000002'] == ('bottle', 'diningtable', 'pottedplant')
    assert easy['2009_000010'] == ()
    assert '2009_000010\n' in (tmp_path / 'easy.txt').read_text()


def test_voc_xml_without_split_and_parse(tmp_path):
    root = write_voc_fixture(tmp_path / 'VOC2012')
    summary = voc_xml_to_labels(str(root), 'ImageLabels/all.txt', VOC_CLASSES, show_progress=False)
    labels = load_image_labels(summary['out_file'], VOC_CLASSES)
    assert list(labels) == sorted(VOC_OBJECTS)
    objects = parse_voc_xml(str(root / 'Annotations/2007_000032.xml'))
    assert [o['name'] for o in objects] == ['aeroplane', 'aeroplane', 'person', 'person']
    assert objects[2] == dict(name='person', bbox=(1.0, 1.0, 5.0, 5.0), difficult=True)
    easy = parse_voc_xml(str(root / 'Annotations/2007_000032.xml'), skip_difficult=True)
    assert [o['name'] for o in easy] == ['aeroplane', 'aeroplane', 'person']


def test_voc_xml_errors_name_the_file(tmp_path):
    root = write_voc_fixture(tmp_path / 'VOC2012', {'a': [('dog', 0), ('unicorn', 0)]})
    with pytest.raises(ValueError) as err:
        voc_xml_to_labels(str(root), 'out.txt', VOC_CLASSES, show_progress=False)
    assert str(root / 'Annotations/a.xml') in str(err.value) and "'unicorn'" in str(err.value)
    (root / 'Annotations/a.xml').write_text('<annotation><object>')
    with pytest.raises(ValueError, match=r'a\.xml is not valid XML'):
        voc_xml_to_labels(str(root), 'out.txt', VOC_CLASSES, show_progress=False)
    (root / 'ImageSets/Segmentation/train.txt').write_text('a\nb\n')
    (root / 'Annotations/a.xml').write_text('<annotation/>')
    with pytest.raises(FileNotFoundError, match=r'b\.xml does not exist'):
        voc_xml_to_labels(str(root), 'out.txt', VOC_CLASSES,
                          split_file='ImageSets/Segmentation/train.txt', show_progress=False)


def test_voc_cli(tmp_path, monkeypatch, capsys):
    root = write_voc_fixture(tmp_path / 'VOC2012')
    tool = importlib.import_module('mmseg_clip_wsss.cli.voc_xml_to_labels')
    monkeypatch.setattr(sys, 'argv', ['voc_xml_to_labels.py', str(root), '--split',
                                      'ImageSets/Segmentation/train.txt', '--no-progress'])
    tool.main()
    out = capsys.readouterr().out
    assert 'ImageLabels/train.txt: 3 images' in out and 'aeroplane' in out
    labels = load_image_labels(str(root / 'ImageLabels/train.txt'), VOC_CLASSES)
    assert labels['2007_000032'] == ('aeroplane', 'person')


# ------------------------------------------------------------------------------------------------
# COCO json
# ------------------------------------------------------------------------------------------------
def box_polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def uncompressed_rle(mask):
    """COCO's uncompressed RLE (column-major run lengths, starting with a run of zeros)."""
    flat = mask.flatten(order='F').astype(np.int64)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return dict(counts=counts, size=list(mask.shape))


@pytest.fixture
def coco_fixture(tmp_path):
    h, w = 20, 30
    brush = np.zeros((h, w), np.uint8)
    brush[0:5, 0:10] = 1
    drier = np.zeros((h, w), np.uint8)
    drier[10:18, 20:28] = 1
    drier_rle = mask_utils.encode(np.asfortranarray(drier))
    drier_rle['counts'] = drier_rle['counts'].decode('ascii')
    categories = [dict(id=i, name=n) for i, n in zip(COCO_IDS, COCO_CLASSES[1:])][::-1]
    images = [dict(id=30, file_name='COCO_train2014_000000000030.jpg', height=h, width=w),
              dict(id=25, file_name='COCO_train2014_000000000025.jpg', height=h, width=w),
              dict(id=9, file_name='COCO_train2014_000000000009.jpg', height=h, width=w)]
    annotations = [
        dict(id=1, image_id=9, category_id=1, iscrowd=0, area=280.,
             segmentation=box_polygon(2, 2, 22, 16)),
        dict(id=2, image_id=9, category_id=67, iscrowd=0, area=25.,
             segmentation=box_polygon(5, 5, 10, 10)),
        dict(id=3, image_id=25, category_id=90, iscrowd=1, area=50.,
             segmentation=uncompressed_rle(brush)),
        dict(id=4, image_id=25, category_id=89, iscrowd=0, area=64., segmentation=drier_rle),
        dict(id=5, image_id=9, category_id=1, iscrowd=0, area=4.,
             segmentation=box_polygon(25, 15, 27, 17)),
    ]
    ann_file = tmp_path / 'annotations' / 'instances_train2014.json'
    ann_file.parent.mkdir()
    ann_file.write_text(json.dumps(dict(images=images, annotations=annotations,
                                        categories=categories)))
    return tmp_path, ann_file, dict(brush=brush, drier=drier)


def test_coco_category_mapping_by_name():
    categories = [dict(id=i, name=n) for i, n in zip(COCO_IDS, COCO_CLASSES[1:])]
    mapping = coco_category_to_label(categories, COCO_CLASSES)
    assert sorted(mapping.values()) == list(range(1, 81))
    assert mapping[1] == COCO_CLASSES.index('person') == 1
    assert mapping[67] == COCO_CLASSES.index('dining table')
    assert mapping[90] == 80 and COCO_CLASSES[80] == 'toothbrush'
    with pytest.raises(ValueError, match="COCO category 'unicorn' \\(id 91\\)"):
        coco_category_to_label(categories + [dict(id=91, name='unicorn')], COCO_CLASSES)


def test_coco_to_labels_split_and_masks(coco_fixture):
    root, ann_file, masks = coco_fixture
    summary = coco_to_labels(
        str(ann_file), str(root / 'ImageLabels/train2014.txt'), COCO_CLASSES,
        split_out=str(root / 'ImageSets/train2014.txt'),
        masks_out=str(root / 'SegmentationClass/train2014'), show_progress=False)
    labels = load_image_labels(str(root / 'ImageLabels/train2014.txt'), COCO_CLASSES)
    assert labels == {
        'COCO_train2014_000000000009': ('person', 'dining table'),
        'COCO_train2014_000000000025': ('hair drier', 'toothbrush'),
        'COCO_train2014_000000000030': (),
    }
    assert list(labels) == sorted(labels)
    assert (root / 'ImageSets/train2014.txt').read_text().split() == [
        'COCO_train2014_000000000009', 'COCO_train2014_000000000025']
    assert summary['num_images'] == 3 and summary['num_empty'] == 1
    assert summary['object_counts']['person'] == 2 and summary['image_counts']['person'] == 1

    png = Image.open(root / 'SegmentationClass/train2014/COCO_train2014_000000000009.png')
    assert png.mode == 'P'
    assert np.array(png.getpalette()[:768]).reshape(256, 3).tolist() == voc_palette().tolist()
    mask = np.array(png)
    table = COCO_CLASSES.index('dining table')
    assert mask.shape == (20, 30)
    assert np.all(mask[4:14, 12:20] == 1)  # person
    assert np.all(mask[6:9, 6:9] == table)  # the smaller table drawn over the person
    assert mask[0, 0] == 0 and mask[18, 2] == 0
    assert set(np.unique(mask).tolist()) == {0, 1, table}
    mask = np.array(Image.open(root / 'SegmentationClass/train2014/COCO_train2014_000000000025.png'))
    assert np.array_equal(mask == 80, masks['brush'].astype(bool))  # crowd, uncompressed RLE
    assert np.array_equal(mask == 79, masks['drier'].astype(bool))  # compressed RLE
    assert set(np.unique(mask).tolist()) == {0, 79, 80}
    mask = np.array(Image.open(root / 'SegmentationClass/train2014/COCO_train2014_000000000030.png'))
    assert not mask.any()

    # the COCO WSSS dataset reads what the converter wrote
    (root / 'train2014').mkdir()
    for image_id in labels:
        Image.fromarray(np.full((20, 30, 3), 99, np.uint8)).save(root / 'train2014' /
                                                                 f'{image_id}.jpg')
    cfg = Config.fromfile(str(REPO / 'configs/_base_/datasets/coco14_wsss.py'))
    assert cfg.train_dataloader.dataset.with_gt_masks is False
    assert not any('Annotation' in t['type'] for t in cfg.train_pipeline)
    cam_cfg = copy.deepcopy(cfg.cam_dataloader.dataset)
    cam_cfg.data_root = str(root)
    dataset = DATASETS.build(cam_cfg)
    assert isinstance(dataset, COCOWSSSDataset) and len(dataset) == 2
    sample = dataset[0]['data_samples']
    assert sample.gt_image_labels.nonzero().flatten().tolist() == [0, 1, table]
    assert set(torch.unique(sample.gt_sem_seg.data).tolist()) == {0, 1, table}


def test_coco_cli(coco_fixture, monkeypatch, capsys):
    root, ann_file, _ = coco_fixture
    tool = importlib.import_module('mmseg_clip_wsss.cli.coco_to_labels')
    monkeypatch.setattr(sys, 'argv', ['coco_to_labels.py', str(ann_file), '--out',
                                      str(root / 'labels.txt'), '--split-out', str(root / 's.txt'),
                                      '--no-progress'])
    tool.main()
    out = capsys.readouterr().out
    assert 'labels.txt: 3 images (1 without any foreground class)' in out
    assert 'wrote ' + str(root / 's.txt') + ': 2 ids' in out
    assert load_image_labels(str(root / 'labels.txt'), COCO_CLASSES)[
        'COCO_train2014_000000000025'] == ('hair drier', 'toothbrush')


# ------------------------------------------------------------------------------------------------
# the label-file format
# ------------------------------------------------------------------------------------------------
def test_label_file_round_trip_and_format(tmp_path):
    path = tmp_path / 'labels.txt'
    write_image_labels(str(path), {'b_1': ['teddy bear', 'person'], 'a_2': [], 'c_3': ['cat']},
                       header=['made by a test'])
    text = path.read_text()
    assert text.startswith('# image-level labels')
    assert 'b_1 teddy bear,person\na_2\nc_3 cat\n' in text
    labels = load_image_labels(str(path), COCO_CLASSES)
    assert labels == {'b_1': ('person', 'teddy bear'), 'a_2': (), 'c_3': ('cat', )}
    # comments, blank lines, spaces around names and an explicit background are accepted
    path.write_text('# c\n\nx  background , dog,dog \n')
    assert load_image_labels(str(path), VOC_CLASSES) == {'x': ('dog', )}
    path.write_text('x dog,,cat\n')
    with pytest.raises(ValueError, match=r'labels\.txt:1: empty class name'):
        load_image_labels(str(path), VOC_CLASSES)
    with pytest.raises(ValueError, match='contains whitespace'):
        write_image_labels(str(path), {'a b': ['dog']})
