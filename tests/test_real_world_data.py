"""Real-world dataset problems, each built on the fly: masks that disagree with their images, split-file
formats, pseudo masks of unknown origin, class lists without background, inputs that used to end in
raw library errors. Each is either understood or refused with the file and the fix, and the tools
print such refusals without a traceback."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.apis import ConfigMismatchError, check_config_classes
from mmseg_clip_wsss.cli import run_tool
from mmseg_clip_wsss.apis import preflight
from mmseg_clip_wsss.cam import cams_to_pseudo_mask, evaluate_pseudo_masks, generate_pseudo_masks
from mmseg_clip_wsss.cam.run import check_protocol
from mmseg_clip_wsss.datasets import (VOC_CLASSES, DatasetError, VOCWSSSDataset, WSSSDataset,
                                      coco_to_labels, image_size, pseudo_masks_to_coco,
                                      voc_palette, write_palette_png)
from mmseg_clip_wsss.datasets import split_file
from mmseg_clip_wsss.structures import IMAGE_LABELS

REPO = Path(__file__).resolve().parents[1]
PIPELINE = [dict(type='LoadWSSSImage'), dict(type='LoadWSSSAnnotations')]


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


def run_cli(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / 'tools' / script), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1'))


def write_jpeg(path: Path, height: int, width: int, orientation: int = 1) -> None:
    """A (height, width) stored JPEG with an EXIF orientation tag."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, 'JPEG', exif=exif.tobytes())


def voc_root(tmp_path: Path, ids, labels=None) -> Path:
    """A VOC-layout root with 64x48 images, the split file ``train.txt`` and a label file."""
    root = tmp_path / 'voc'
    for image_id in ids:
        write_jpeg(root / 'JPEGImages' / f'{image_id}.jpg', 64, 48)
    (root / 'ImageSets').mkdir(parents=True, exist_ok=True)
    (root / 'ImageSets' / 'train.txt').write_text(''.join(f'{i}\n' for i in ids))
    lines = labels if labels is not None else [f'{i} dog' for i in ids]
    (root / 'labels.txt').write_text('\n'.join(lines) + '\n')
    return root


def voc_dataset(root: Path, **kwargs):
    return VOCWSSSDataset(data_root=str(root), ann_file='ImageSets/train.txt',
                          data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
                          **{**dict(with_gt_masks=True, pipeline=PIPELINE), **kwargs})


# --------------------------------------------------------------------------- 1. masks vs images
def test_a_mask_that_disagrees_with_its_image_is_refused_at_load_time(tmp_path):
    root = voc_root(tmp_path, ['rotated', 'colour', 'values'])
    # a JPEG stored 64x40 with EXIF orientation 6 is used as displayed: 40x64 (mmcv's rule) ...
    write_jpeg(root / 'JPEGImages' / 'rotated.jpg', 64, 40, orientation=6)
    assert image_size(str(root / 'JPEGImages' / 'rotated.jpg')) == (40, 64)
    labels = np.zeros((64, 40), np.uint8)
    labels[:10, :5] = 12  # a dog in the stored top-left corner
    masks = root / 'SegmentationClass'
    write_palette_png(str(masks / 'rotated.png'), labels)  # ... but its mask fits the stored pixels
    colour = np.zeros((64, 48), np.uint8)
    colour[20:40, 10:30] = 15
    Image.fromarray(voc_palette(256)[colour]).save(masks / 'colour.png')  # RGB VOC colours
    write_palette_png(str(masks / 'values.png'), np.full((64, 48), 30, np.uint8))  # no VOC class
    dataset = voc_dataset(root)

    with pytest.raises(DatasetError) as err:
        dataset[0]
    message = str(err.value)
    assert 'rotated.png is 64x40' in message and 'rotated.jpg is 40x64' in message
    assert 'EXIF orientation 6' in message and 'ROTATE_270' in message
    with pytest.raises(DatasetError, match=r'colour\.png .* has 3 channels .*colour_masks_to_labels\.py'):
        dataset[1]
    with pytest.raises(DatasetError, match=r'values\.png .* values \[30\] .* 21 class indices'):
        dataset[2]

    # the fixes the messages give: turn the mask as the orientation says; convert the colours
    with Image.open(masks / 'rotated.png') as mask:
        mask.transpose(Image.Transpose.ROTATE_270).save(masks / 'rotated.png')
    turned = dataset[0]['gt_seg_map']
    assert turned.shape == dataset[0]['img'].shape[:2] == (40, 64)
    assert (turned == 12).sum() == 50 and turned[:5, -10:].min() == 12  # the corner turned along
    result = run_cli('dataset_converters/colour_masks_to_labels.py', str(masks))
    assert result.returncode == 0, result.stderr
    assert '1 colour masks converted, 2 already label maps' in result.stdout
    assert (dataset[1]['gt_seg_map'] == colour).all()


