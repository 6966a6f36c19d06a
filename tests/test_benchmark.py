"""tools/benchmark.py (mmseg_clip_wsss.benchmark) on two tiny configs, and the label-efficiency
aggregation (mean ± std over seeds, % of the fully supervised mIoU) on fixed numbers."""
import json
import math
import os.path as osp

import pytest
import torch

from mmseg_clip_wsss.benchmark import (RATIO_KEYS, ModelSpec, add_ratios,
                                       aggregate_label_efficiency, compute_targets,
                                       format_label_efficiency_markdown, format_markdown,
                                       load_benchmark_config, mean_std, parse_model_arg,
                                       run_benchmark, strip_pretrained)
from mmseg_clip_wsss.models import TINY_CLIP_NAME

CLASSES = ['background', 'cat', 'dog']
TINY_SWIN = ("dict(type='SwinTransformer', pretrain_img_size=64, embed_dims=16, patch_size=4, "
             "window_size=4, mlp_ratio=2, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], "
             "strides=(4, 2, 2, 2), out_indices=(0, 1, 2, 3), drop_path_rate=0.0, "
             "init_cfg=dict(type='Pretrained', checkpoint='/nowhere/swin.pth'))")

BASE_CFG = f"""
model = dict(
    type='EncoderDecoder',
    backbone={TINY_SWIN},
    decode_head=dict(type='FCNHead', in_channels=128, in_index=3, channels=16, num_convs=1,
                     num_classes=3, norm_cfg=dict(type='SyncBN', requires_grad=True),
                     loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
"""

OURS_CFG = f"""
custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='WSSSEncoderDecoder',
    backbone={TINY_SWIN},
    neck=dict(type='RSCANeck', in_channels=[16, 32, 64, 128], channels=16, num_classes=3,
              norm_cfg=norm_cfg),
    decode_head=dict(type='TextGuidedHead', in_channels=16, channels=16, num_classes=3,
                     embed_dim=32, norm_cfg=norm_cfg),
    text_encoder=dict(type='CLIPPromptTextEncoder', class_names={CLASSES!r},
                      model_name='{TINY_CLIP_NAME}', pretrained='/nowhere/tiny_clip.pt',
                      prompt=dict(type='CoOpPromptLearner', ctx_init='a photo of a')),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4),
                     clip_grad=dict(max_norm=10.0))
cam_cfg = dict(scales=(1.0, 0.5), flip=True, refine='par', bg_threshold=0.35)
"""


@pytest.fixture(scope='module')
def tiny_result(tmp_path_factory):
    root = tmp_path_factory.mktemp('benchmark')
    (root / 'base.py').write_text(BASE_CFG)
    (root / 'ours.py').write_text(OURS_CFG)
    torch.manual_seed(0)
    specs = [ModelSpec('base', str(root / 'base.py'), description='tiny mmseg model'),
             ModelSpec('ours', str(root / 'ours.py'), description='tiny text-guided model')]
    out_dir = root / 'out'
    result = run_benchmark(specs, baseline='base', input_size=(64, 64), repeats=2, warmup=1,
                           out_dir=str(out_dir), pseudo_mask_models=['ours'], pseudo_mask_repeats=1,
                           target_model='ours', cam_model=None, log=lambda msg: None)
    return result, out_dir


