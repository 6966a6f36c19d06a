"""Confidence-weighted CLIP tags (soft_tags, the soft label file, the per-class loss weights) and the
label-scarcity study (tools/label_scarcity.py) on a tiny generated world."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from mmseg.structures import SegDataSample

from mmseg_clip_wsss.apis.tagging import fit_temperature, soft_tags
from mmseg_clip_wsss.benchmark.label_scarcity import (aggregate_label_scarcity, arm_config,
                                                      format_label_scarcity_markdown, study_runs)
from mmseg_clip_wsss.cli.label_scarcity import main as scarcity_main, parse_args as scarcity_args
from mmseg_clip_wsss.cli.tag_images import main as tag_main
from mmseg_clip_wsss.datasets import DEMO_CLASSES, DatasetError, MissingDatasetFileError, PackWSSSInputs, load_soft_labels, write_soft_labels
from mmseg_clip_wsss.datasets.synthetic.voc_writer import make_demo_data
from mmseg_clip_wsss.models import DEMO_CLIP_NAME, write_random_clip_checkpoint
from mmseg_clip_wsss.structures import LABEL_CONFIDENCE, image_label_weights, set_image_labels


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


def test_soft_tags_weigh_the_margin_over_the_threshold():
    scores = np.array([[0.30, 0.10], [0.21, 0.50], [0.10, 0.20]])
    thresholds = np.array([0.2, np.inf])
    targets, confidence = soft_tags(scores, thresholds, temperature=0.01)
    assert targets.tolist() == [[1, 0], [1, 0], [0, 0]]
    p = 1 / (1 + np.exp(-np.array([10.0, 1.0, -10.0])))  # margins 0.1, 0.01, -0.1 over T = 0.01
    np.testing.assert_allclose(confidence[:, 0], np.abs(2 * p - 1), rtol=1e-5)
    assert confidence[:, 1].tolist() == [0, 0, 0]  # no threshold: nothing known of the class
    with pytest.raises(ValueError, match='temperature'):
        soft_tags(scores, thresholds, 0)


def test_fit_temperature_is_sharp_for_separable_scores_and_soft_for_mixed_ones():
    labels = np.array([[1], [1], [0], [0]], dtype=np.float32)
    separable = np.array([[0.5], [0.6], [0.1], [0.0]])
    assert fit_temperature(separable, labels, np.array([0.3]), (0.01, 0.1)) == 0.01
    mixed = np.array([[0.31], [0.1], [0.29], [0.5]])  # two of four on the wrong side
    assert fit_temperature(mixed, labels, np.array([0.3]), (0.01, 0.1)) == 0.1
    assert fit_temperature(mixed, labels, np.array([np.inf]), (0.01, 0.1)) == 0.1


def test_soft_label_file_round_trip_and_refusals(tmp_path):
    path = tmp_path / 'soft.json'
    write_soft_labels(str(path), ['ring', 'disc'], {'a': ([1, 0], [0.9, 0.2])})
    rows = load_soft_labels(str(path), ('background', 'disc', 'ring', 'star'))
    targets, confidence = rows['a']
    assert targets.tolist() == [1, 0, 1, 0]  # by name; background 1; a class the file lacks: 0
    np.testing.assert_allclose(confidence, [1, 0.2, 0.9, 1])
    with pytest.raises(DatasetError, match=r'soft\.json.*\[\'ring\'\] are not classes'):
        load_soft_labels(str(path), ('background', 'disc'))
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(dict(classes=['disc'], images={'b': dict(targets=[2], confidence=[1])})))
    with pytest.raises(DatasetError, match=r"bad\.json: image 'b'.*\[0, 1\]"):
        load_soft_labels(str(bad), ('background', 'disc'))
    bad.write_text('{"classes": ["disc"], "images": [')
    with pytest.raises(DatasetError, match=r'bad\.json: not JSON'):
        load_soft_labels(str(bad), ('background', 'disc'))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        load_soft_labels(str(tmp_path / 'missing.json'), ('background', 'disc'))


def test_soft_labels_reach_the_losses_as_per_class_weights(tmp_path):
    root = tmp_path / 'data'
    make_demo_data(str(root), seed=0, num_train=3, num_val=0, size=32, show_progress=False)
    ids = (root / 'ImageSets' / 'Segmentation' / 'train.txt').read_text().split()
    rows = {i: ([1.0] + [0.0] * 7, [0.5 + 0.1 * k] + [1.0] * 7) for k, i in enumerate(ids[:2])}
    write_soft_labels(str(root / 'soft.json'), DEMO_CLASSES[1:], rows)
    cfg = dict(type='DemoWSSSDataset', data_root=str(root), data_prefix=dict(img_path='JPEGImages'),
               ann_file='ImageSets/Segmentation/train.txt', soft_label_file='soft.json', pipeline=[])
    with pytest.raises(DatasetError, match=r'1 of 3 images.*no entry in soft label file .*soft\.json'):
        DATASETS.build(cfg)
    with pytest.raises(ValueError, match='not both'):
        DATASETS.build(dict(cfg, label_file='ImageLabels/train.txt'))
    rows[ids[2]] = ([0.0] * 8, [0.0] * 8)
    write_soft_labels(str(root / 'soft.json'), DEMO_CLASSES[1:], rows)
    dataset = DATASETS.build(cfg)
    info = dataset[1]
    classes = dataset.metainfo['classes']
    assert info['gt_image_labels'][0] == 1 and info['gt_image_labels'][classes.index('disc')] == 1
    assert info[LABEL_CONFIDENCE][classes.index('disc')] == pytest.approx(0.6)
    packed = PackWSSSInputs()(dict(info, img=np.zeros((4, 4, 3), np.uint8), img_shape=(4, 4), ori_shape=(4, 4)))
    sample = packed['data_samples']
    plain = SegDataSample(metainfo=dict(loss_weight=0.5))
    set_image_labels(plain, np.ones(len(classes)))
    labels = torch.stack([sample.gt_image_labels, plain.gt_image_labels])
    weights = image_label_weights([sample, plain], labels)
    assert weights.shape == (2, len(classes))
    assert weights[0, classes.index('disc')] == pytest.approx(0.6) and weights[1].tolist() == [0.5] * len(classes)
    assert image_label_weights([plain], labels[1:]).tolist() == [0.5]  # no confidence: per image


def test_tag_images_soft_writes_a_soft_label_file_the_dataset_loads(tmp_path):
    labelled, unlabelled = tmp_path / 'labelled', tmp_path / 'unlabelled'
    make_demo_data(str(labelled), seed=0, num_train=8, num_val=0, size=64, show_progress=False)
    make_demo_data(str(unlabelled), seed=5, num_train=5, num_val=0, size=64, show_progress=False)
    clip = write_random_clip_checkpoint(str(tmp_path / 'clip.pt'), model_name=DEMO_CLIP_NAME, seed=0)
    out = tmp_path / 'soft.json'
    result = tag_main([clip, '--data-root', str(unlabelled), '--labelled-root', str(labelled), '--out', str(out),
                       '--soft'])
    saved = json.loads(Path(result['thresholds']).read_text())
    assert saved['temperature'] == result['temperature'] and result['temperature'] > 0
    dataset = DATASETS.build(dict(type='DemoWSSSDataset', data_root=str(unlabelled),
                                  data_prefix=dict(img_path='JPEGImages'),
                                  ann_file='ImageSets/Segmentation/train.txt', soft_label_file=str(out),
                                  pipeline=[]))
    assert len(dataset) == 5
    confidence = np.stack([dataset[i][LABEL_CONFIDENCE] for i in range(5)])
    assert confidence[:, 0].tolist() == [1.0] * 5 and ((confidence >= 0) & (confidence <= 1)).all()
    again = tmp_path / 'again.json'  # the saved thresholds and temperature are read back
    tag_main([clip, '--data-root', str(unlabelled), '--labelled-root', str(labelled), '--out', str(again),
              '--soft', '--thresholds', result['thresholds']])
    assert json.loads(again.read_text())['images'] == json.loads(out.read_text())['images']
    # another data root whose images have the same ids (every world numbers them alike): refused
    other = tmp_path / 'other'
    make_demo_data(str(other), seed=6, num_train=5, num_val=0, size=64, show_progress=False)
    record = json.loads(out.read_text())
    assert len(record['image_stamps']) == 5 and len(record['image_bytes']) == 5
    other_cfg = dict(type='DemoWSSSDataset', data_root=str(other), data_prefix=dict(img_path='JPEGImages'),
                     ann_file='ImageSets/Segmentation/train.txt', soft_label_file=str(out), pipeline=[])
    with pytest.raises(DatasetError, match=r"soft\.json was made from other images: its image 'train_00000' is "
                       r'not .*other/JPEGImages/train_00000\.jpg.*tag_images\.py --soft'):
        DATASETS.build(other_cfg)
    # a split of images none of which is hashed: the sizes still tell
    (other / 'subset.txt').write_text('train_00001\n')
    record['image_stamps'] = {i: v for i, v in record['image_stamps'].items() if i != 'train_00001'}
    out.write_text(json.dumps(record))
    with pytest.raises(DatasetError, match=r"its image 'train_00001' is not"):
        DATASETS.build(dict(other_cfg, ann_file='subset.txt'))
    record['image_stamps'] = {'train_00001': 7}  # damaged
    out.write_text(json.dumps(record))
    with pytest.raises(DatasetError, match=r'"image_stamps" must be an object \(image id -> file identity\)'):
        DATASETS.build(dict(other_cfg, ann_file='subset.txt'))


def test_aggregate_marks_labels_at_zero_absent():
    assert study_runs(['labels', 'vague_descriptions_no_rsca'], [0, 30, 300]) == [
        ('labels', 30), ('vague_descriptions_no_rsca', 30), ('labels', 300)]
    with pytest.raises(ValueError, match='unknown arms'):
        study_runs(['captions'], [30])
    summary = aggregate_label_scarcity({('labels', 30): {0: 60.0, 1: 64.0}}, {'labels': {0: 40.0}},
                                       ['labels'], [0, 30])
    assert summary['arms']['labels']['0'] == dict(mean=None, std=None, runs=[])
    assert summary['arms']['labels']['30'] == dict(mean=62.0, std=pytest.approx(2.83, abs=0.01), runs=[60.0, 64.0])
    assert summary['stage2']['labels']['30'] == dict(mean=40.0, std=0.0, runs=[40.0])
    assert summary['absent'] == ['labels at N=0: nothing to train (no labelled image)']
    table = format_label_scarcity_markdown(summary, [0, 30])
    assert '| labels | - | 62.00 ± 2.83 (2) | 40.00 (1) |' in table  # one run: no sample std
    assert 'stage 2 val' not in format_label_scarcity_markdown(summary, [0, 30], stage2_n=-1)


@pytest.mark.parametrize('option,value', [('--iters', '-1'), ('--jobs', '0'), ('--ns', '-3'),
                                          ('--batch-size', '0')])
def test_label_scarcity_refuses_option_values_out_of_range(option, value, capsys):
    with pytest.raises(SystemExit) as exc:
        scarcity_main([option, value])
    assert exc.value.code == 2 and f'argument {option}: ' in capsys.readouterr().err


def test_label_scarcity_refuses_more_labels_than_the_train_split_before_any_work(tmp_path):
    root = tmp_path / 'demo'
    make_demo_data(str(root), seed=0, num_train=4, num_val=2, size=64, show_progress=False)
    clip = write_random_clip_checkpoint(str(tmp_path / 'clip.pt'), model_name=DEMO_CLIP_NAME, seed=0)
    with pytest.raises(ValueError, match=r'N \[5\] outside 0\.\.4'):
        scarcity_main(['--work-dir', str(tmp_path / 'study'), '--data-root', str(root), '--ns', '5',
                       '--clip', clip])
    assert not (tmp_path / 'study').exists()  # refused before the work dir is made


def test_arm_configs_mix_the_sources_of_each_arm():
    ctx = dict(data_root='/d/demo', clip='/d/clip.pt', num_train=300, pool_size=1500, labelled_share=0.5,
               batch_size=4, scales=(1.0, ), pools=dict(descriptions='/w/described', vague_descriptions='/w/vague'),
               tag_files={0: '/w/t0.json', 30: '/w/t30.json', 300: '/w/t300.json'},
               rest_splits={0: '/w/r0.txt', 30: '/w/r30.txt', 300: '/w/r300.txt'},
               rest_captions=dict(descriptions={0: '/w/d0.json', 30: '/w/d30.json'},
                                  vague_descriptions={0: '/w/v0.json', 30: '/w/v30.json'}))
    labels = arm_config('labels', 30, ctx)
    assert labels.train_dataloader.dataset.indices == 30 and labels.train_dataloader.dataset.data_root == '/d/demo'
    assert labels.train_dataloader.sampler.type == 'InfiniteSampler' and labels.train_dataloader.batch_size == 4
    assert labels.cam_dataloader.dataset.data_root == '/d/demo' and labels.cam_cfg.scales == (1.0, )
    assert labels.model.backbone.pretrained == labels.model.text_encoder.pretrained == '/d/clip.pt'
    assert labels.val_dataloader is None and 'description_targets' not in labels.model
    tags = arm_config('tags', 30, ctx).train_dataloader
    assert [d.get('soft_label_file') for d in tags.dataset.datasets] == [None, '/w/t30.json', '/w/t30.json']
    assert [d.get('ann_file') for d in tags.dataset.datasets][1:] == ['/w/r30.txt', 'ImageSets/Segmentation/pool.txt']
    assert tags.sampler.ratios == pytest.approx([0.5, 0.5 * 270 / 1770, 0.5 * 1500 / 1770])
    assert len(arm_config('tags', 300, ctx).train_dataloader.dataset.datasets) == 2  # no rest at N = 300
    tags0 = arm_config('tags', 0, ctx).train_dataloader
    assert tags0.sampler.ratios == pytest.approx([300 / 1800, 1500 / 1800])
    described = arm_config('descriptions', 30, ctx)  # the rest of the train split described, then the pool
    assert described.train_dataloader.sampler.ratios == pytest.approx([0.5, 0.5 * 270 / 1770, 0.5 * 1500 / 1770])
    assert [d.data_root for d in described.train_dataloader.dataset.datasets][1:] == ['/d/demo', '/w/described']
    assert described.train_dataloader.dataset.datasets[1].caption_file == '/w/d30.json'
    assert described.model.description_targets is not None and described.model.neck.use_aggregation is not False
    only = arm_config('vague_descriptions', 0, ctx).train_dataloader
    assert [d.data_root for d in only.dataset.datasets] == ['/d/demo', '/w/vague']
    assert [d.caption_file for d in only.dataset.datasets][0] == '/w/v0.json'
    assert only.sampler.ratios == pytest.approx([300 / 1800, 1500 / 1800])
    assert len(arm_config('descriptions', 300, ctx).train_dataloader.dataset.datasets) == 2  # no rest
    by_size = arm_config('descriptions', 30, dict(ctx, labelled_share='size')).train_dataloader.sampler
    assert by_size.ratios == pytest.approx([30 / 1800, 270 / 1800, 1500 / 1800])  # a uniform draw
    assert scarcity_args(['--labelled-share', 'size']).labelled_share == 'size'
    assert scarcity_args(['--labelled-share', '0.2']).labelled_share == 0.2
    for bad in ('1', '0', 'half'):
        with pytest.raises(SystemExit):
            scarcity_args(['--labelled-share', bad])
    for option in ('--seeds', '--pool-seed'):  # a negative seed failed in the runs (numpy's own error)
        with pytest.raises(SystemExit):
            scarcity_args([option, '-1'])
    off = arm_config('vague_descriptions_no_rsca', 30, ctx).model
    assert off.neck.use_aggregation is False and off.neck.loss_region is None and off.region_contrast is False


def test_label_scarcity_tool_on_a_tiny_world_writes_the_summary_and_resumes(tmp_path, capsys):
    root = tmp_path / 'demo'
    make_demo_data(str(root), seed=0, num_train=4, num_val=2, size=64, show_progress=False)
    (root / 'clip').mkdir()
    write_random_clip_checkpoint(str(root / 'clip' / 'clip.pt'), model_name=DEMO_CLIP_NAME, seed=0)
    work = tmp_path / 'study'
    argv = ['--work-dir', str(work), '--data-root', str(root), '--arms', 'labels', 'tags',
            '--ns', '0', '2', '--seeds', '0', '--iters', '2', '--stage2-iters', '2', '--stage2-n', '2',
            '--pool-size', '6', '--batch-size', '2']
    summary = scarcity_main(argv)
    assert set(summary['arms']) == {'labels', 'tags'}
    assert set(summary['arms']['tags']) == {'0', '2'} and summary['arms']['labels']['0']['runs'] == []
    for arm, n in (('labels', '2'), ('tags', '0'), ('tags', '2')):
        stats = summary['arms'][arm][n]
        assert len(stats['runs']) == 1 and 0 <= stats['mean'] <= 100 and stats['std'] == 0
    assert set(summary['stage2']) == {'labels', 'tags'}
    assert all(len(s['2']['runs']) == 1 for s in summary['stage2'].values())
    assert summary['settings']['steps'] == dict(ran=8, skipped=0)  # 3 x (stage 1, masks) + 2 stage 2
    tags = summary['settings']['soft_tags']
    assert tags['0']['chosen_on'] == 'the val split' and tags['2']['chosen_on'] == 'the 2 labelled train images'
    written = json.loads((work / 'summary.json').read_text())
    assert written['arms'] == summary['arms']
    assert (work / 'label_scarcity.png').stat().st_size > 1000
    assert '| tags |' in (work / 'label_scarcity.md').read_text()
    soft = json.loads((work / 'data' / 'soft_tags_shared_N2.json').read_text())
    assert len(soft['images']) == 2 + 6  # the rest of the train split and the pool
    again = scarcity_main(argv)
    assert again['settings']['steps'] == dict(ran=0, skipped=8)
    assert again['arms'] == summary['arms'] and again['stage2'] == summary['stage2']
    out = capsys.readouterr().out
    assert 'skipped: stage 1 tags N=2 s0' in out and 'other settings' not in out  # the same settings
    assert 'Pseudo-mask mIoU (%) of the 4-image train split' in (work / 'label_scarcity.md').read_text()
    # another --iters trains stage 1 again: its pseudo masks and stage 2 are made again, not reused
    longer = [*argv[:argv.index('--arms')], '--arms', 'labels', '--ns', '2', *argv[argv.index('--seeds'):]]
    longer[longer.index('--iters') + 1] = '3'
    third = scarcity_main(longer)
    assert third['settings']['steps'] == dict(ran=3, skipped=0)
    lines = [line for line in capsys.readouterr().out.splitlines() if 'other settings' in line]
    assert lines == [f"[label scarcity] {work / 'summary.json'} was made with other settings (arms ['labels', "
                     "'tags'] -> ['labels']; ns [0, 2] -> [2]; iters 2 -> 3): the steps of these settings run "
                     "(finished ones of the same settings are skipped) and summary.json and label_scarcity.md "
                     "are written anew with this command's cells alone; give another --work-dir to keep the "
                     "earlier table"]
    protocol = json.loads((work / 'labels_N2' / 'seed0' / 'pseudo_masks' / 'protocol.json').read_text())
    assert protocol['checkpoint'].endswith('iter_3.pth')
    # another sampler share (same iterations) trains the tags arm again: its old checkpoint is not reused
    shared = scarcity_main([*argv[:argv.index('--arms')], '--arms', 'tags', '--ns', '2',
                            *argv[argv.index('--seeds'):], '--labelled-share', '0.5'])
    assert shared['settings']['steps'] == dict(ran=3, skipped=0)
    assert 'ran: stage 1 tags N=2 s0' in capsys.readouterr().out


def test_the_study_pools_are_drawn_from_the_data_root_world(tmp_path):
    """The described pools of a data root of another world hold that world's classes (they were the
    demo world's whatever the data root); an up-to-date pool is kept, one of another world written again."""
    from mmseg_clip_wsss.benchmark.label_scarcity import _prepare_pools
    from mmseg_clip_wsss.datasets.synthetic import load_world
    roots = dict(pairs=tmp_path / 'pairs', demo=tmp_path / 'demo')
    make_demo_data(str(roots['pairs']), world='shared-pairs-160', seed=1, num_train=2, num_val=1, size=64,
                   show_progress=False)
    make_demo_data(str(roots['demo']), num_train=2, num_val=1, size=64, show_progress=False)
    worlds = {k: json.loads(json.dumps(load_world(str(r)).to_dict())) for k, r in roots.items()}
    assert worlds['pairs'] != worlds['demo']
    pool = tmp_path / 'data' / 'demo_described' / 'described_pool.json'
    _prepare_pools(str(tmp_path / 'data'), str(roots['pairs']), 2, 1, ['descriptions'])
    assert json.loads(pool.read_text())['world'] == worlds['pairs']
    stamp = pool.stat().st_mtime_ns
    _prepare_pools(str(tmp_path / 'data'), str(roots['pairs']), 2, 1, ['descriptions'])
    assert pool.stat().st_mtime_ns == stamp
    _prepare_pools(str(tmp_path / 'data'), str(roots['demo']), 2, 1, ['descriptions'])
    assert json.loads(pool.read_text())['world'] == worlds['demo']


def test_label_scarcity_names_an_empty_data_root_and_a_missing_clip_with_their_commands(tmp_path):
    """The fixes read "`python tools/make_demo_data.py`" (no --out) and "`python tools/pretrain_clip.py
    --data-root DATA_ROOT, or give --clip`" (the backtick after the alternative)."""
    empty, work = tmp_path / 'empty', tmp_path / 'study'
    empty.mkdir()
    with pytest.raises(MissingDatasetFileError, match=rf'--data-root {empty} is an empty folder; .* Write the demo '
                       rf'data there with `python tools/make_demo_data.py --out {empty}`'):
        scarcity_main(['--work-dir', str(work), '--data-root', str(empty)])
    root = tmp_path / 'demo'
    make_demo_data(str(root), seed=0, num_train=2, num_val=1, size=64, show_progress=False)
    with pytest.raises(FileNotFoundError) as err:
        scarcity_main(['--work-dir', str(work), '--data-root', str(root)])
    assert str(err.value) == (f"label scarcity: the CLIP checkpoint {root / 'clip' / 'clip.pt'} does not exist: "
                              f'make it with `python tools/pretrain_clip.py --data-root {root}`, or give --clip FILE.')
    assert not work.exists()
