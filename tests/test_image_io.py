"""The one image/mask reader: images and masks beyond Pillow's own pixel limit load wherever the other
paths load them, and one above the project's limit is refused everywhere with the file and the fix
(the variable that raises the limit), never a bare decoder error."""
import numpy as np
import pytest
from PIL import Image

import mmseg_clip_wsss  # noqa: F401  (registration, the pixel limit)
from mmseg_clip_wsss.apis.inferencer import load_rgb
from mmseg_clip_wsss.apis.segment import segment_images
from mmseg_clip_wsss.cam import is_valid_png
from mmseg_clip_wsss.cam.evaluate import read_label_png
from mmseg_clip_wsss.cam.run import DEFAULT_CAM_PIPELINE
from mmseg_clip_wsss import datasets
from mmseg_clip_wsss.cli import run_tool
from mmseg_clip_wsss.registry import TRANSFORMS
from mmseg_clip_wsss.datasets import (DatasetError, LoadWSSSAnnotations, LoadWSSSImage,
                                      colour_masks_to_labels, image_size, pseudo_masks_to_coco,
                                      read_confidence_png, voc_palette)

#: The setting of the limit (OpenCV's own variable), as the messages and docs name it.
PIXEL_LIMIT_ENV = 'OPENCV_IO_MAX_IMAGE_PIXELS'

#: One side of the big mask: 13400 x 13400 = 179,560,000 pixels, above Pillow's own limit
#: (2 x 89,478,485 = 178,956,970, where Image.open raises DecompressionBombError) and below OpenCV's
#: 2**30, which reads such an image.
BIG_SIDE = 13400
CLASSES = ('background', 'aeroplane', 'bicycle')


def _palette_png(path, label: np.ndarray) -> str:
    img = Image.fromarray(label)
    img = img.convert('P') if img.mode != 'L' else img
    img.putpalette(voc_palette(256).astype(np.uint8).ravel().tolist())
    img.save(path, compress_level=1)
    return str(path)


@pytest.fixture(scope='module')
def big_mask(tmp_path_factory):
    """A 13400 x 13400 palette PNG mask (class 1 in a 100 x 200 box), written once."""
    label = np.zeros((BIG_SIDE, BIG_SIDE), np.uint8)
    label[100:200, 100:300] = 1
    return _palette_png(tmp_path_factory.mktemp('big') / 'big.png', label)


def test_a_mask_beyond_pillows_own_limit_loads_everywhere(big_mask):
    assert BIG_SIDE * BIG_SIDE > 2 * 89478485  # Pillow's own limit would refuse it
    assert image_size(big_mask) == (BIG_SIDE, BIG_SIDE)
    label = read_label_png(big_mask)  # the evaluator
    assert label.shape == (BIG_SIDE, BIG_SIDE) and label[150, 200] == 1 and label.sum() == 100 * 200
    assert is_valid_png(big_mask, (BIG_SIDE, BIG_SIDE))  # the resume check of make_pseudo_masks
    assert not is_valid_png(big_mask, (BIG_SIDE, BIG_SIDE - 1))
    results = LoadWSSSAnnotations()(dict(seg_map_path=big_mask, reduce_zero_label=False, seg_fields=[]))
    assert results['gt_seg_map'].shape == (BIG_SIDE, BIG_SIDE)  # the datasets' GT loader
    assert datasets.PIXEL_LIMIT_ENV == PIXEL_LIMIT_ENV and datasets.pixel_limit() == 2**30
    assert Image.MAX_IMAGE_PIXELS >= 2**30  # mmcv's/mmseg's own Pillow reads follow


@pytest.fixture
def small_limit(monkeypatch):
    """The pixel limit lowered to 1000 pixels, so the 64 x 48 files below are 'too large'."""
    monkeypatch.setenv(PIXEL_LIMIT_ENV, '1000')


def _files(tmp_path):
    rng = np.random.default_rng(0)
    image = tmp_path / 'img' / 'a.jpg'
    image.parent.mkdir()
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(image)
    (tmp_path / 'masks').mkdir()
    mask = _palette_png(tmp_path / 'masks' / 'a.png', np.zeros((48, 64), np.uint8))
    confidence = tmp_path / 'masks' / 'a_confidence.png'
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(confidence)
    return str(image), mask, str(confidence)