def test_every_tool_uses_the_displayed_frame_and_names_the_files(tmp_path):
    """The pseudo mask of an EXIF-rotated image (written at the loaded, displayed size) is accepted by
    pseudo_masks_to_coco; a shape mismatch in evaluation names both files."""
    images, pseudo, gts = tmp_path / 'img', tmp_path / 'pseudo', tmp_path / 'gt'
    write_jpeg(images / 'a.jpg', 64, 40, orientation=6)
    mask = np.zeros((40, 64), np.uint8)
    mask[5:15, 20:40] = 3
    write_palette_png(str(pseudo / 'a.png'), mask)
    summary = pseudo_masks_to_coco(str(pseudo), str(images), str(tmp_path / 'out.json'),
                                   VOC_CLASSES, show_progress=False)
    entry = json.loads((tmp_path / 'out.json').read_text())['images'][0]
    assert (entry['height'], entry['width']) == (40, 64) and summary['num_instances'] == 1

    write_palette_png(str(gts / 'a.png'), mask.T)  # the GT of the stored frame
    with pytest.raises(DatasetError) as err:
        evaluate_pseudo_masks([(str(pseudo / 'a.png'), str(gts / 'a.png'))], VOC_CLASSES)
    assert f'pseudo mask {pseudo / "a.png"} is 40x64' in str(err.value)
    assert f'ground-truth mask {gts / "a.png"} is 64x40' in str(err.value)


# --------------------------------------------------------------------------- 2. split files
def test_split_files_in_the_formats_users_have(tmp_path, monkeypatch):
    root = voc_root(tmp_path, ['a', 'b', 'c'])
    split = root / 'ImageSets' / 'train.txt'
    split.write_bytes('\ufeffa\r\nb.jpg\r\n\r\n/JPEGImages/c.jpg /SegmentationClass/c.png\r\na\r\n\r\n'
                      .encode('utf-8'))
    warnings = []
    monkeypatch.setattr(split_file, 'print_log', lambda msg, **kw: warnings.append(msg))
    dataset = voc_dataset(root, with_gt_masks=False, pipeline=[], label_file='labels.txt')
    assert [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))] == ['a', 'b', 'c']
    assert dataset[2]['img_path'].endswith('JPEGImages/c.jpg')
    assert warnings and 'a (lines 1 and 5)' in warnings[0] and str(split) in warnings[0]

    split.write_text('a\nb c d\n')
    with pytest.raises(DatasetError, match=rf'{split}:2: cannot read .b c d.'):
        voc_dataset(root, with_gt_masks=False, label_file='labels.txt')
    split.write_text('/JPEGImages/a.jpg /SegmentationClass/b.png\n')
    with pytest.raises(DatasetError, match=rf'{split}:1: .*same file stem'):
        voc_dataset(root, with_gt_masks=False, label_file='labels.txt')

    split.write_text('\n\n')
    with pytest.raises(DatasetError, match=rf'split file {split} lists no image'):
        voc_dataset(root, with_gt_masks=False, label_file='labels.txt')
    split.write_text('a\nb\n')
    (root / 'labels.txt').write_text('a\nb\n')  # labelled, but without any foreground class
    with pytest.raises(DatasetError) as err:
        voc_dataset(root, with_gt_masks=False, label_file='labels.txt')
    assert f'none of the 2 images of split file {split}' in str(err.value)
    assert f'label file {root / "labels.txt"}' in str(err.value)


# --------------------------------------------------------------------------- 3. foreign pseudo masks
def test_pseudo_masks_of_unknown_origin_are_not_resumed(tmp_path):
    out = tmp_path / 'masks'
    check_protocol(str(out), dict(split='train'))  # nothing there yet: fine
    write_palette_png(str(out / 'x.png'), np.zeros((4, 4), np.uint8))  # another tool's mask
    with pytest.raises(DatasetError) as err:
        check_protocol(str(out), dict(split='train'))
    assert f'{out} already holds 1 PNG masks' in str(err.value) and 'no protocol.json' in str(err.value)
    assert '--overwrite' in str(err.value)
    with pytest.raises(SystemExit) as exit_:  # what tools/make_pseudo_masks.py prints, no traceback
        run_tool(lambda: check_protocol(str(out), dict(split='train')))
    assert str(exit_.value.code).startswith(f'error: make_pseudo_masks: {out} already holds')


# --------------------------------------------------------------------------- 4. no background
class _CAMModel(torch.nn.Module):
    background_index = 0  # the segmentor's default

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def compute_cams(self, inputs, labels):
        raise AssertionError('refused before any image')