def test_benchmark_writes_json_markdown_and_profiles(tiny_result):
    result, out_dir = tiny_result
    with open(out_dir / 'benchmark.json') as f:
        data = json.load(f)
    assert data['input_size'] == [64, 64] and data['baseline'] == 'base'
    assert data['threads'] == torch.get_num_threads()
    assert data['machine']['torch'] == torch.__version__ and data['machine']['cpu']
    models = {m['name']: m for m in data['models']}
    assert list(models) == ['base', 'ours']
    for name, entry in models.items():
        assert entry['config'].endswith(f'{name}.py')
        for key in ('params_m', 'gflops', 'infer_img_per_s', 'train_step_s'):
            assert entry[key] > 0, (name, key)
        # memory: what the model adds to an idle process, from the readings of its own process
        readings = entry['memory_readings']
        assert 'memory_error' not in entry and entry['peak_mem_mb'] > 0, entry
        assert entry['peak_mem_mb'] == pytest.approx(
            readings['train_hwm_mb'] - readings['rss_import_mb'], abs=0.15)
        assert 0 < entry['infer_peak_mem_mb'] <= entry['peak_mem_mb'] + 1e-6
        assert len(entry['infer_times_s']) == 2 and len(entry['train_step_times_s']) == 2
        assert entry['infer_img_per_s'] == pytest.approx(1 / entry['infer_s_median'], rel=1e-3)
        assert osp.isfile(entry['profile'])
        assert 'backbone' in entry['infer_breakdown_ms']
        # nothing pretrained is loaded or downloaded
        assert 'model.backbone.init_cfg' in entry['weights_off']
    # the baseline's ratios are exactly 1; every value was measured (> 0 above), so every ratio exists
    for key in RATIO_KEYS:
        assert models['base'][f'{key}_ratio'] == 1.0
        ours = models['ours']
        assert ours[f'{key}_ratio'] == pytest.approx(ours[key] / models['base'][key], rel=1e-3), key
    # the text tower: counted apart, never run by the timed inferences or the FLOP count
    ours, base = models['ours'], models['base']
    assert 'model.text_encoder.pretrained' in ours['weights_off']
    assert ours['text_tower_params_m'] > 0
    assert ours['params_m'] == pytest.approx(ours['params_total_m'] - ours['text_tower_params_m'],
                                             abs=2e-3)
    assert ours['text_encoder_calls_during_inference'] == 0
    assert ours['text_encoder_calls_during_flops'] == 0
    assert ours['text_encoder_gflops_once'] > 0
    assert base['text_encoder_calls_during_inference'] is None
    assert ours['memory_banks_filled'] == 1
    # pseudo masks: 4 settings of the config's cam_cfg, no text-tower call
    rows = data['pseudo_masks']
    assert [r['setting'] for r in rows] == ['single scale', 'single scale + PAR',
                                            'multi-scale + flip', 'multi-scale + flip + PAR']
    assert rows[2]['scales'] == [1.0, 0.5] and rows[2]['flip'] is True
    assert all(r['img_per_s'] > 0 and r['text_encoder_calls'] == 0 for r in rows)
    targets = {t['target']: t for t in data['targets']}
    assert targets['ours text-tower calls during timed inference']['passed'] is True
    text = (out_dir / 'benchmark.md').read_text()
    assert '| `base` |' in text and '(1.00x)' in text and 'Pseudo-mask generation' in text
    profile = (out_dir / 'profile_ours.txt').read_text()
    assert 'text-tower calls during the profiled inferences: 0' in profile
    assert 'module::backbone' in profile


def test_gflops_match_the_hand_count_of_the_head(tmp_path):
    """The FLOP count of a model that only adds one 1x1 conv differs by exactly that conv's MACs."""
    cfg = tmp_path / 'gap.py'
    cfg.write_text(f"""
custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)
model = dict(type='WSSSEncoderDecoder', backbone={TINY_SWIN},
             decode_head=dict(type='CAMClassifierHead', in_channels=128, channels=16, num_classes=3,
                              in_index=3), train_cfg=dict(), test_cfg=dict(mode='whole'))
""")
    from mmseg_clip_wsss.benchmark import build_benchmark_model
    from mmseg_clip_wsss.benchmark.measure import complexity_gflops
    model = build_benchmark_model(load_benchmark_config(ModelSpec('gap', str(cfg))))
    x = torch.randn(1, 3, 64, 64)

    class LastLevel(torch.nn.Module):  # the backbone up to the level the head reads

        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone

        def forward(self, inputs):
            return self.backbone(inputs)[3]

    total = complexity_gflops(model, x)
    backbone_only = complexity_gflops(LastLevel(model.backbone), x)
    # classifier: 1x1 conv 128 -> 3 on the 2x2 map of stride 32
    assert (total - backbone_only) * 1e9 == pytest.approx(128 * 3 * 2 * 2, abs=1e-3)


