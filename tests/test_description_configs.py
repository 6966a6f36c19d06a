"""The image-text configs build their data pipelines on files written here (COCO captions layout,
webdataset shards), and the COCO one reads no instance annotation."""
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.cli.captions_to_labels import main as captions_to_labels
from mmseg_clip_wsss.datasets import write_coco_captions
from mmseg_clip_wsss.registry import DATASETS

REPO = Path(__file__).resolve().parents[1]
COCO_CFG = REPO / 'configs/descriptions/clip_wsss_swin_coco_captions.py'
WDS_CFG = REPO / 'configs/descriptions/clip_wsss_swin_voc_webdataset.py'
CAPTIONS = {'COCO_train2014_000000000009': ['A man riding a bike.', 'A person on a bicycle near a car.'],
            'COCO_train2014_000000000025': ['A giraffe eating leaves.'],
            'COCO_train2014_000000000030': ['A busy street.', 'Nothing much to see.']}


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _jpeg(rng) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(buf, format='JPEG')
    return buf.getvalue()


def _first_batch(loader_cfg, root):
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    batch = next(iter(loader))
    assert len(batch['inputs']) == loader_cfg['batch_size']
    return batch


def test_coco_captions_config_trains_from_captions_only(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / 'train2014').mkdir()
    for image_id in CAPTIONS:
        (tmp_path / 'train2014' / f'{image_id}.jpg').write_bytes(_jpeg(rng))
    write_coco_captions(str(tmp_path / 'annotations/captions_train2014.json'),
                        [(f'{k}.jpg', v) for k, v in CAPTIONS.items()])
    cfg = Config.fromfile(str(COCO_CFG))
    assert cfg.model.description_targets == dict(extra_words='coco')
    assert cfg.model.loss_description is None  # measured harmful with pooled embeddings (see the config)
    text = COCO_CFG.read_text() + str(cfg.train_dataloader)
    assert 'instances_' not in str(cfg.train_dataloader) and 'label_file' not in str(cfg.train_dataloader)
    assert 'captions_train2014.json' in text
    loader = dict(cfg.train_dataloader, num_workers=0, persistent_workers=False, batch_size=2)
    loader['dataset'] = dict(loader['dataset'], data_root=str(tmp_path))
    batch = _first_batch(loader, tmp_path)
    assert batch['inputs'][0].shape == (3, 448, 448)
    assert all(s.metainfo['captions'] for s in batch['data_samples'])
    assert all('gt_image_labels' not in s for s in batch['data_samples'])
    # the pseudo-mask CAMs take the classes the captions name (no instances json)
    captions_to_labels([str(tmp_path / 'annotations/captions_train2014.json'), '--classes', 'coco',
                        '--out', str(tmp_path / cfg.cam_dataloader.dataset.label_file),
                        '--split-out', str(tmp_path / cfg.cam_dataloader.dataset.ann_file)])
    labels = (tmp_path / cfg.cam_dataloader.dataset.label_file).read_text().splitlines()[2:]
    assert labels == ['COCO_train2014_000000000009 person,bicycle,car', 'COCO_train2014_000000000025 giraffe',
                      'COCO_train2014_000000000030']
    cam = dict(cfg.cam_dataloader.dataset, data_root=str(tmp_path), with_gt_masks=False,
               data_prefix=dict(img_path='train2014'), skip_empty_labels=True)
    cam['pipeline'] = [t for t in cam['pipeline'] if t['type'] != 'LoadWSSSAnnotations']
    dataset = DATASETS.build(cam)
    assert len(dataset) == 2 and dataset[0]['data_samples'].gt_image_labels[[1, 2, 3]].tolist() == [1, 1, 1]
    # a class list without the background first would shift every class by one: refused
    with pytest.raises(ValueError, match="must start with 'background'"):
        captions_to_labels([str(tmp_path / 'annotations/captions_train2014.json'), '--classes', 'person,car',
                            '--out', str(tmp_path / 'other_labels.txt')])
    assert not (tmp_path / 'other_labels.txt').exists()