def _refused(error: Exception, path: str) -> None:
    message = str(error)
    assert path in message and '64x48' in message and PIXEL_LIMIT_ENV in message, message
    assert f'{PIXEL_LIMIT_ENV}=3072' in message  # the value that would let it through


def test_every_reader_names_a_file_above_the_limit_and_how_to_raise_it(tmp_path, small_limit):
    image, mask, confidence = _files(tmp_path)
    readers = [
        (lambda: read_label_png(mask), mask),
        (lambda: is_valid_png(mask, (48, 64)), mask),  # a resumed run stops with the fix, not a crash
        (lambda: LoadWSSSAnnotations()(dict(seg_map_path=mask, reduce_zero_label=False,
                                            seg_fields=[])), mask),
        (lambda: LoadWSSSImage()(dict(img_path=image)), image),
        (lambda: LoadWSSSImage(imdecode_backend='pillow')(dict(img_path=image)), image),
        (lambda: TRANSFORMS.build(DEFAULT_CAM_PIPELINE[0])(dict(img_path=image)), image),  # make_pseudo_masks
        (lambda: load_rgb(image), image),
        (lambda: image_size(image), image),
        (lambda: read_confidence_png(confidence), confidence),
        (lambda: colour_masks_to_labels(str(tmp_path / 'masks')), mask),
        (lambda: pseudo_masks_to_coco(str(tmp_path / 'masks'), str(tmp_path / 'img'),
                                      str(tmp_path / 'out.json'), CLASSES, show_progress=False), image),
    ]
    for read, path in readers:
        with pytest.raises(DatasetError) as info:
            read()
        _refused(info.value, path)
        assert isinstance(info.value, datasets.ImageTooLargeError)
    with pytest.raises(SystemExit) as exit_info:  # the command lines print it as one line
        run_tool(lambda: read_label_png(mask))
    assert str(exit_info.value.code).startswith('error: label mask ') and '\n' not in exit_info.value.code


class _StubInferencer:
    """What segment_images asks of an inferencer before it runs the model."""
    classes = ('background', 'cat')

    class model:  # noqa: N801
        dataset_meta = dict(classes=('background', 'cat'), palette=None)

    def __call__(self, *args, **kwargs):
        raise AssertionError('an image above the limit must not reach the model')


def test_segment_skips_an_image_above_the_limit_naming_it_and_the_fix(tmp_path, small_limit, capsys):
    image, _, _ = _files(tmp_path)
    result = segment_images(_StubInferencer(), [image], str(tmp_path / 'out'), show_progress=False)
    assert result['written'] == {} and list(result['skipped']) == [image]
    assert PIXEL_LIMIT_ENV in result['skipped'][image] and PIXEL_LIMIT_ENV in capsys.readouterr().err


def test_a_bad_limit_setting_is_named(monkeypatch):
    monkeypatch.setenv(PIXEL_LIMIT_ENV, 'lots')
    with pytest.raises(ValueError, match=f"{PIXEL_LIMIT_ENV}='lots' is no positive whole number"):
        datasets.pixel_limit()
    monkeypatch.setenv(PIXEL_LIMIT_ENV, str(4 * 2**30))
    assert datasets.pixel_limit() == 4 * 2**30


@pytest.mark.parametrize('hw', [(1, 1), (1, 5), (4, 1)])
def test_a_one_pixel_high_or_wide_gt_mask_loads_as_h_by_w(tmp_path, hw):
    """mmseg's LoadAnnotations squeezes the sides of 1 away (a 1x1 mask had shape () and was refused
    as 'has shape ()'): a valid mask of one pixel row or column loads as (H, W)."""
    mask = str(tmp_path / 'mask.png')
    Image.fromarray(np.full(hw, 2, dtype=np.uint8)).save(mask)
    for ori_shape in (hw, None):
        results = LoadWSSSAnnotations()(dict(seg_map_path=mask, reduce_zero_label=False, seg_fields=[],
                                             ori_shape=ori_shape, num_classes=3))
        assert results['gt_seg_map'].shape == hw and (results['gt_seg_map'] == 2).all()