def test_a_class_list_without_background(tmp_path, monkeypatch):
    classes = ('cat', 'dog')
    root = voc_root(tmp_path, ['a'], labels=['a dog'])
    dataset = WSSSDataset(data_root=str(root), ann_file='ImageSets/train.txt', pipeline=[],
                          data_prefix=dict(img_path='JPEGImages'), label_file='labels.txt',
                          metainfo=dict(classes=classes))
    assert dataset[0][IMAGE_LABELS].tolist() == [0., 1.]  # no class is forced on as background

    def config(**model):
        return Config(dict(
            model=dict(type='WSSSEncoderDecoder', **model), cam_cfg=dict(bg_mode='threshold'),
            train_dataloader=dict(dataset=dict(type='WSSSDataset', metainfo=dict(classes=classes)))))

    with pytest.raises(ConfigMismatchError) as err:  # default background_index=0 would make 'cat' it
        check_config_classes(config())
    assert "model.background_index=0 makes class 0 ('cat') the background" in str(err.value)
    assert 'set model.background_index=None' in str(err.value)
    notes = []
    monkeypatch.setattr(preflight, 'print_log', lambda msg, **kw: notes.append(msg))
    check_config_classes(config(background_index=None))
    assert notes == ["train_dataloader.dataset: pseudo masks: no 'background' class: pixels where no "
                     'present class reaches bg_threshold=0.35 get the ignore value 255.']
    prompt = config(background_index=None)
    prompt.cam_cfg.bg_mode = 'prompt'
    with pytest.raises(ConfigMismatchError, match="bg_mode='prompt'.* every pixel would get an object"):
        check_config_classes(prompt)

    # the writer: a model whose background is class 0 is refused for these classes ...
    with pytest.raises(DatasetError, match="have no 'background' but model.background_index=0"):
        generate_pseudo_masks(_CAMModel(), [], str(tmp_path / 'masks'), classes=classes)
    # ... and without a background class, a dog-only image's background becomes ignore, not 'cat'
    cams = torch.zeros(1, 2, 4, 4)
    cams[0, 1, :2] = 0.9  # the dog in the top half
    mask = cams_to_pseudo_mask(cams, torch.tensor([[0., 1.]]), background_index=None)[0]
    assert (mask[:2] == 1).all() and (mask[2:] == 255).all()


# --------------------------------------------------------------------------- 5. raw library errors
def test_inputs_that_used_to_end_in_library_errors(tmp_path):
    square = [[10, 10, 30, 10, 30, 30, 10, 30]]
    coco = dict(
        images=[dict(id=1, file_name='x.jpg', height=40, width=40)],
        categories=[dict(id=1, name='person'), dict(id=18, name='dog')],
        annotations=[dict(id=7, image_id=1, category_id=18, segmentation=[[1, 1, 5, 5]], area=0),
                     dict(id=8, image_id=1, category_id=1, segmentation=square, area=400)])
    ann_file = tmp_path / 'instances.json'
    ann_file.write_text(json.dumps(coco))
    result = run_cli('dataset_converters/coco_to_labels.py', str(ann_file), '--out',
                     str(tmp_path / 'labels.txt'), '--masks-out', str(tmp_path / 'masks'))
    assert result.returncode == 0, result.stderr
    assert 'annotation 7 of image x.jpg (parts of 2 points)' in result.stdout + result.stderr
    assert (tmp_path / 'labels.txt').read_text().splitlines()[-1] == 'x person,dog'
    mask = np.array(Image.open(tmp_path / 'masks' / 'x.png'))
    assert set(np.unique(mask).tolist()) == {0, 1} and (mask == 1).sum() >= 20 * 20
    summary = coco_to_labels(str(ann_file), str(tmp_path / 'l2.txt'), ('background', 'person', 'dog'))
    assert summary['undrawable'] == [dict(annotation_id=7, image='x.jpg', points=[2.0])]

    with pytest.raises(DatasetError, match=r"classes='dog' is a string, which would be read as the "
                       r"classes \('d', 'o', 'g'\).*classes=\('background', 'dog'\)"):
        VOCWSSSDataset(data_root=str(tmp_path), metainfo=dict(classes='dog'), lazy_init=True)
    with pytest.raises(ConfigMismatchError, match="classes='dog' is a string"):
        check_config_classes(Config(dict(train_dataloader=dict(
            dataset=dict(type='VOCWSSSDataset', metainfo=dict(classes='dog'))))))

    # a tool refusing bad input prints the message, not a traceback
    (tmp_path / 'split.txt').write_text('/JPEGImages/a.jpg /SegmentationClass/b.png\n')
    result = run_cli('dataset_converters/voc_xml_to_labels.py', str(tmp_path), '--split', 'split.txt')
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert f'error: {tmp_path / "split.txt"}:1: cannot read' in result.stderr
