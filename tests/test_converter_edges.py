"""Edge cases of the annotation converters: COCO annotations without segmentation, a missing json, a
'background' category; VOC boxes that are empty, incomplete or absent, objects without a name; class
names with a comma; pseudo masks of another size than their image."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmseg_clip_wsss.datasets import (COCO_CLASSES, DEMO_CLASSES, DatasetError, coco_category_to_label,
                                      coco_to_labels, load_image_labels, parse_voc_xml,
                                      pseudo_masks_to_coco, voc_xml_to_coco, voc_xml_to_labels,
                                      write_image_labels, write_palette_png)
from mmseg_clip_wsss.datasets.label_mask import PSEUDO_MASK_SIZE_FIX

PERSON, DOG = COCO_CLASSES.index('person'), COCO_CLASSES.index('dog')  # COCO ids 1 and 18


# ------------------------------------------------------------------------------------------------
# COCO json
# ------------------------------------------------------------------------------------------------
def write_coco(path: Path, annotations, categories=None) -> Path:
    images = [dict(id=1, file_name='a.jpg', height=10, width=12),
              dict(id=2, file_name='b.jpg', height=10, width=12)]
    categories = categories or [dict(id=1, name='person'), dict(id=18, name='dog')]
    path.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return path


def test_coco_annotation_without_segmentation_labels_the_image_but_draws_nothing(tmp_path):
    ann_file = write_coco(tmp_path / 'instances.json', [
        dict(id=1, image_id=1, category_id=18, iscrowd=0, area=12., segmentation=[],
             bbox=[1, 1, 4, 3]),  # a box only (COCO has a few of these)
        dict(id=2, image_id=1, category_id=1, iscrowd=0, area=8.,
             segmentation=[[6, 2, 10, 2, 10, 4, 6, 4]]),
        dict(id=3, image_id=2, category_id=1, iscrowd=0, area=0., bbox=[0, 0, 1, 1]),  # no key
    ])
    summary = coco_to_labels(str(ann_file), str(tmp_path / 'labels.txt'), COCO_CLASSES,
                             masks_out=str(tmp_path / 'masks'), show_progress=False)
    labels = load_image_labels(str(tmp_path / 'labels.txt'), COCO_CLASSES)
    assert labels == {'a': ('person', 'dog'), 'b': ('person', )}  # image labels: every annotation
    assert summary['object_counts']['dog'] == 1 and summary['object_counts']['person'] == 2
    mask_a = np.array(Image.open(tmp_path / 'masks' / 'a.png'))
    assert set(np.unique(mask_a).tolist()) == {0, PERSON}  # the dog has no pixels to draw
    assert np.all(mask_a[2:4, 6:10] == PERSON)
    assert not np.array(Image.open(tmp_path / 'masks' / 'b.png')).any()


def test_coco_missing_json_and_background_category(tmp_path):
    missing = tmp_path / 'annotations' / 'instances_train2014.json'
    with pytest.raises(FileNotFoundError) as err:
        coco_to_labels(str(missing), str(tmp_path / 'labels.txt'), COCO_CLASSES)
    assert str(missing) in str(err.value) and 'docs/datasets.md' in str(err.value)
    assert not (tmp_path / 'labels.txt').exists()

    categories = [dict(id=0, name='background'), dict(id=1, name='person')]
    with pytest.raises(ValueError, match=r"COCO category 'background' \(id 0\) is not one of"):
        coco_category_to_label(categories, COCO_CLASSES)
    ann_file = write_coco(tmp_path / 'bg.json', [], categories)
    with pytest.raises(ValueError, match="'background'"):
        coco_to_labels(str(ann_file), str(tmp_path / 'labels.txt'), COCO_CLASSES)
    assert not (tmp_path / 'labels.txt').exists()


# ------------------------------------------------------------------------------------------------
# VOC XML
# ------------------------------------------------------------------------------------------------
def write_voc(root: Path, objects_xml: str, size=(40, 30)) -> Path:
    """One image ``x`` of ``size`` (W, H) with the given ``<object>`` elements."""
    (root / 'JPEGImages').mkdir(parents=True, exist_ok=True)
    (root / 'Annotations').mkdir(exist_ok=True)
    Image.new('RGB', size).save(root / 'JPEGImages' / 'x.jpg')
    (root / 'Annotations' / 'x.xml').write_text(f'<annotation>{objects_xml}</annotation>')
    return root / 'Annotations' / 'x.xml'


BOX = '<xmin>3</xmin><ymin>2</ymin><xmax>10</xmax><ymax>7</ymax>'


def voc_object(name='<name>star</name>', box=BOX):
    return f'<object>{name}<difficult>0</difficult><bndbox>{box}</bndbox></object>'


@pytest.mark.parametrize('box, message', [
    ('<xmin>10</xmin><ymin>2</ymin><xmax>5</xmax><ymax>7</ymax>', 'has an empty box'),  # xmax < xmin
    ('<xmin>50</xmin><ymin>2</ymin><xmax>60</xmax><ymax>7</ymax>', 'has an empty box'),  # off image
    ('<xmin>3</xmin><ymin>2</ymin><xmax>10</xmax>', 'has an incomplete <bndbox>'),  # no ymax
    ('<xmin>3</xmin><ymin>2</ymin><xmax>ten</xmax><ymax>7</ymax>', 'has an incomplete <bndbox>'),
], ids=['reversed', 'outside', 'no_ymax', 'not_a_number'])
def test_voc_box_that_is_empty_or_incomplete_names_the_file(tmp_path, box, message):
    xml = write_voc(tmp_path, voc_object() + voc_object(name='<name>ring</name>', box=box))
    with pytest.raises(ValueError) as err:
        voc_xml_to_coco(str(tmp_path), 'det/gt.json', DEMO_CLASSES)
    assert str(xml) in str(err.value) and message in str(err.value)
    assert "'ring'" in str(err.value)
    assert not (tmp_path / 'det' / 'gt.json').exists()


def test_voc_object_without_box_or_name(tmp_path):
    xml = write_voc(tmp_path, '<object><name>star</name><difficult>0</difficult></object>')
    assert parse_voc_xml(str(xml)) == [dict(name='star', bbox=None, difficult=False)]
    with pytest.raises(ValueError, match=r"object 'star' has no <bndbox>"):
        voc_xml_to_coco(str(tmp_path), 'det/gt.json', DEMO_CLASSES)
    # a box reaching past the image is clipped to it
    write_voc(tmp_path, voc_object(box='<xmin>31</xmin><ymin>1</ymin><xmax>45</xmax><ymax>40</ymax>'))
    voc_xml_to_coco(str(tmp_path), 'det/gt.json', DEMO_CLASSES)
    ann = json.loads((tmp_path / 'det' / 'gt.json').read_text())['annotations'][0]
    assert ann['bbox'] == [30.0, 0.0, 10.0, 30.0] and ann['area'] == 300.0
    for name in ('', '<name>  </name>'):
        xml = write_voc(tmp_path, voc_object() + voc_object(name=name))
        with pytest.raises(ValueError) as err:
            parse_voc_xml(str(xml))
        assert str(xml) in str(err.value) and 'an <object> has no <name>' in str(err.value)
        with pytest.raises(ValueError, match='has no <name>'):
            voc_xml_to_labels(str(tmp_path), 'labels.txt', DEMO_CLASSES, show_progress=False)


# ------------------------------------------------------------------------------------------------
# label files, pseudo masks
# ------------------------------------------------------------------------------------------------
def test_class_name_with_a_comma_is_refused_and_the_old_file_kept(tmp_path):
    path = tmp_path / 'labels.txt'
    write_image_labels(str(path), {'a': ['dog']})
    before = path.read_text()
    with pytest.raises(ValueError, match=r"class name 'hot dog, cold' of image 'b' cannot be written"):
        write_image_labels(str(path), {'a': ['dog'], 'b': ['hot dog, cold']})
    assert path.read_text() == before  # nothing half-written
    # the same through the VOC converter: a class list with such a name cannot be written
    write_voc(tmp_path, voc_object(name='<name>hot dog, cold</name>'))
    with pytest.raises(ValueError, match='cannot be written to a label file'):
        voc_xml_to_labels(str(tmp_path), str(path), ('background', 'hot dog, cold'),
                          show_progress=False)
    assert path.read_text() == before


def test_pseudo_masks_to_coco_refuses_a_mask_of_another_size(tmp_path):
    img_dir, mask_dir = tmp_path / 'images', tmp_path / 'masks'
    img_dir.mkdir()
    mask_dir.mkdir()
    for name, mask_size in (('a', (16, 24)), ('b', (24, 16))):  # (H, W); every image is 16 x 24
        Image.new('RGB', (24, 16)).save(img_dir / f'{name}.jpg')
        write_palette_png(str(mask_dir / f'{name}.png'), np.ones(mask_size, np.uint8))
    with pytest.raises(ValueError) as err:
        pseudo_masks_to_coco(str(mask_dir), str(img_dir), str(tmp_path / 'out.json'), DEMO_CLASSES,
                             show_progress=False)
    assert str(err.value).startswith(f'pseudo mask {mask_dir / "b.png"} is 24x16 (HxW) but its image '
                                     f'{img_dir / "b.jpg"} is 16x24 as loaded: ')
    assert str(err.value).endswith(PSEUDO_MASK_SIZE_FIX + '.')
    assert not (tmp_path / 'out.json').exists()
    write_palette_png(str(mask_dir / 'b.png'), np.ones((1, 1), np.uint8))  # 1x1: no 2-d array once squeezed
    with pytest.raises(DatasetError, match=rf'^pseudo mask {mask_dir / "b.png"} is 1x1 \(HxW\) but its image'):
        pseudo_masks_to_coco(str(mask_dir), str(img_dir), str(tmp_path / 'out.json'), DEMO_CLASSES,
                             show_progress=False)
    assert not (tmp_path / 'out.json').exists()
