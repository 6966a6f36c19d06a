"""A dataset listed from its image folder, or by a split file, never drops a labelled image silently: a
missing image ends the run with one line naming the image, the list it came from and the fix."""
from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.cli import run_tool
from mmseg_clip_wsss.datasets import DatasetError, VOCWSSSDataset


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


def _root(tmp_path: Path, images, labelled, split=None) -> Path:
    """A VOC-layout root holding ``images`` (32x24 JPEGs), a label file of ``labelled`` ids (each a
    dog) and, when given, the split file ``train.txt``."""
    root = tmp_path / 'voc'
    (root / 'JPEGImages').mkdir(parents=True)
    for image_id in images:
        Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(root / 'JPEGImages' / f'{image_id}.jpg')
    (root / 'labels.txt').write_text(''.join(f'{i} dog\n' for i in labelled))
    if split is not None:
        (root / 'train.txt').write_text(''.join(f'{i}\n' for i in split))
    return root


def _dataset(root: Path, ann_file: str = ''):
    return VOCWSSSDataset(data_root=str(root), ann_file=ann_file, label_file='labels.txt',
                          data_prefix=dict(img_path='JPEGImages'), pipeline=[])


def _one_line(build) -> str:
    """The message a command-line tool prints for the error of ``build`` (one line, no traceback)."""
    with pytest.raises(SystemExit) as info:
        run_tool(build)
    message = str(info.value.code)
    assert message.startswith('error: ') and '\n' not in message, message
    return message


def test_without_a_split_file_a_labelled_image_missing_from_the_folder_is_named(tmp_path):
    root = _root(tmp_path, images=['a', 'c'], labelled=['a', 'b', 'c'])
    with pytest.raises(DatasetError) as info:  # it used to build with 'a' and 'c' alone
        _dataset(root)
    assert isinstance(info.value, FileNotFoundError)
    message = _one_line(lambda: _dataset(root))
    for part in (str(root / 'JPEGImages' / 'b.jpg'), str(root / 'labels.txt'), 'split file'):
        assert part in message, message
    assert str(root / 'JPEGImages' / 'a.jpg') not in message
    # the folder and the label file agreeing build as before
    assert [i['img_id'] for i in _dataset(_root(tmp_path / 'ok', ['a', 'b'], ['a', 'b']))] == ['a', 'b']


def test_with_a_split_file_a_missing_image_ends_with_one_line(tmp_path):
    root = _root(tmp_path, images=['a'], labelled=['a', 'b'], split=['a', 'b'])
    with pytest.raises(DatasetError) as info:
        _dataset(root, 'train.txt')
    assert isinstance(info.value, FileNotFoundError)  # what code catching missing files expects
    message = _one_line(lambda: _dataset(root, 'train.txt'))
    for part in (str(root / 'JPEGImages' / 'b.jpg'), str(root / 'train.txt'), 'remove their ids'):
        assert part in message, message


def test_an_image_without_a_label_line_ends_with_one_line_too(tmp_path):
    root = _root(tmp_path, images=['a', 'b'], labelled=['a'])
    message = _one_line(lambda: _dataset(root))
    assert 'have no line in label file' in message and str(root / 'labels.txt') in message


def test_a_missing_split_file_label_file_or_image_folder_ends_with_one_line(tmp_path):
    root = _root(tmp_path, images=['a'], labelled=['a'])
    assert str(root / 'nothing.txt') in _one_line(lambda: _dataset(root, 'nothing.txt'))
    (root / 'labels.txt').unlink()
    assert str(root / 'labels.txt') in _one_line(lambda: _dataset(root))
    for image in (root / 'JPEGImages').iterdir():
        image.unlink()
    (root / 'JPEGImages').rmdir()
    assert 'image directory ' + str(root / 'JPEGImages') in _one_line(lambda: _dataset(root))