def test_strip_pretrained_and_model_args():
    cfg = dict(pretrained='ckpt.pth', backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='x')),
               heads=[dict(init_cfg=[dict(type='Normal'), dict(type='Pretrained', checkpoint='y')])],
               neck=dict(init_cfg=dict(type='Normal', std=0.01)),
               text_encoder=dict(pretrained='openai', model_name='ViT-B-16'))
    changed = strip_pretrained(cfg)
    assert sorted(changed) == ['model.backbone.init_cfg', 'model.heads.0.init_cfg', 'model.pretrained',
                               'model.text_encoder.pretrained']
    assert cfg['backbone']['init_cfg'] is None and cfg['text_encoder']['pretrained'] is None
    assert cfg['neck']['init_cfg'] == dict(type='Normal', std=0.01)
    assert parse_model_arg('configs/clip_wsss_swin_voc.py').name == 'clip_wsss_swin_voc'
    spec = parse_model_arg('upernet=mmseg::swin/a.py')
    assert (spec.name, spec.config) == ('upernet', 'mmseg::swin/a.py')
    assert parse_model_arg('mmseg::swin/b_c.py').name == 'b_c'


def test_default_set_configs_resolve_without_downloads():
    from mmseg_clip_wsss.benchmark import DEFAULT_SPECS
    from mmseg_clip_wsss.models.text import resolve_class_prompts
    for spec in DEFAULT_SPECS:
        cfg = load_benchmark_config(spec)
        assert cfg.model.backbone.init_cfg is None
        assert cfg.model.backbone.embed_dims == 96 and cfg.model.backbone.depths == [2, 2, 6, 2]
        if cfg.model.get('text_encoder'):  # K follows from the class names (21 for VOC)
            assert 'num_classes' not in cfg.model.decode_head
            assert len(resolve_class_prompts(cfg.model.text_encoder.class_names)) == 21
            assert cfg.model.text_encoder.pretrained is None
            assert cfg.model.text_encoder.model_name == 'ViT-B-16'
        else:
            assert cfg.model.decode_head.num_classes == 21
    upernet = load_benchmark_config(DEFAULT_SPECS[0])
    assert upernet.model.decode_head.type == 'UPerHead' and upernet.model.auxiliary_head.num_classes == 21
    no_rsca = load_benchmark_config(DEFAULT_SPECS[2]).model
    assert no_rsca.neck.use_aggregation is False and no_rsca.neck.loss_region is None
    cam = load_benchmark_config(DEFAULT_SPECS[3]).model
    assert cam.neck is None and cam.text_encoder is None and cam.decode_head.in_index == 3


def test_ratios_and_targets_on_fixed_numbers():
    entries = [dict(name='base', params_m=60.0, gflops=60.0, infer_img_per_s=0.5, train_step_s=10.0,
                    peak_mem_mb=1000.0),
               dict(name='ours', params_m=30.0, gflops=15.0, infer_img_per_s=1.5, train_step_s=4.0,
                    peak_mem_mb=None, text_encoder_calls_during_inference=0),
               dict(name='cam', params_m=27.0, gflops=7.0, infer_img_per_s=2.0, train_step_s=2.0,
                    peak_mem_mb=400.0)]
    add_ratios(entries, 'base')
    assert [e['gflops_ratio'] for e in entries] == [1.0, 0.25, pytest.approx(7 / 60, abs=1e-4)]
    assert entries[1]['infer_img_per_s_ratio'] == 3.0 and entries[1]['peak_mem_mb_ratio'] is None
    targets = {t['target']: t for t in compute_targets(entries, 'base', 'ours', 'cam')}
    assert targets['ours inference img/s vs base']['value'] == 3.0
    assert targets['ours inference img/s vs base']['passed'] is True
    assert targets['ours GFLOPs vs base']['passed'] is True
    overhead = targets['ours extra inference time over cam']
    assert overhead['value'] == pytest.approx(2.0 / 1.5 - 1, abs=1e-4) and overhead['passed'] is False
    assert targets['ours text-tower calls during timed inference']['passed'] is True
    with pytest.raises(KeyError, match='baseline'):
        add_ratios(entries, 'nope')


