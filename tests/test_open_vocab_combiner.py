"""The open-vocabulary combination rule (OpenVocabCombiner): trained names from the head, names never
trained on from the dense zero-shot map, calibrated on one split and applied unchanged on another."""
import json
import os.path as osp
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import save_checkpoint
from torch import nn

from mmseg_clip_wsss.apis.inferencer import WSSSInferencer
from mmseg_clip_wsss.cli import open_vocab as open_vocab_cli
from mmseg_clip_wsss.datasets.synthetic import make_demo_data
from mmseg_clip_wsss.demo.combined_open_vocab import combined_open_vocab_figures, load_combination_config
from mmseg_clip_wsss.demo.open_vocab import open_vocab_figures
from mmseg_clip_wsss.models import DEMO_CLIP_NAME, OpenVocabCombiner, write_random_clip_checkpoint
from mmseg_clip_wsss.models.open_vocab_combiner import fit_platt
from mmseg_clip_wsss.registry import MODELS

TRAINED = ['background', 'disc', 'ring']
NAMES = ['background', 'disc', 'ring', 'heart']  # heart: never trained on
REPO = Path(__file__).resolve().parents[1]
COMBINE_CFG = REPO / 'configs/open_vocab/combined-maskclip_demo-clip_demo.py'
TRAINED_DEMO = ['background', 'disc', 'ring', 'square', 'triangle', 'star', 'cross', 'hexagon', 'crescent']
IDENTITY = dict(head=dict(scale=1.0, offset=0.0), dense=dict(scale=1.0, offset=0.0))


class StubSource(nn.Module):
    """A 'model' whose (1, K, 2, 2) score maps are fixed: row k, pixel (y, x) = maps[k][y][x]."""

    def __init__(self, maps):
        super().__init__()
        self.maps = torch.tensor(maps, dtype=torch.float32)[None]

    def forward(self, images):
        return self.maps.expand(images.shape[0], -1, -1, -1)


def _combiner(params=IDENTITY, **kwargs):
    combiner = OpenVocabCombiner(TRAINED, **kwargs)
    combiner.params = {k: dict(v) for k, v in params.items()}
    return combiner


def test_each_name_is_scored_by_its_source():
    # pixels: (0,0) head says disc; (0,1) dense says heart; (1,0) dense says ring strongly but ring is a
    # trained name, so the head's ring row (low) counts; (1,1) head's background wins over a weak heart
    head = StubSource([[[0.0, 0.0], [0.2, 0.6]],      # background
                       [[3.0, 0.0], [0.0, 0.0]],      # disc
                       [[0.0, 0.0], [-1.0, 0.0]]])    # ring
    dense = StubSource([[[0.0, 0.0], [0.0, 0.0]],     # background (dense row never used)
                        [[0.0, 9.0], [0.0, 0.0]],     # disc: dense row ignored, even where it is high
                        [[0.0, 0.0], [9.0, 0.0]],     # ring: dense row ignored
                        [[0.5, 2.0], [-3.0, 0.1]]])   # heart: only the dense map knows it
    images = torch.zeros(1, 3, 2, 2)
    combiner = _combiner()
    assert combiner.sources(NAMES) == ['head', 'head', 'head', 'dense']
    labels = combiner.predict(head(images), dense(images), NAMES)[0]
    assert labels.tolist() == [[1, 3], [0, 0]]
    probs = combiner(head(images), dense(images), NAMES)[0]
    assert torch.allclose(probs[3], torch.sigmoid(dense.maps[0, 3]))
    assert torch.allclose(probs[2], torch.sigmoid(head.maps[0, 2]))  # the head's ring, not the dense 9.0


def test_calibration_decides_between_sources():
    head = torch.tensor([0.2, 0.9, 0.0]).view(1, 3, 1, 1)  # background 0.2, disc 0.9
    dense = torch.tensor([0.0, 0.0, 0.0, 0.6]).view(1, 4, 1, 1)  # heart 0.6
    # same scale: the head's disc (0.9) wins; a dense offset of +1 makes the heart win
    assert _combiner().predict(head, dense, NAMES).item() == 1
    shifted = dict(IDENTITY, dense=dict(scale=1.0, offset=1.0))
    assert _combiner(shifted).predict(head, dense, NAMES).item() == 3


def test_trained_names_in_another_order_take_their_own_head_rows():
    head = torch.tensor([0.1, 0.0, 0.8]).view(1, 3, 1, 1)  # ring is the head's row 2
    dense = torch.zeros(1, 3, 1, 1)
    names = ['background', 'heart', 'ring']
    assert _combiner().predict(head, dense, names).item() == 2


