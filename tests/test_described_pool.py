"""The demo world's describer: partial, vague, people-like descriptions of an unlabelled pool."""
import os
import re

import numpy as np
import pytest

from mmseg_clip_wsss.cli.make_described_pool import main as make_pool_main
from mmseg_clip_wsss.datasets import load_image_labels, read_coco_captions
from mmseg_clip_wsss.datasets.synthetic import DescriptionStyle, describe_scene, draw_scene, world_preset
from mmseg_clip_wsss.datasets.synthetic.described_pool import POOL_CAPTIONS

WORLD = world_preset('demo')


def _class_words(text):
    """The classes a description names by a class word or synonym (singular or plural)."""
    named = set()
    for cls in WORLD.classes:
        for word in cls.words:
            if re.search(rf'\b{re.escape(word)}(e?s)?\b', text):
                named.add(cls.name)
    return named


def _scenes(n=80):
    return [draw_scene(np.random.default_rng([5, i]), WORLD) for i in range(n)]


def _describe_all(scenes, **style):
    style = DescriptionStyle(**style)
    rng = np.random.default_rng(0)
    return [[describe_scene(rng, s.objects, style) for _ in range(style.per_image)] for s in scenes]


def test_descriptions_name_some_objects_with_synonyms_counts_and_vague_words():
    scenes = _scenes()
    texts = _describe_all(scenes)
    flat = ' '.join(t for per_image in texts for t in per_image)
    partial = 0
    for scene, per_image in zip(scenes, texts):
        present = {o.cls.name for o in scene.objects}
        assert len(per_image) == 5
        for text in per_image:
            assert _class_words(text) <= present  # never a class that is not there
            partial += len(present) > 1 and 0 < len(_class_words(text)) < len(present)
    assert partial > 20  # many descriptions of multi-class images name only some classes
    for word in ('circle', 'hoop', 'two ', 'something round', 'a shape', 'striped'):
        assert word in flat, word


def test_vagueness_knob_takes_the_class_words_away():
    scenes = _scenes()
    named = {}
    for vagueness in (0.0, 0.5, 1.0):
        texts = [t for per_image in _describe_all(scenes, vagueness=vagueness, empty=0.0) for t in per_image]
        named[vagueness] = np.mean([bool(_class_words(t)) for t in texts])
    assert named[0.0] == 1.0 and named[1.0] == 0.0
    assert 0.3 < named[0.5] < 0.8
    with pytest.raises(ValueError, match='vagueness is a probability'):
        DescriptionStyle(vagueness=1.5)


def test_pool_writes_coco_captions_with_its_own_seed(tmp_path):
    make_pool_main(['--out', str(tmp_path / 'a'), '--num-images', '6', '--seed', '4'])
    make_pool_main(['--out', str(tmp_path / 'b'), '--num-images', '6', '--seed', '4', '--vagueness', '0.9'])
    pairs = read_coco_captions(str(tmp_path / 'a' / POOL_CAPTIONS))
    assert [p[0] for p in pairs] == [f'pool_{i:05d}.jpg' for i in range(6)]
    assert all(len(c) == 5 for _, c in pairs)
    # the same images whatever the vagueness; other descriptions
    for i in range(6):
        name = f'JPEGImages/pool_{i:05d}.jpg'
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes()
    assert pairs != read_coco_captions(str(tmp_path / 'b' / POOL_CAPTIONS))
    truth = load_image_labels(str(tmp_path / 'a' / 'ImageLabels' / 'pool_truth.txt'), WORLD.class_names)
    assert len(truth) == 6
    with pytest.raises(FileExistsError, match='already holds a described pool'):
        make_pool_main(['--out', str(tmp_path / 'a'), '--num-images', '6'])


