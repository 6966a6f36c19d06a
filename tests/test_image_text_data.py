"""Image-text data: COCO captions JSON, JSONL and webdataset shards give one sample form."""
import io
import json
import tarfile

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from PIL import Image
from torch.utils.data import DataLoader

from mmseg_clip_wsss.datasets import (DatasetError, ImageTextDataset, ImageTextShards, MissingDatasetFileError,
                                      caption_image_id, resume_skip, shards_for, write_coco_captions)
from mmseg_clip_wsss.registry import DATASETS

PIPELINE = [dict(type='LoadWSSSImage'), dict(type='PackWSSSInputs')]
CAPTIONS = {f'im{i}': [f'a caption of image {i}.', f'two discs and a star in image {i}.'][:1 + i % 2]
            for i in range(8)}


def _tar(path, members):
    with tarfile.open(path, 'w') as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def pairs(tmp_path):
    """8 images, their captions as COCO JSON, as JSONL and in 4 shards of 2 samples."""
    init_default_scope('mmseg')
    rng = np.random.default_rng(0)
    (tmp_path / 'img').mkdir()
    for image_id in CAPTIONS:
        Image.fromarray(rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(
            tmp_path / 'img' / f'{image_id}.jpg', quality=90)
    write_coco_captions(str(tmp_path / 'captions.json'), [(f'{k}.jpg', v) for k, v in CAPTIONS.items()])
    with open(tmp_path / 'pairs.jsonl', 'w') as f:
        for image_id, captions in CAPTIONS.items():
            for caption in captions:  # one line per pair: the reader groups them per image
                f.write(json.dumps(dict(image=f'{image_id}.jpg', caption=caption)) + '\n')
    ids = list(CAPTIONS)
    for s in range(4):
        _tar(tmp_path / f'pairs-{s:03d}.tar', [
            m for image_id in ids[2 * s:2 * s + 2]
            for m in ((f'{image_id}.jpg', (tmp_path / 'img' / f'{image_id}.jpg').read_bytes()),
                      (f'{image_id}.txt', '\n'.join(CAPTIONS[image_id]).encode()))])
    return tmp_path


def _by_id(samples):
    out = {}
    for packed in samples:
        meta = packed['data_samples'].metainfo
        out[meta['img_id']] = (meta['captions'], packed['inputs'])
    return out


def _shards(root, **kwargs):
    return DATASETS.build(dict(type='ImageTextShards', data_root=str(root), shards='pairs-{000..003}.tar',
                               pipeline=PIPELINE, **kwargs))


def test_three_sources_give_the_same_samples(pairs):
    sources = {}
    for name in ('captions.json', 'pairs.jsonl'):
        dataset = DATASETS.build(dict(type='ImageTextDataset', data_root=str(pairs), caption_file=name,
                                      data_prefix=dict(img_path='img'), pipeline=PIPELINE))
        assert isinstance(dataset, ImageTextDataset) and len(dataset) == 8
        sources[name] = _by_id(dataset[i] for i in range(len(dataset)))
    shards = _shards(pairs, repeat=False, rank=0, world_size=1)
    assert isinstance(shards, ImageTextShards)
    sources['shards'] = _by_id(shards)
    for name, samples in sources.items():
        assert sorted(samples) == sorted(CAPTIONS), name
        for image_id, (captions, image) in samples.items():
            assert captions == CAPTIONS[image_id], (name, image_id)
            assert image.shape == (3, 24, 20) and image.dtype == torch.uint8
            assert torch.equal(image, sources['captions.json'][image_id][1]), (name, image_id)


def test_two_ranks_read_disjoint_shards_and_together_all(pairs):
    seen = []
    for rank in range(2):
        ids = [p['data_samples'].metainfo['img_id'] for p in _shards(pairs, repeat=False, rank=rank,
                                                                       world_size=2)]
        assert len(ids) == 4
        seen.append(set(ids))
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(CAPTIONS)
    # mmengine's schedulers ask the dataloader for a length: this rank's share, or an endless stream's
    assert len(_shards(pairs, rank=1, world_size=2, num_samples=9)) == 5
    assert len(_shards(pairs, rank=0, world_size=2)) == 2**31 - 1
    # and across ranks x workers, epoch after epoch (the order changes, the cover does not)
    shards = [f's{i}' for i in range(7)]
    for epoch in range(3):
        parts = [shards_for(shards, epoch, r, 2, w, 2) for r in range(2) for w in range(2)]
        assert sorted(s for part in parts for s in part) == shards
    assert shards_for(shards, 0, 0, 2, 0, 2) != shards_for(shards, 1, 0, 2, 0, 2)


def test_shard_stream_resumes_where_it_stopped(pairs):
    """2 workers x batch 1: after 3 batches a new loader resumed at batch 3 gives the batches that
    the first one gave next."""
    def batches(dataset, n):
        loader = DataLoader(dataset, batch_size=1, num_workers=2, collate_fn=lambda b: b[0])
        it = iter(loader)
        return [next(it)['data_samples'].metainfo['img_id'] for _ in range(n)]

    whole = batches(_shards(pairs, rank=0, world_size=1, seed=3), 12)  # more than an epoch (8)
    resumed = batches(_shards(pairs, rank=0, world_size=1, seed=3, resume_batches=3), 5)
    assert resumed == whole[3:8]
    assert sorted(whole[:8]) == sorted(CAPTIONS)  # one epoch covers every sample once
    assert resume_skip(5, 4, 0, 2) == 12 and resume_skip(5, 4, 1, 2) == 8 and resume_skip(5, 4, 0, 0) == 20


def test_malformed_json_line_is_refused_naming_file_and_line(pairs):
    path = pairs / 'pairs.jsonl'
    lines = path.read_text().splitlines()
    lines[4] = '{"image": "im3.jpg", "caption": "unterminated}'
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(DatasetError, match=rf'{path}, line 5 is not valid JSON'):
        ImageTextDataset(caption_file=str(path), data_prefix=dict(img_path=str(pairs / 'img')))
    path.write_text('{"image": "im0.jpg", "text": "a key the format does not know"}\n')
    with pytest.raises(DatasetError, match=r'line 1: needs the keys "image" and "caption", found'):
        ImageTextDataset(caption_file=str(path), data_prefix=dict(img_path=str(pairs / 'img')))


def test_bad_coco_json_and_missing_image_are_refused(pairs):
    path = pairs / 'captions.json'
    data = json.loads(path.read_text())
    data['annotations'][2]['image_id'] = 999
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r'captions.json, annotations\[2\] \(id 3\): image_id 999 '):
        ImageTextDataset(caption_file=str(path), data_prefix=dict(img_path=str(pairs / 'img')))
    path.write_text('{"images": [')
    with pytest.raises(DatasetError, match=r'captions.json is not valid JSON'):
        ImageTextDataset(caption_file=str(path))
    (pairs / 'img' / 'im5.jpg').unlink()
    with pytest.raises(MissingDatasetFileError, match=r'im5.jpg'):
        ImageTextDataset(caption_file=str(pairs / 'pairs.jsonl'), data_prefix=dict(img_path=str(pairs / 'img')))


