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

from mmseg_clip_wsss.demo import make_demo_data, run_demo

REPO = Path(__file__).resolve().parents[1]

CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py')
                 if '_base_' not in p.parts and not p.name.startswith('_'))


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: str(p.relative_to(REPO / 'configs')))
def test_every_config_parses_with_its_mm_bases(path):
    cfg = Config.fromfile(str(path))
    assert 'model' in cfg and cfg.model.type
    if cfg.model.type not in ('EncoderDecoder', 'FasterRCNN', 'MaskRCNN'):  # plugin models
        assert 'mmseg_clip_wsss' in cfg.custom_imports.imports


def test_stage2_configs_train_on_pseudo_masks_and_evaluate_on_gt():
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
        assert cfg.model.decode_head.num_classes == 21


def test_train_without_voc_exits_naming_the_missing_directory(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'), str(REPO / 'configs' / 'clip_wsss_swin_voc.py')],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode != 0
    assert str(tmp_path / 'data' / 'VOCdevkit' / 'VOC2012') in result.stderr
    assert 'docs/datasets.md' in result.stderr
    assert 'Traceback' not in result.stderr


def test_demo_runner_output_contract(tmp_path):
    """The demo on 12 train / 6 val images with 4 iterations per model: every step runs and the files
    other tools read exist with their keys (the real demo's figures come from `make demo`)."""
    data_root = tmp_path / 'data'
    make_demo_data(str(data_root), seed=0, num_train=12, num_val=6, show_progress=False)
    summary = run_demo(str(tmp_path / 'work'), str(data_root), iters=4, num_overview=6)
    written = json.loads((tmp_path / 'work' / 'summary.json').read_text())
    for key in ('pseudo_mask_miou', 'cam_baseline_miou', 'handcrafted_prompt_miou', 'stage2_val_miou',
                'seconds'):
        assert 0 <= written[key] <= (100 if key != 'seconds' else 3600), key
        assert written[key] == summary[key]
    pngs = sorted((tmp_path / 'work' / 'stage1' / 'pseudo_masks').glob('*.png'))
    assert len(pngs) == 12
    values = np.unique(np.concatenate([np.unique(np.array(Image.open(p))) for p in pngs]))
    assert set(values.tolist()) <= set(range(9)) | {255}
    overview = Image.open(tmp_path / 'work' / 'overview.png')
    assert overview.size[1] > 6 * 150  # six image rows
    # a second run finds every result and does not train again
    again = run_demo(str(tmp_path / 'work'), str(data_root), iters=4, num_overview=6)
    assert again['pseudo_mask_miou'] == summary['pseudo_mask_miou']
    assert again['seconds'] < summary['seconds']