def test_split_descriptions_describe_the_scenes_of_a_generated_split_and_refuse_an_edited_one(tmp_path):
    from PIL import Image

    from mmseg_clip_wsss.datasets.synthetic import make_demo_data, write_split_descriptions
    root = tmp_path / 'demo'
    make_demo_data(str(root), seed=3, num_train=6, num_val=2, size=64, show_progress=False)
    out = tmp_path / 'captions.json'
    info = write_split_descriptions(str(root), 'train', str(out), DescriptionStyle(vagueness=0.0, empty=0.0), skip=2)
    assert info == dict(split='train', skip=2, num_images=4, vagueness=0.0)
    pairs = read_coco_captions(str(out))
    ids = [line.split()[0] for line in (root / 'ImageSets' / 'Segmentation' / 'train.txt').read_text().split('\n')
           if line.strip()][2:]
    assert sorted(p[0] for p in pairs) == sorted(f'{i}.jpg' for i in ids)
    labels = load_image_labels(str(root / 'ImageLabels' / 'train.txt'), WORLD.class_names)
    for file_name, captions in pairs:  # with no vague word, every class a description names is present
        present = set(labels[file_name[:-4]])
        assert captions and all(_class_words(c) and _class_words(c) <= present for c in captions)
    again = tmp_path / 'again.json'
    write_split_descriptions(str(root), 'train', str(again), DescriptionStyle(vagueness=0.0, empty=0.0), skip=2)
    assert again.read_bytes() == out.read_bytes()  # the same files from the same data
    os.utime(again, ns=(1, 1))  # a time no rewrite can give it
    write_split_descriptions(str(root), 'train', str(again), DescriptionStyle(vagueness=0.0, empty=0.0), skip=2)
    assert again.stat().st_mtime_ns == 1  # up to date: kept, not drawn again
    write_split_descriptions(str(root), 'train', str(again), DescriptionStyle(vagueness=1.0), skip=2)
    assert again.read_bytes() != out.read_bytes()  # another style: written again
    mask = root / 'SegmentationClass' / f'{ids[0]}.png'
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(mask)
    with pytest.raises(ValueError, match=rf'{mask}.*tools/make_demo_data.py --overwrite'):
        write_split_descriptions(str(root), 'train', str(again), skip=2)
    with pytest.raises(ValueError, match="split 'test' must be one of"):
        write_split_descriptions(str(root), 'test', str(again))


def test_split_descriptions_refuse_a_bad_skip_a_missing_mask_and_a_missing_data_root(tmp_path):
    """skip=-2 ended in numpy's ValueError, a skip beyond the split wrote an empty captions file, a
    missing mask read "is not the mask of the scene drawn again" and a missing data root was a bare
    [Errno 2] of demo_info.json."""
    from mmseg_clip_wsss.datasets.errors import MissingDatasetFileError
    from mmseg_clip_wsss.datasets.synthetic import make_demo_data, write_split_descriptions
    root, out = tmp_path / 'demo', tmp_path / 'captions.json'
    make_demo_data(str(root), seed=3, num_train=3, num_val=1, size=64, show_progress=False)
    with pytest.raises(ValueError, match=r'^write_split_descriptions: skip=-2 must be a whole number, 0 or more'):
        write_split_descriptions(str(root), 'train', str(out), skip=-2)
    with pytest.raises(ValueError) as err:
        write_split_descriptions(str(root), 'train', str(out), skip=3)
    assert str(err.value) == (f'write_split_descriptions: skip=3 leaves no image of the train split of {root} '
                              '(3 images) to describe; give skip below 3.')
    assert not out.exists()  # no empty captions file
    first = (root / 'ImageSets' / 'Segmentation' / 'train.txt').read_text().split()[0]
    (root / 'SegmentationClass' / f'{first}.png').unlink()
    with pytest.raises(MissingDatasetFileError) as err:
        write_split_descriptions(str(root), 'train', str(out))
    assert str(err.value).startswith(f"write_split_descriptions: {root / 'SegmentationClass' / first}.png is "
                                     f'missing (train image 0, {first}, of {root})')
    assert 'make_demo_data.py --out' in str(err.value) and not out.exists()
    with pytest.raises(MissingDatasetFileError) as err:
        write_split_descriptions(str(tmp_path / 'none'), 'train', str(out))
    assert str(err.value).startswith(f"write_split_descriptions: data_root {tmp_path / 'none'} does not exist; "
                                     'it must hold a dataset in the VOC layout of a generated dataset')
    assert f"make_demo_data.py --out {tmp_path / 'none'}" in str(err.value)
