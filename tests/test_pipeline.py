"""The WSSS pipeline end to end: configs parse, missing data fails fast, and the demo runner produces
its output contract (summary.json keys, overview.png) on a few tiny generated images."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from mmseg_clip_wsss.datasets.synthetic import make_demo_data
from mmseg_clip_wsss.demo import run_demo
from mmseg_clip_wsss.models.text import resolve_class_prompts
from mmseg_clip_wsss.demo.runner import last_val_miou

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metric_reference import reference_miou  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py')
                 if '_base_' not in p.parts and not p.name.startswith('_'))


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: str(p.relative_to(REPO / 'configs')))
def test_every_config_parses_with_its_mm_bases(path):
    cfg = Config.fromfile(str(path))
    if 'combiner' in cfg:  # configs/open_vocab: a setting of `cli.open_vocab --combine`, no model of its own
        assert cfg.combiner.type == 'OpenVocabCombiner' and Path(cfg.dense_config).is_file()
        assert Config.fromfile(cfg.dense_config).model.type == 'TrainingFreeDenseCLIP'
        return
    assert 'model' in cfg and cfg.model.type
    if cfg.model.type not in ('EncoderDecoder', 'FasterRCNN', 'MaskRCNN'):  # plugin models
        assert 'mmseg_clip_wsss' in cfg.custom_imports.imports


def test_stage2_voc_configs_point_training_at_pseudo_masks_and_evaluation_at_gt():
    """The VOC stage-2 configs (they need VOC, so they are only parsed here; the demo's stage-2
    config is trained on pseudo masks by test_demo_runner_output_contract)."""
    for name in ('deeplabv3plus_r101-d8_pseudo-voc12aug-512x512.py',
                 'upernet_swin-t_pseudo-voc12aug-512x512.py',
                 'clip_wsss_text-head_swin-t_pseudo-voc12aug-512x512.py',
                 'upernet_swin-t_pseudo-voc12aug-512x512_cgce.py',
                 'upernet_swin-t_pseudo-voc12aug-512x512_elc.py'):
        cfg = Config.fromfile(str(REPO / 'configs' / 'stage2' / name))
        train_masks = cfg.train_dataloader.dataset.data_prefix.seg_map_path
        assert train_masks.endswith('work_dirs/clip_wsss_swin_voc/pseudo_masks'), name
        assert os.path.isabs(train_masks)
        assert cfg.val_dataloader.dataset.data_prefix.seg_map_path == 'SegmentationClass', name
        text = cfg.model.get('text_encoder')  # a text-guided head takes K from the class names
        assert (len(resolve_class_prompts(text.class_names)) if text else cfg.model.decode_head.num_classes) == 21


def test_train_without_voc_exits_naming_the_missing_directory(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'), str(REPO / 'configs' / 'clip_wsss_swin_voc.py')],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode != 0
    assert str(tmp_path / 'data' / 'VOCdevkit' / 'VOC2012') in result.stderr
    assert 'docs/datasets.md' in result.stderr
    assert 'Traceback' not in result.stderr


def _stamps(root: Path, pattern: str) -> dict:
    """(mtime_ns, size) of the files under ``root`` matching ``pattern``."""
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob(pattern))}


def test_demo_runner_output_contract(tmp_path):
    """The demo on 12 train / 6 val images with 4 iterations per model: every step runs, the figures
    of summary.json are those of the files written, stage 2 trains on the stage-1 pseudo masks, and a
    second run trains nothing again (the real demo's figures come from `make demo`)."""
    data_root = tmp_path / 'data'
    work = tmp_path / 'work'
    make_demo_data(str(data_root), seed=0, num_train=12, num_val=6, num_openvocab=6, show_progress=False)
    small_clip = ['--pairs', '64', '--steps', '2', '--batch-size', '16']
    summary = run_demo(str(work), str(data_root), iters=4, clip_args=small_clip, num_overview=6)
    written = json.loads((work / 'summary.json').read_text())
    assert written == summary
    for key in ('pseudo_mask_miou', 'cam_baseline_miou', 'handcrafted_prompt_miou', 'random_text_miou',
                'stage2_val_miou', 'stage2_gt_val_miou', 'clip_zero_shot_map', 'clip_random_zero_shot_map'):
        assert np.isfinite(written[key]) and written[key] > 1.0, (key, written[key])
    assert 0 <= written['clip_retrieval_r1'] <= 100 and written['clip_pretrain_seconds'] > 0
    for key in ('open_vocab_unseen_miou', 'open_vocab_seen_miou', 'open_vocab_closest_seen_miou', 'tagging_map',
                'tagging_precision', 'tagging_recall', 'open_vocab_combined_unseen_miou',
                'open_vocab_combined_seen_miou', 'open_vocab_combined_all_miou'):
        assert 0 <= written[key] <= 100, (key, written[key])
    calibration = json.loads((work / 'open_vocab_calibration.json').read_text())  # fitted on val, kept
    assert calibration['fit_split'] == 'val' and calibration['fit_images'] == 6
    for key in ('training_free', 'training_free_clip_es'):
        assert written[f'{key}_images'] == 12 and written[f'{key}_seconds_per_image'] > 0
    # each stage-1 (and the training-free) mIoU is that of the pseudo masks written against the GT masks
    gt_dir = data_root / 'SegmentationClass'
    for name, key in (('stage1', 'pseudo_mask_miou'), ('handcrafted', 'handcrafted_prompt_miou'),
                      ('random_text', 'random_text_miou'), ('cam_baseline', 'cam_baseline_miou'),
                      ('training_free_maskclip', 'training_free_miou'),
                      ('training_free_clip_es', 'training_free_clip_es_miou')):
        pngs = sorted((work / name / 'pseudo_masks').glob('*.png'))
        assert len(pngs) == 12, name
        values = np.unique(np.concatenate([np.unique(np.array(Image.open(p))) for p in pngs]))
        assert set(values.tolist()) <= set(range(9)) | {255}
        expected = reference_miou([(p, gt_dir / p.name) for p in pngs], num_classes=9)
        assert written[key] == pytest.approx(expected, abs=0.01), name
    # stage 2 read the stage-1 pseudo masks, and its mIoU is its last validation's
    stage2_cfg = Config.fromfile(str(work / 'stage2' / 'stage2_clip-rn_upernet_demo.py'))
    assert stage2_cfg.train_dataloader.dataset.data_prefix.seg_map_path == str(
        work / 'stage1' / 'pseudo_masks')
    assert written['stage2_val_miou'] == pytest.approx(last_val_miou(str(work / 'stage2')), abs=0.01)
    overview = Image.open(work / 'overview.png')
    assert overview.size[1] > 6 * 150  # six image rows

    # a second run finds every result: no CLIP, checkpoint, training log or pseudo mask is written again
    def stamps():
        return {**_stamps(work, '*.pth'), **_stamps(work, 'train.log'), **_stamps(work, '*.png'),
                **_stamps(data_root / 'clip', '*.pt')}

    kept = {**stamps(), **_stamps(work, 'open_vocab*.json')}
    kept.pop(str(work / 'overview.png'))
    # stage1, handcrafted, random_text, cam_baseline, stage2, stage2_gt
    assert len([p for p in kept if p.endswith('.pth') and '/clip/' not in p]) == 6
    again = run_demo(str(work), str(data_root), iters=4, clip_args=small_clip, num_overview=6)
    now = {**stamps(), **_stamps(work, 'open_vocab*.json')}
    now.pop(str(work / 'overview.png'))
    assert now == kept
    for key in ('pseudo_mask_miou', 'cam_baseline_miou', 'handcrafted_prompt_miou', 'random_text_miou',
                'stage2_val_miou', 'stage2_gt_val_miou', 'clip_zero_shot_map'):
        assert again[key] == summary[key], key


def test_demo_step_refuses_to_resume_a_run_of_another_config(tmp_path):
    """An unfinished run of another config (an older demo's work dir) is not resumed into this one."""
    from mmseg_clip_wsss.demo.runner import train
    work_dir = tmp_path / 'stage1'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_500.pth'))
    (work_dir / 'clip_wsss_swin_demo.py').write_text('# the older demo config')
    with pytest.raises(RuntimeError, match='--fresh') as err:
        train('stage1', 'configs/demo/clip_wsss_clip-rn_demo.py', str(work_dir), [], 800, False, 1)
    assert str(work_dir) in str(err.value) and 'clip_wsss_clip-rn_demo.py' in str(err.value)


def test_demo_step_reuses_only_a_finished_run_of_the_same_config_and_options(tmp_path):
    """A finished run is reused only when its record names the config (as its file reads now) and the
    options it is asked for; one of other options (another sampler share, seed, data root) is not."""
    from mmseg_clip_wsss.demo.runner import RUN_RECORD, REPO, finished_run
    config, work_dir = 'configs/demo/clip_wsss_clip-rn_demo.py', tmp_path / 'stage1'
    work_dir.mkdir()
    (work_dir / 'iter_4.pth').write_bytes(b'0')
    assert finished_run(str(work_dir), config, ['randomness.seed=0'], 4) is None  # no record: not reused
    text = (Path(REPO) / config).read_text()
    (work_dir / RUN_RECORD).write_text(json.dumps(dict(config=text, options=['randomness.seed=0'], inputs={})))
    assert finished_run(str(work_dir), config, ['randomness.seed=0'], 4) == str(work_dir / 'iter_4.pth')
    assert finished_run(str(work_dir), config, ['randomness.seed=1'], 4) is None
    assert finished_run(str(work_dir), config, ['randomness.seed=0'], 8) is None
    (work_dir / RUN_RECORD).write_text(json.dumps(dict(config=text + '# edited', options=['randomness.seed=0'])))
    assert finished_run(str(work_dir), config, ['randomness.seed=0'], 4) is None


def test_demo_step_is_not_reused_when_a_file_it_reads_changed_behind_the_same_path(tmp_path):
    """A CLIP pretrained again at the same path, or a data folder drawn again with another seed, made
    no other options: the finished runs were reused and reported as the new ones."""
    from mmseg_clip_wsss.demo.runner import RUN_RECORD, _run_record, finished_run
    config, work_dir = 'configs/demo/clip_wsss_clip-rn_demo.py', tmp_path / 'stage1'
    work_dir.mkdir()
    (work_dir / 'iter_4.pth').write_bytes(b'0')
    clip, pool = tmp_path / 'clip.pt', tmp_path / 'pool'
    clip.write_bytes(b'weights A')
    pool.mkdir()
    (pool / 'described_pool.json').write_text('{"seed": 1}')
    (pool / 'image.jpg').write_bytes(b'1')
    options = [f'model.backbone.pretrained={clip}', f"train_dataloader.dataset.data_root='{pool}'"]
    record = _run_record(config, options)
    assert set(record['inputs']) == {str(clip), str(pool / 'described_pool.json')}  # a folder: its record only
    (work_dir / RUN_RECORD).write_text(json.dumps(record))
    assert finished_run(str(work_dir), config, options, 4) == str(work_dir / 'iter_4.pth')
    (pool / 'image.jpg').write_bytes(b'2')  # a folder's other files are not read
    assert finished_run(str(work_dir), config, options, 4) is not None
    (pool / 'described_pool.json').write_text('{"seed": 5}')
    assert finished_run(str(work_dir), config, options, 4) is None
    (pool / 'described_pool.json').write_text('{"seed": 1}')
    assert finished_run(str(work_dir), config, options, 4) is not None  # the same content again
    clip.write_bytes(b'weights B')
    assert finished_run(str(work_dir), config, options, 4) is None