def test_fit_platt_recovers_a_known_sigmoid():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(20000, generator=g) * 4 - 2
    targets = torch.rand(20000, generator=g) < torch.sigmoid(3.0 * scores - 1.0)
    scale, offset = fit_platt(scores, targets)
    assert scale == pytest.approx(3.0, abs=0.25)
    assert offset == pytest.approx(-1.0, abs=0.15)
    with pytest.raises(ValueError, match='both positive and negative'):
        fit_platt(scores, torch.zeros(20000))


def _split(seed, head_scale, dense_scale, n=3, size=24):
    """Images of the trained classes: GT, head scores and dense scores (dense rows over NAMES), each
    source's score = its own multiple of the GT one-hot plus noise."""
    g = torch.Generator().manual_seed(seed)
    gts = [torch.randint(0, 3, (size, size), generator=g) for _ in range(n)]
    gts[0][0, :4] = 255  # ignored pixels
    onehot = [torch.stack([gt == k for k in range(4)]).float() for gt in gts]
    head = [head_scale * o[:3] + torch.randn(3, size, size, generator=g) for o in onehot]
    dense = [dense_scale * o + 0.5 * torch.randn(4, size, size, generator=g) for o in onehot]
    return head, dense, gts


def test_calibration_fitted_on_one_split_is_applied_unchanged_on_another(tmp_path):
    fitted = OpenVocabCombiner(TRAINED, max_fit_pixels=1000)
    params = fitted.fit(*_split(0, 2.0, 1.0), NAMES, fit_split='val')
    assert params['head']['scale'] > 0 and params['dense']['scale'] > 0
    assert params['head'] != params['dense']  # two sources, two sigmoids
    path = str(tmp_path / 'calibration.json')
    fitted.save(path)
    saved = json.load(open(path))
    assert saved['fit_split'] == 'val' and saved['trained_names'] == TRAINED and saved['fit_images'] == 3

    loaded = MODELS.build(dict(type='OpenVocabCombiner', trained_names=TRAINED, calibration=path))
    assert loaded.params == fitted.params
    head, dense, _ = _split(1, 4.0, 3.0)  # another split, scored with other statistics
    probs = loaded(head[0][None], dense[0][None], NAMES)[0]
    p = fitted.params
    assert torch.allclose(probs[1], torch.sigmoid(p['head']['scale'] * head[0][1] + p['head']['offset']))
    assert torch.allclose(probs[3], torch.sigmoid(p['dense']['scale'] * dense[0][3] + p['dense']['offset']))
    refit = OpenVocabCombiner(TRAINED, max_fit_pixels=1000).fit(*_split(1, 4.0, 3.0), NAMES)
    assert refit['head']['scale'] > params['head']['scale'] + 0.3  # fitting there would have changed it
    assert loaded.params == fitted.params  # scoring changed nothing


def test_fit_needs_every_trained_name():
    head, dense, gts = _split(0, 2.0, 1.0)
    with pytest.raises(ValueError, match=r"lack the trained names \['ring'\]"):
        OpenVocabCombiner(TRAINED).fit(head, [d[[0, 1, 3]] for d in dense], gts, ['background', 'disc', 'heart'])


def _write(path, **changes):
    state = dict(kind='open_vocab_calibration', trained_names=TRAINED, dense_mode='maskclip',
                 params=IDENTITY, fit_split='val', fit_images=3)
    state.update(changes)
    path.write_text(json.dumps(state))
    return str(path)


def test_calibration_of_another_class_list_is_refused_naming_file_and_fix(tmp_path):
    path = _write(tmp_path / 'other.json', trained_names=['background', 'cat', 'dog'])
    with pytest.raises(ValueError) as err:
        OpenVocabCombiner(TRAINED, calibration=path)
    message = str(err.value)
    assert path in message and "['background', 'cat', 'dog']" in message and str(TRAINED) in message
    assert f'delete {path}' in message


def test_bad_calibration_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="dense_mode 'sclip'.*delete"):
        OpenVocabCombiner(TRAINED, calibration=_write(tmp_path / 'mode.json', dense_mode='sclip'))
    with pytest.raises(ValueError, match='not an open-vocabulary calibration file'):
        OpenVocabCombiner(TRAINED, calibration=_write(tmp_path / 'kind.json', kind='thresholds'))
    broken = tmp_path / 'broken.json'
    broken.write_text('{"kind": ')
    with pytest.raises(ValueError, match=f'{broken} is not JSON'):
        OpenVocabCombiner(TRAINED, calibration=str(broken))
    with pytest.raises(FileNotFoundError, match='missing.json not found: fit one first'):
        OpenVocabCombiner(TRAINED, calibration=str(tmp_path / 'missing.json'))