def test_webdataset_config_streams_shards(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / 'pairs').mkdir()
    for s in range(2):
        with tarfile.open(tmp_path / 'pairs' / f'pairs-{s:06d}.tar', 'w') as tar:
            for i in range(3):
                for ext, data in (('jpg', _jpeg(rng)), ('txt', f'a dog and a cat, pair {s}-{i}.'.encode())):
                    info = tarfile.TarInfo(f'{s:03d}{i:03d}.{ext}')
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    cfg = Config.fromfile(str(WDS_CFG))
    assert cfg.train_dataloader.sampler is None and cfg.model.description_targets == dict(extra_words='voc')
    loader = dict(cfg.train_dataloader, num_workers=2, persistent_workers=False, batch_size=4)
    loader['dataset'] = dict(loader['dataset'], data_root=str(tmp_path / 'pairs'),
                             shards='pairs-{000000..000001}.tar', batch_size=4)
    batch = _first_batch(loader, tmp_path)
    assert batch['inputs'][0].shape == (3, 448, 448) and batch['inputs'][0].dtype == torch.uint8
    captions = [s.metainfo['captions'][0] for s in batch['data_samples']]
    assert all(c.startswith('a dog and a cat, pair') for c in captions)
    with pytest.raises(Exception, match='pairs-000002.tar'):
        DATASETS.build(dict(loader['dataset'], shards='pairs-{000000..000002}.tar'))


DEMO_CFG = REPO / 'configs/descriptions/clip_wsss_clip-rn_demo_plus-described.py'


def test_source_ratio_sampler_keeps_the_labelled_share():
    from types import SimpleNamespace
    from mmseg_clip_wsss.datasets import SourceRatioSampler
    dataset = SimpleNamespace(datasets=[range(30), range(1500)])  # what the sampler reads of a ConcatDataset
    sampler = SourceRatioSampler(dataset, ratios=[1, 1], seed=3)
    draws = [i for _, i in zip(range(6000), iter(sampler))]
    labelled = [i for i in draws if i < 30]
    assert abs(len(labelled) / len(draws) - 0.5) < 0.03  # uniform sampling would give 2%
    assert sorted(labelled[:30]) == list(range(30))  # each labelled image once per pass
    assert max(draws) < 1530 and len(set(draws) - set(range(30))) > 1400
    assert draws[:50] == [i for _, i in zip(range(50), iter(SourceRatioSampler(dataset, [1, 1], seed=3)))]
    with pytest.raises(ValueError, match='ratios \\[1\\] must be 2 shares'):
        SourceRatioSampler(dataset, ratios=[1])


def test_demo_config_mixes_few_labels_with_the_described_pool(tmp_path):
    from mmseg_clip_wsss.datasets.synthetic import make_demo_data, make_described_pool
    make_demo_data(str(tmp_path / 'demo'), num_train=40, num_val=2, show_progress=False)
    make_described_pool(str(tmp_path / 'pool'), num_images=12)
    cfg = Config.fromfile(str(DEMO_CFG))
    loader = dict(cfg.train_dataloader, batch_size=8)
    labelled, described = loader['dataset']['datasets']
    labelled.data_root, described.data_root = str(tmp_path / 'demo'), str(tmp_path / 'pool')
    built = Runner.build_dataloader(loader, seed=0)
    assert [len(d) for d in built.dataset.datasets] == [30, 12]  # num_labelled = 30 of the 40
    kinds = [('captions' in s.metainfo, 'gt_image_labels' in s) for _, b in zip(range(4), built)
             for s in b['data_samples']]
    assert set(kinds) == {(True, False), (False, True)}
    assert 8 <= sum(k[1] for k in kinds) <= 24  # labelled_share 0.5 of 32 draws