def test_an_absolute_image_path_gives_the_id_a_relative_one_gives(pairs, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp('elsewhere')
    (elsewhere / 'photo.jpg').write_bytes((pairs / 'img' / 'im1.jpg').read_bytes())
    (pairs / 'img' / 'sub').mkdir()
    (pairs / 'img' / 'sub' / 'im9.jpg').write_bytes((pairs / 'img' / 'im1.jpg').read_bytes())
    path = pairs / 'abs.jsonl'
    path.write_text('\n'.join(json.dumps(dict(image=image, caption='a disc.')) for image in (
        str(pairs / 'img' / 'im0.jpg'), 'im1.jpg', str(pairs / 'img' / 'sub' / 'im9.jpg'), 'sub/im9.jpg',
        str(elsewhere / 'photo.jpg'))) + '\n')
    dataset = ImageTextDataset(caption_file=str(path), data_root=str(pairs), data_prefix=dict(img_path='img'))
    ids = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]
    # an absolute path under the image folder: its path there; elsewhere: its file name; never the path
    assert ids == ['im0', 'im1', 'sub/im9', 'sub/im9', 'photo']
    assert dataset.get_data_info(4)['img_path'] == str(elsewhere / 'photo.jpg')
    assert caption_image_id(str(elsewhere / 'photo.jpg')) == 'photo'  # no image folder known


@pytest.mark.parametrize('content', [b'', b'not a tar file, a text saved as one\n' * 30])
def test_a_shard_that_is_not_a_tar_file_is_refused_naming_it(pairs, content):
    bad = pairs / 'pairs-002.tar'
    bad.write_bytes(content)
    with pytest.raises(DatasetError, match=rf'1 of 4 shards are not tar files: {bad}; write it again as a '
                       r'tar of <key>.jpg \+ <key>.txt files'):
        _shards(pairs)
    stream = _shards(pairs, check_files=False, repeat=False, shuffle_shards=False, rank=0, world_size=1)
    with pytest.raises(DatasetError, match=rf'shard {bad} is not a whole tar file \(.+\); write it again'):
        list(stream)