def test_unfitted_or_misshapen_inputs_are_refused():
    head, dense = torch.zeros(1, 3, 2, 2), torch.zeros(1, 4, 2, 2)
    with pytest.raises(RuntimeError, match='no calibration'):
        OpenVocabCombiner(TRAINED)(head, dense, NAMES)
    with pytest.raises(ValueError, match=r'head scores must be \(B, 3, H, W\)'):
        _combiner()(torch.zeros(1, 4, 2, 2), dense, NAMES)
    with pytest.raises(ValueError, match=r'dense scores must be \(B, 4, H, W\)'):
        _combiner()(head, torch.zeros(1, 3, 2, 2), NAMES)
    with pytest.raises(ValueError, match='differ in batch or size'):
        _combiner()(head, torch.zeros(1, 4, 3, 2), NAMES)
    with pytest.raises(ValueError, match='distinct names'):
        OpenVocabCombiner(['background', 'disc', 'disc'])


def test_combination_config_and_fit_split_are_checked(tmp_path):
    config = tmp_path / 'combine.py'
    config.write_text("dense_config = 'x.py'\nfit_split = 'openvocab'\n")
    with pytest.raises(ValueError, match=r"lacks \['combiner'\].*combined-maskclip_demo-clip_demo.py"):
        load_combination_config(str(config))
    config.write_text("dense_config = 'x.py'\nfit_split = 'openvocab'\ncombiner = dict(type='OpenVocabCombiner')\n")
    with pytest.raises(ValueError, match="fit_split 'openvocab' is the scored split"):
        combined_open_vocab_figures(None, str(config), str(tmp_path), 'clip.pt', split='openvocab')
    with pytest.raises(FileNotFoundError, match=r'combination config .*nothing.py does not exist: give the path '
                       r'of a config file, e.g. configs/open_vocab/combined-maskclip_demo-clip_demo.py'):
        load_combination_config(str(tmp_path / 'nothing.py'))


def test_cli_writes_the_calibration_beside_the_figures(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(open_vocab_cli, 'open_vocab_figures',
                        lambda *args, **kwargs: seen.update(kwargs) or dict(ok=1))
    out = str(tmp_path / 'ov' / 'figures.json')
    open_vocab_cli.main(['cfg.py', 'ckpt.pth', '--combine', 'combine.py', '--out', out])
    assert seen == dict(combine='combine.py', calibration=str(tmp_path / 'ov' / 'figures_calibration.json'))
    open_vocab_cli.main(['cfg.py', 'ckpt.pth'])
    assert seen == dict(combine=None, calibration=None)


def test_demo_figures_fit_on_val_write_the_calibration_and_read_it_back(tmp_path):
    """End to end on tiny data with random CLIP weights: the combined figures come beside the old ones
    (which keep their values), the calibration is fitted on val, written, and read back unchanged."""
    root = tmp_path / 'demo'
    make_demo_data(str(root), seed=0, num_train=2, num_val=2, num_openvocab=3, size=64, show_progress=False)
    clip = write_random_clip_checkpoint(str(tmp_path / 'rn.pt'), DEMO_CLIP_NAME, seed=0)
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(REPO / 'configs/demo/clip_wsss_clip-rn_demo.py'))
    cfg.model.backbone.pretrained = cfg.model.text_encoder.pretrained = clip
    torch.manual_seed(0)
    checkpoint = str(tmp_path / 'stage1.pth')
    save_checkpoint(dict(state_dict=MODELS.build(cfg.model).state_dict(),
                         meta=dict(dataset_meta=dict(classes=tuple(TRAINED_DEMO)))), checkpoint)
    calibration = str(tmp_path / 'calibration.json')
    plain = open_vocab_figures(str(REPO / 'configs/demo/clip_wsss_clip-rn_demo.py'), checkpoint, str(root), clip)
    first = open_vocab_figures(str(REPO / 'configs/demo/clip_wsss_clip-rn_demo.py'), checkpoint, str(root), clip,
                               combine=str(COMBINE_CFG), calibration=calibration)
    for key in ('open_vocab_unseen_miou', 'open_vocab_seen_miou', 'open_vocab_closest_seen_miou'):
        assert first[key] == plain[key], key
    for key in ('unseen_miou', 'seen_miou', 'all_miou', 'dense_share'):
        assert 0 <= first[f'open_vocab_combined_{key}'] <= 100, key
    saved = json.load(open(calibration))
    assert saved['fit_split'] == 'val' and saved['fit_images'] == 2 and saved['trained_names'] == TRAINED_DEMO
    assert first['open_vocab_combined_calibration']['head'] == saved['params']['head']
    stamp = osp.getmtime(calibration)
    again = combined_open_vocab_figures(WSSSInferencer(cfg, checkpoint, device='cpu'), str(COMBINE_CFG),
                                        str(root), clip, calibration=calibration)
    assert osp.getmtime(calibration) == stamp  # read, not fitted again
    for key in ('open_vocab_combined_unseen_miou', 'open_vocab_combined_per_class_iou',
                'open_vocab_combined_calibration'):
        assert again[key] == first[key], key