def test_ratios_and_targets_with_zero_nan_none_and_exact_thresholds():
    nan = float('nan')
    entries = [dict(name='base', params_m=0.0, gflops=5.0, infer_img_per_s=2.5, train_step_s=nan,
                    peak_mem_mb=None),
               dict(name='ours', params_m=3.0, gflops=4.0, infer_img_per_s=3.0, train_step_s=2.0,
                    peak_mem_mb=100.0, text_encoder_calls_during_inference=1),
               dict(name='zero', params_m=0.0, gflops=0.0, infer_img_per_s=nan, train_step_s=None,
                    peak_mem_mb=0.0)]
    add_ratios(entries, 'base')
    base, ours, zero = entries
    # a base of 0, NaN or None gives no ratio; a value of 0 is a value (ratio 0), NaN or None is not
    assert [ours[f'{k}_ratio'] for k in RATIO_KEYS] == [None, 0.8, 1.2, None, None]
    assert [zero[f'{k}_ratio'] for k in RATIO_KEYS] == [None, 0.0, None, None, None]
    assert [base[f'{k}_ratio'] for k in RATIO_KEYS] == [None, 1.0, 1.0, None, None]
    json.dumps([{k: v for k, v in e.items() if k.endswith('_ratio')} for e in entries],
               allow_nan=False)  # no NaN ratio reaches benchmark.json

    # exactly at the thresholds: 1.2x the throughput and 0.8x the GFLOPs both pass
    targets = {t['target']: t for t in compute_targets(entries, 'base', 'ours', None)}
    assert targets['ours inference img/s vs base']['value'] == 1.2
    assert targets['ours inference img/s vs base']['passed'] is True
    assert targets['ours GFLOPs vs base']['value'] == 0.8
    assert targets['ours GFLOPs vs base']['passed'] is True
    assert targets['ours text-tower calls during timed inference']['passed'] is False  # 1 call
    # just beyond them: missed
    ours.update(infer_img_per_s=2.9975, gflops=4.0025)
    targets = {t['target']: t for t in compute_targets(entries, 'base', 'ours', None)}
    assert targets['ours inference img/s vs base']['passed'] is False
    assert targets['ours GFLOPs vs base']['passed'] is False
    # overhead over the CAM baseline: 0.15 passes, a little more does not; NaN / 0 / None are n/a
    for cam_ips, passed in ((1.15, True), (1.1525, False), (nan, None), (None, None), (0.0, True)):
        cam = dict(name='cam', infer_img_per_s=cam_ips)
        ours.update(infer_img_per_s=1.0)
        overhead = {t['target']: t for t in compute_targets(entries + [cam], 'base', 'ours', 'cam')}[
            'ours extra inference time over cam']
        assert overhead['passed'] is passed, cam_ips
    ours.update(infer_img_per_s=0.0)  # our throughput 0: no ratio of the CAM baseline to it
    overhead = compute_targets(entries + [dict(name='cam', infer_img_per_s=1.0)], 'base', 'ours',
                               'cam')[-2]
    assert overhead['target'] == 'ours extra inference time over cam' and overhead['passed'] is None
    # a missing value reads as n/a in benchmark.md, a measured 0 calls as met
    ours.update(text_encoder_calls_during_inference=0, infer_img_per_s=None, gflops=4.0)
    rows = compute_targets(entries, 'base', 'ours', None)
    assert [r['passed'] for r in rows] == [None, True, True]
    table = format_markdown(dict(input_size=(8, 8), device='cpu', threads=1, baseline='base',
                                 batch_size=1, train_batch_size=2, repeats=1, warmup=0,
                                 models=[], targets=rows))
    assert '| ours inference img/s vs base | - | >= 1.2 | n/a |' in table
    assert '| ours text-tower calls during timed inference | 0 | == 0 | met |' in table


def test_mean_std():
    assert mean_std([]) == (None, None)
    assert mean_std([3.0]) == (3.0, 0.0)
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))