def test_a_shard_cut_short_is_refused_naming_it(pairs):
    shard = pairs / 'pairs-001.tar'
    shard.write_bytes(shard.read_bytes()[:1500])  # the first member's header and part of its data
    stream = _shards(pairs, repeat=False, shuffle_shards=False, rank=0, world_size=1)
    with pytest.raises(DatasetError, match=rf'shard {shard} is not a whole tar file \(unexpected end of '
                       r'data\); write it again'):
        list(stream)


@pytest.mark.parametrize('caption', ['', '   ', ['a disc.', '']])
def test_an_empty_caption_is_refused_by_both_readers_naming_the_entry(pairs, caption):
    coco = pairs / 'captions.json'
    data = json.loads(coco.read_text())
    data['annotations'][3]['caption'] = caption  # im2's caption: its image has no other one
    coco.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=rf'{coco}, annotations\[3\] \(id 4\): an empty caption'):
        ImageTextDataset(caption_file=str(coco), data_prefix=dict(img_path=str(pairs / 'img')))
    jsonl = pairs / 'pairs.jsonl'
    lines = jsonl.read_text().splitlines()
    lines[3] = json.dumps(dict(image='im2.jpg', caption=caption))
    jsonl.write_text('\n'.join(lines) + '\n')
    with pytest.raises(DatasetError, match=rf'{jsonl}, line 4: an empty caption'):
        ImageTextDataset(caption_file=str(jsonl), data_prefix=dict(img_path=str(pairs / 'img')))


def test_shard_sample_without_caption_is_refused_naming_shard_and_key(pairs):
    image = (pairs / 'img' / 'im0.jpg').read_bytes()
    _tar(pairs / 'pairs-001.tar', [('im2.jpg', image), ('im2.txt', b'a disc.'), ('im3.jpg', image)])
    with pytest.raises(DatasetError, match=r"pairs-001.tar, sample 'im3': no caption \(.txt\)"):
        list(_shards(pairs, repeat=False, shuffle_shards=False, rank=0, world_size=1))
    _tar(pairs / 'pairs-001.tar', [('im2.jpg', image), ('im2.txt', b'  \n')])
    with pytest.raises(DatasetError, match=r"pairs-001.tar, sample 'im2': an empty caption"):
        list(_shards(pairs, repeat=False, shuffle_shards=False, rank=0, world_size=1))
    with pytest.raises(MissingDatasetFileError, match=r'pairs-007.tar'):
        ImageTextShards(shards=str(pairs / 'pairs-{000..007}.tar'))
    with pytest.raises(ValueError, match='4 shards cannot feed 5 ranks'):
        ImageTextShards(shards=str(pairs / 'pairs-{000..003}.tar'), rank=0, world_size=5)


def test_a_shard_cut_at_a_block_boundary_is_reported_as_cut_short(pairs):
    """A 40 KiB shard cut to 20,480 bytes (a tar block boundary between two members) reads as a
    shorter tar whose last sample has no caption: reported as cut short, not as 'no caption'."""
    rng = np.random.default_rng(1)
    shard = pairs / 'pairs-001.tar'
    members = []
    for i in range(4):  # ~10 KiB per sample: noise images do not compress
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (60, 60, 3), dtype=np.uint8)).save(buffer, 'PNG')
        members += [(f'{30001 + i:06d}.png', buffer.getvalue()), (f'{30001 + i:06d}.txt', b'a disc.')]
    _tar(shard, members)
    whole = shard.read_bytes()
    assert len(whole) >= 40960
    assert list(_shards(pairs, repeat=False, shuffle_shards=False, rank=0, world_size=1))  # whole: reads
    offsets = []
    with tarfile.open(shard) as tar:
        for member in tar.getmembers():
            offsets.append((member.name, member.offset))
    cut = next(offset for name, offset in offsets if name.endswith('.txt') and offset > 10240)
    shard.write_bytes(whole[:cut])  # the last kept sample loses its caption member
    assert cut % 512 == 0
    with pytest.raises(DatasetError, match=rf'shard {shard} is not a whole tar file \(cut short: {cut} bytes, '
                       r'and no tar end marker'):
        list(_shards(pairs, repeat=False, shuffle_shards=False, rank=0, world_size=1))
