"""Learning from unlabelled images: CLIP zero-shot tags (tools/tag_images.py), per-source loss weights,
the labelled + tagged ConcatDataset config."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import ConcatDataset
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

from mmseg_clip_wsss.apis.tagging import (best_f1_thresholds, choose_thresholds, precision_recall,
                                          shared_f1_thresholds, tag_names)
from mmseg_clip_wsss.cli.tag_images import main as tag_main
from mmseg_clip_wsss.datasets.synthetic.voc_writer import make_demo_data
from mmseg_clip_wsss.demo.unlabelled import arm_options
from mmseg_clip_wsss.models import DEMO_CLIP_NAME, write_random_clip_checkpoint
from mmseg_clip_wsss.structures import sample_loss_weights, set_image_labels

REPO = Path(__file__).resolve().parents[1]
PLUS_TAGGED = REPO / 'configs' / 'unlabelled' / 'clip_wsss_clip-rn_demo_plus-tagged.py'


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    """A labelled demo dataset and an 'unlabelled' one of another seed (its label files unused)."""
    base = tmp_path_factory.mktemp('unlabelled')
    make_demo_data(str(base / 'labelled'), seed=0, num_train=12, num_val=6, num_openvocab=6, size=64,
                   show_progress=False)
    make_demo_data(str(base / 'unlabelled'), seed=5, num_train=10, num_val=0, size=64, show_progress=False)
    clip = write_random_clip_checkpoint(str(base / 'clip.pt'), model_name=DEMO_CLIP_NAME, seed=0)
    return base / 'labelled', base / 'unlabelled', clip


def test_best_f1_thresholds_separate_a_separable_class():
    scores = np.array([[0.9, 0.1], [0.8, 0.4], [0.2, 0.35], [0.1, 0.3]])
    labels = np.array([[1, 0], [1, 1], [0, 0], [0, 0]], dtype=np.float32)
    thr = best_f1_thresholds(scores, labels)
    assert 0.2 < thr[0] < 0.8 and 0.35 < thr[1] < 0.4
    tags = tag_names(scores, thr, ['a', 'b'])
    assert tags == [['a'], ['a', 'b'], ['b'], ['b']]  # rows 3, 4 tagged by the best margin (min_tags=1)
    assert tag_names(scores, thr, ['a', 'b'], min_tags=0)[2:] == [[], []]
    assert best_f1_thresholds(scores, np.zeros_like(labels))[0] == np.inf
    pr = precision_recall(tags, labels, ['a', 'b'])
    assert pr == dict(precision=pytest.approx(60.0), recall=100.0)  # 3 of the 5 tags true, all 3 found


def test_shared_f1_thresholds_fit_one_threshold_in_each_class_spread():
    """One threshold in standard units of each class's reference spread: classes whose scores sit at
    other offsets and spreads get thresholds at the same place of their spread, a class without a
    positive among the labelled images included (per class it would get +inf and never be tagged)."""
    rng = np.random.default_rng(0)
    present = rng.random((400, 3)) < 0.3
    z = np.where(present, 2.0, 0.0) + rng.normal(0, 0.3, present.shape)  # one shape, three classes
    offset, spread = np.array([0.2, 0.5, 0.4]), np.array([0.05, 0.1, 0.02])
    scores = offset + spread * z
    labelled, labels = scores[:40], present[:40].astype(np.float32)
    labels[:, 2] = 0  # no positive of the last class among the labelled images
    shared = shared_f1_thresholds(labelled[:, :2], labels[:, :2], scores[:, :2])
    standard = (shared - scores[:, :2].mean(0)) / scores[:, :2].std(0)
    assert standard[0] == pytest.approx(standard[1], abs=1e-4)  # the same place of each spread
    assert np.all(offset[:2] < shared) and np.all(shared < offset[:2] + 2 * spread[:2])  # between the modes
    unseen = shared_f1_thresholds(labelled, labels, scores)[2]
    assert offset[2] < unseen < offset[2] + 2 * spread[2]
    assert np.isinf(choose_thresholds('per-class', labelled, labels, scores)[2])
    assert np.isinf(shared_f1_thresholds(labelled, np.zeros_like(labels), scores)).all()
    with pytest.raises(ValueError, match=r'reference scores must be \(M >= 2, 3\), got \(1, 3\)'):
        shared_f1_thresholds(labelled, labels, scores[:1])
    with pytest.raises(ValueError, match="threshold rule 'best' is unknown; choose from"):
        choose_thresholds('best', labelled, labels, scores)


def test_tag_images_writes_a_label_file_the_dataset_loads(roots, tmp_path):
    labelled, unlabelled, clip = roots
    out = tmp_path / 'train_clip.txt'
    result = tag_main([clip, '--data-root', str(unlabelled), '--labelled-root', str(labelled),
                       '--out', str(out)])
    assert result['num_images'] == 10 and 0 <= result['mAP'] <= 100  # the generated truth exists
    assert Path(result['thresholds']).is_file()
    dataset = DATASETS.build(dict(type='DemoWSSSDataset', data_root=str(unlabelled),
                                  data_prefix=dict(img_path='JPEGImages'),
                                  ann_file='ImageSets/Segmentation/train.txt', label_file=str(out),
                                  pipeline=[]))
    assert len(dataset) == 10  # every image has at least one tag, so none is dropped
    lines = [line for line in out.read_text().splitlines() if not line.startswith('#')]
    for info, line in zip(dataset, lines):
        names = line.split(' ', 1)[1].split(',')
        assert info['img_id'] == line.split(' ')[0]
        assert [dataset.metainfo['classes'][k] for k in np.flatnonzero(info['gt_image_labels'])[1:]] == names
    # saved thresholds are read back: the same tags again
    again = tmp_path / 'again.txt'
    tag_main([clip, '--data-root', str(unlabelled), '--labelled-root', str(labelled), '--out', str(again),
              '--thresholds', result['thresholds']])
    assert again.read_text().splitlines()[2:] == out.read_text().splitlines()[2:]


def test_tag_images_scores_a_split_whose_true_labels_name_unseen_classes(roots, tmp_path):
    labelled, _, clip = roots
    truth = (labelled / 'ImageLabels' / 'openvocab.txt').read_text()
    assert any(name in truth for name in ('heart', 'arrow', 'diamond', 'bar'))  # the unseen classes
    result = tag_main([clip, '--data-root', str(labelled), '--split', 'openvocab', '--out',
                       str(tmp_path / 'openvocab_clip.txt')])
    assert result['num_images'] == 6 and 0 <= result['mAP'] <= 100  # scored on the tagged classes


def test_plus_tagged_config_concatenates_sources_with_their_loss_weight(roots):
    labelled, unlabelled, clip = roots
    cfg = Config.fromfile(str(PLUS_TAGGED))
    options = [a.split('=', 1) for a in arm_options('plus_tagged', str(labelled), str(unlabelled), clip, 5, 0,
                                                    tagged_loss_weight=0.5)]
    cfg.merge_from_dict({key: DictAction._parse_iterable(value) for key, value in options})
    assert cfg.train_cfg.max_iters == 5 and cfg.randomness.seed == 0
    cfg.train_dataloader.dataset.datasets[1].label_file = 'ImageLabels/train.txt'
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert isinstance(dataset, ConcatDataset) and len(dataset) == 22
    weights = [float(dataset[i]['data_samples'].metainfo['loss_weight']) for i in (0, 21)]
    assert weights == [1.0, 0.5]
    assert {a.split('=')[0] for a in arm_options('labelled', 'a', 'b', 'c', 5, 0)} >= {
        'train_dataloader.dataset.data_root', 'cam_dataloader.dataset.data_root'}


def test_loss_weight_scales_the_multilabel_loss(tiny_clip):
    cfg = copy.deepcopy(Config.fromfile(str(REPO / 'configs' / 'demo' / 'clip_wsss_swin_demo.py')).model)
    cfg.text_encoder.pretrained = tiny_clip['pretrained']
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.eval()  # no dropout: the same scores for both calls

    def losses(weight):
        batch = []
        for labels in ([1, 1, 0, 0, 0, 0, 0, 0, 1], [1, 0, 1, 0, 0, 0, 0, 0, 0]):
            meta = dict(img_shape=(64, 64), pad_shape=(64, 64), ori_shape=(64, 64))
            if weight is not None:
                meta['loss_weight'] = weight
            sample = SegDataSample(metainfo=meta)
            set_image_labels(sample, labels)
            batch.append(sample)
        with torch.no_grad():  # a fresh copy: the loss updates the neck's memory bank
            return copy.deepcopy(model).loss(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)), batch)

    assert sample_loss_weights([SegDataSample(metainfo=dict(loss_weight=1.0))], torch.zeros(1)) is None
    full, half = losses(None), losses(0.5)
    torch.testing.assert_close(half['decode.loss_mlc'], 0.5 * full['decode.loss_mlc'])
    assert losses(0.0)['decode.loss_mlc'] == 0


def test_closest_seen_iou_scores_each_unseen_class_as_its_stand_in():
    from mmseg_clip_wsss.demo.open_vocab import closest_seen_iou
    gt = np.array([[0, 3, 3, 255],
                   [0, 3, 4, 4]])  # 3, 4: unseen classes
    pred = np.array([[0, 1, 2, 1],
                     [1, 1, 2, 0]])  # seen classes only
    iou = closest_seen_iou([pred], [gt], {3: 1, 4: 2})
    # unseen 3 (3 pixels) vs seen 1 (3 valid pixels, the 255 one ignored): 2 shared, union 4
    # unseen 4 (2 pixels) vs seen 2 (2 pixels): 1 shared, union 3
    assert iou == {3: pytest.approx(50.0), 4: pytest.approx(100.0 / 3)}


def test_tag_images_refuses_an_existing_out_and_thresholds_of_another_split(roots, tmp_path):
    """--out is not rewritten silently, and a thresholds file chosen on another labelled split is not
    silently reused: both are refused naming the file and --overwrite, which chooses them again."""
    labelled, unlabelled, clip = roots
    out = tmp_path / 'tags.txt'
    base = [clip, '--data-root', str(unlabelled), '--labelled-root', str(labelled)]
    first = tag_main(base + ['--out', str(out)])
    with pytest.raises(FileExistsError, match=rf'--out {out} exists; pass --overwrite'):
        tag_main(base + ['--out', str(out)])
    chosen = json.loads(Path(first['thresholds']).read_text())
    assert chosen['chosen_on'] == f'{labelled}:train'
    other = base + ['--labelled-split', 'val', '--thresholds', first['thresholds']]
    with pytest.raises(FileExistsError, match=rf'thresholds file .* was made for other data \(chosen_on '
                       rf'{labelled}:train there, {labelled}:val now\); pass --overwrite'):
        tag_main(other + ['--out', str(tmp_path / 'val_tags.txt')])
    tag_main(other + ['--out', str(out), '--overwrite'])
    assert json.loads(Path(first['thresholds']).read_text())['chosen_on'] == f'{labelled}:val'
    # thresholds of another rule, or standardised on other images to tag, are not reused either
    other_rule = base + ['--labelled-split', 'val', '--thresholds', first['thresholds'], '--threshold-rule', 'per-class']
    with pytest.raises(FileExistsError, match=r'threshold_rule shared there, per-class now'):
        tag_main(other_rule + ['--out', str(tmp_path / 'pc.txt')])
    with pytest.raises(FileExistsError, match=rf'standardised_on {unlabelled}:train there, {labelled}:train now'):
        tag_main([clip, '--data-root', str(labelled), '--labelled-split', 'val', '--thresholds',
                  first['thresholds'], '--out', str(tmp_path / 'self.txt')])
    # a split the data root lacks is refused before the thresholds are chosen
    with pytest.raises(FileNotFoundError, match=r'split file .*nosuch\.txt does not exist: give a --split'):
        tag_main(base + ['--split', 'nosuch', '--out', str(tmp_path / 'x.txt')])
    assert not (tmp_path / 'x_thresholds.json').exists()


def test_tag_images_refuses_a_changed_clip_a_damaged_thresholds_file_and_missing_inputs(roots, tmp_path):
    """A CLIP pretrained again at the same path reused the old thresholds; a damaged thresholds file
    ended in json's or numpy's own error; a missing labelled split was found only after the scoring."""
    labelled, unlabelled, clip = roots
    own_clip = tmp_path / 'clip.pt'
    own_clip.write_bytes(Path(clip).read_bytes())
    base = [str(own_clip), '--data-root', str(unlabelled), '--labelled-root', str(labelled)]
    thresholds = Path(tag_main(base + ['--out', str(tmp_path / 'a.txt')])['thresholds'])
    saved = thresholds.read_text()
    reuse = base + ['--out', str(tmp_path / 'b.txt'), '--thresholds', str(thresholds)]
    for content, words in (('{"thresholds": {', r'is not valid JSON \(Expecting'),
                           ('[1, 2]', r'is not the JSON object tag_images writes'),
                           (saved.replace('"disc": ', '"disc": "high", "was": '),
                            r"holds values that are no thresholds \(disc: 'high'\)"),
                           (saved.replace('"temperature": ', '"temperature": 0, "was": '),
                            r'holds values that are no thresholds \(temperature: 0 \(a number > 0\)\)')):
        thresholds.write_text(content)
        with pytest.raises(ValueError, match=rf'thresholds file {thresholds} {words}.*; pass --overwrite'):
            tag_main(reuse)
    thresholds.write_text(saved)
    tag_main(reuse)  # as it was: read back
    write_random_clip_checkpoint(str(own_clip), model_name=DEMO_CLIP_NAME, seed=1)  # another CLIP, same path
    with pytest.raises(FileExistsError, match=r'was made for other data \(checkpoint_stamp .*; standardised_stamp'):
        tag_main(base + ['--out', str(tmp_path / 'c.txt'), '--thresholds', str(thresholds)])
    with pytest.raises(FileNotFoundError, match=r'split file .*nosuch\.txt does not exist: give a --labelled-split'):
        tag_main(base + ['--labelled-split', 'nosuch', '--out', str(tmp_path / 'd.txt')])
    with pytest.raises(FileNotFoundError, match=r'demo_info\.json does not exist: the class names and synonyms'):
        tag_main(base[:3] + ['--labelled-root', str(tmp_path), '--out', str(tmp_path / 'e.txt')])