def test_label_efficiency_aggregation_on_fixed_numbers():
    runs = [dict(variant='gt_masks', seed=s, stage2_miou=m) for s, m in zip((0, 1, 2), (60, 62, 64))]
    runs += [dict(variant='ours', seed=s, stage2_miou=m, pseudo_mask_miou=p)
             for s, m, p in zip((0, 1, 2), (51.0, 55.8, 57.6), (40.0, 42.0, 44.0))]
    runs += [dict(variant='handcrafted', seed=s, stage2_miou=m, pseudo_mask_miou=p)
             for s, m, p in zip((2, 0), (48.0, 45.0), (30.0, 31.0))]
    summary = aggregate_label_efficiency(runs, descriptions={'ours': 'ours (learned prompts)'})
    full = summary['full']
    assert full['seeds'] == [0, 1, 2]
    assert full['stage2_miou']['mean'] == 62.0 and full['stage2_miou']['std'] == 2.0
    ours, hand = summary['variants']
    assert ours['variant'] == 'ours' and ours['description'] == 'ours (learned prompts)'
    assert ours['stage2_miou']['mean'] == pytest.approx(54.8)
    assert ours['pseudo_mask_miou'] == dict(mean=42.0, std=2.0, values=[40.0, 42.0, 44.0])
    # % of full, paired by seed: 51/60, 55.8/62, 57.6/64 -> 85, 90, 90
    assert ours['pct_of_full']['values'] == [85.0, 90.0, 90.0]
    assert ours['pct_of_full']['mean'] == pytest.approx(88.333, abs=1e-3)
    assert ours['pct_of_full']['std'] == pytest.approx(math.sqrt(25 / 3), abs=1e-3)
    # sorted by seed, paired with the right seed of the upper bound: 45/60, 48/64
    assert hand['seeds'] == [0, 2]
    assert hand['pct_of_full']['values'] == [75.0, 75.0] and hand['pct_of_full']['std'] == 0.0
    text = format_label_efficiency_markdown(summary)
    assert '| 62.00 ± 2.00 | 100 | 0, 1, 2 |' in text
    assert '| ours (learned prompts) (`ours`) | 42.00 ± 2.00 | 54.80 ± 3.41 | 88.3 ± 2.9 | 0, 1, 2 |' \
        in text
    with pytest.raises(ValueError, match='repeated seeds'):
        aggregate_label_efficiency(runs + [dict(variant='ours', seed=0, stage2_miou=1.0)])


def test_label_efficiency_stage2_options_parse_and_merge():
    """The stage-2 overrides survive mmengine's --cfg-options parser (which cannot read "dict(...)")."""
    import argparse
    from pathlib import Path

    from mmengine.config import Config, DictAction

    from mmseg_clip_wsss.benchmark.label_efficiency import (DEFAULT_VARIANTS, VARIANTS,
                                                            stage2_options)
    repo = Path(__file__).resolve().parents[1]
    options = stage2_options(['randomness.seed=2'], '/runs/s2/ours/pseudo_masks',
                             '/runs/s2/ours/iter_400.pth')
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parsed = parser.parse_args(['--cfg-options', *options]).cfg_options
    cfg = Config(dict(randomness=dict(seed=0), model=dict(backbone=dict(init_cfg=None, depth=1)),
                      train_dataloader=dict(dataset=dict(data_prefix=dict(seg_map_path='x')))))
    cfg.merge_from_dict(parsed)
    assert cfg.randomness.seed == 2 and cfg.model.backbone.depth == 1
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', prefix='backbone.',
                                               checkpoint='/runs/s2/ours/iter_400.pth')
    assert cfg.train_dataloader.dataset.data_prefix.seg_map_path == '/runs/s2/ours/pseudo_masks'
    assert stage2_options([], '/gt', None) == [
        'train_dataloader.dataset.data_prefix.seg_map_path=/gt']
    assert set(DEFAULT_VARIANTS) <= set(VARIANTS)
    assert all(Path(repo, cfg_path).is_file() for cfg_path, _, _ in VARIANTS.values())
