"""Pseudo masks in parallel: post-processing workers (same PNGs, safe interruption, resume), the stage
timer, the class-row restriction of the CAM path, and ``tools/benchmark.py --pseudo-masks``."""
import glob
import os
import os.path as osp
import pickle
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.structures import SegDataSample
from PIL import Image
from torch import nn

from mmseg_clip_wsss.benchmark import pseudo_masks as pm_bench
from mmseg_clip_wsss.cam import (CAMProtocol, build_refiner, generate_pseudo_masks, is_valid_png,
                                 multi_scale_flip_cams)
from mmseg_clip_wsss.cam import generate as generate_module
from mmseg_clip_wsss.cam import postprocess
from mmseg_clip_wsss.cam.postprocess import MaskFinisher, MaskJob
from mmseg_clip_wsss.cam.pseudo_mask import cams_to_pseudo_mask, pseudo_mask_confidence
from mmseg_clip_wsss.cam.stage_timer import NULL_TIMER, StageTimer
from mmseg_clip_wsss.cam.worker_pool import MaskWriterPool, WorkerError
from mmseg_clip_wsss.cli.benchmark import main as benchmark_main
from mmseg_clip_wsss.cli.make_pseudo_masks import main as make_pseudo_masks_main
from mmseg_clip_wsss.datasets import write_palette_png
from mmseg_clip_wsss.models.utils import resize_rows
from mmseg_clip_wsss.registry import MODELS
from mmseg_clip_wsss.structures import set_image_labels

K = 5
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


@MODELS.register_module(name='PMSpeedStub', force=True)
class PMSpeedStub(BaseModel):
    """A tiny conv 'segmentor': stride-2 scores from ``_forward``, CAMs of the labelled classes."""

    def __init__(self, num_classes: int = K):
        super().__init__(data_preprocessor=SegDataPreProcessor(mean=MEAN, std=STD, bgr_to_rgb=True))
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, num_classes, 5, padding=2)
        self.num_classes = num_classes
        self.background_index = 0

    def _forward(self, inputs, data_samples=None):
        return F.avg_pool2d(self.conv(inputs), 2)  # (B, K, H/2, W/2)

    def compute_cams(self, inputs, image_labels):
        scores = F.interpolate(self._forward(inputs), size=inputs.shape[-2:], mode='bilinear',
                               align_corners=False)
        cams = scores.relu()
        cams = cams / cams.amax(dim=(2, 3), keepdim=True).clamp(min=1e-5)
        keep = (image_labels > 0).float()
        keep[:, 0] = 0
        return cams * keep[:, :, None, None]

    def forward(self, inputs, data_samples=None, mode='tensor'):
        raise NotImplementedError


def _image(h, w, seed):
    """(H, W, 3) uint8 RGB: flat-coloured blocks and noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32) + rng.random(3) * 255
    img[h // 4:h // 2, w // 5:w // 2] = rng.random(3) * 255
    img[h // 2:, w // 2:] = rng.random(3) * 255
    return (img + rng.normal(0, 10, img.shape)).clip(0, 255).astype(np.uint8)


def _batches(n=6, size=(20, 24)):
    """mmseg-style batches of one image each; every other mask at another size than the input."""
    for i in range(n):
        h, w = size
        sample = SegDataSample(metainfo=dict(img_path=f'im{i}.png', img_shape=(h, w),
                                             ori_shape=(h + 3 * (i % 2), w + 2 * (i % 2))))
        labels = np.zeros(K, np.float32)
        labels[[0, 1 + i % (K - 1), 1 + (i + 2) % (K - 1)]] = 1
        set_image_labels(sample, labels.tolist())
        bgr = torch.from_numpy(np.ascontiguousarray(_image(h, w, i)[..., ::-1])).permute(2, 0, 1)
        yield dict(inputs=[bgr.contiguous()], data_samples=[sample])


def _files(out_dir):
    """{relative path: bytes} of every PNG under ``out_dir``."""
    out = {}
    for path in sorted(glob.glob(osp.join(out_dir, '**', '*.png'), recursive=True)):
        with open(path, 'rb') as f:
            out[osp.relpath(path, out_dir)] = f.read()
    return out


PROTOCOLS = dict(
    none=dict(scales=(1.0, 0.5), refine='none', bg_threshold=0.3),
    par=dict(scales=(1.0, 0.5), refine=dict(type='par', num_iters=3), bg_threshold=0.3),
    crf=dict(scales=(1.0, ), flip=False, bg_threshold=0.3,
             refine=dict(type='crf', num_iters=5, pos_sxy=1, bi_sxy=20, bi_srgb=5)),
)


def _run(out_dir, protocol, workers, batches=None, **kwargs):
    return generate_pseudo_masks(PMSpeedStub().eval(), batches or _batches(), str(out_dir),
                                 CAMProtocol.from_cfg(PROTOCOLS[protocol]), show_progress=False,
                                 workers=workers, **kwargs)


# --------------------------------------------------------------------------- workers
@pytest.mark.parametrize('protocol', sorted(PROTOCOLS))
def test_workers_write_the_same_pngs_as_one_process(tmp_path, protocol):
    results = {w: _run(tmp_path / f'w{w}', protocol, w) for w in (0, 1, 2)}
    reference = _files(tmp_path / 'w0')
    assert len(reference) == 12  # 6 masks + 6 confidence maps
    masks = [np.array(Image.open(tmp_path / 'w0' / f'im{i}.png')) for i in range(6)]
    assert all(len(np.unique(m)) > 1 for m in masks)  # not trivial masks
    assert masks[1].shape == (23, 26)  # back at the original size
    for w in (1, 2):
        assert results[w]['written'] == 6
        assert _files(tmp_path / f'w{w}') == reference, (protocol, w)


def _die_while_writing(name):
    """A write_palette_png whose worker process dies half-way through the file of ``name``: a
    truncated temporary file is left, as a kill in the middle of writing leaves it."""
    original = postprocess.write_palette_png

    def write(path, mask, palette=None):
        if osp.basename(path) == name:
            tmp = osp.join(osp.dirname(path), f'.{name}.dead.tmp')
            with open(tmp, 'wb') as f:
                f.write(b'\x89PNG\r\n\x1a\n half')
            os._exit(1)
        return original(path, mask, palette)

    return write


def test_a_killed_worker_leaves_no_half_written_png_and_the_rerun_resumes(tmp_path, monkeypatch):
    clean = tmp_path / 'clean'
    _run(clean, 'par', 0)
    out = tmp_path / 'out'
    monkeypatch.setattr(postprocess, 'write_palette_png', _die_while_writing('im3.png'))
    with pytest.raises(WorkerError, match=r'worker process died .* run again to resume'):
        _run(out, 'par', 2)
    monkeypatch.undo()
    assert osp.isfile(out / '.im3.png.dead.tmp')  # what the dying worker left
    assert not osp.exists(out / 'im3.png')
    for path in glob.glob(str(out / '**' / '*.png'), recursive=True):
        assert is_valid_png(path, expected_mode=None), path  # every PNG there is complete
    res = _run(out, 'par', 2)
    assert res['written'] + res['skipped'] == 6 and res['written'] >= 1
    assert not glob.glob(str(out / '**' / '*.tmp'), recursive=True)  # leftovers removed
    assert _files(out) == _files(clean)


def test_ctrl_c_in_the_model_process_lets_the_running_jobs_finish(tmp_path):
    def interrupted():
        for i, batch in enumerate(_batches()):
            if i == 3:
                raise KeyboardInterrupt
            yield batch

    out = tmp_path / 'out'
    with pytest.raises(KeyboardInterrupt):
        _run(out, 'crf', 2, batches=interrupted())
    done = sorted(os.listdir(out / 'confidence'))
    assert done and set(done) <= {'im0.png', 'im1.png', 'im2.png'}
    assert not glob.glob(str(out / '**' / '*.tmp'), recursive=True)
    for name in done:  # a mask is only there with its confidence map, both complete
        assert is_valid_png(str(out / 'confidence' / name), expected_mode='L')
        assert not osp.exists(out / name) or is_valid_png(str(out / name))
    res = _run(out, 'crf', 2)
    assert res['written'] + res['skipped'] == 6 and res['skipped'] >= 1
    _run(tmp_path / 'clean', 'crf', 0)
    assert _files(out) == _files(tmp_path / 'clean')


def test_a_failing_job_names_its_mask_and_bad_worker_counts_are_refused(tmp_path, monkeypatch):
    def broken(path, mask, palette=None):
        raise OSError('disk full')

    monkeypatch.setattr(postprocess, 'write_palette_png', broken)
    with pytest.raises(WorkerError, match=r'finishing .*im0\.png failed in a worker process: '
                                          r'OSError: disk full'):
        _run(tmp_path / 'a', 'none', 1)
    with pytest.raises(OSError, match='disk full'):  # in one process: the error itself
        _run(tmp_path / 'b', 'none', 0)
    with pytest.raises(ValueError, match='workers must be >= 0'):
        MaskWriterPool(None, workers=-1)


def test_a_built_crf_pickles_only_with_its_config():
    """Where workers are spawned (no fork), the finisher is pickled: a built dense CRF holds the
    pydensecrf module and is built again from its config on the other side."""
    refiner = build_refiner('crf')
    with pytest.raises(TypeError, match=r"cam_cfg.refine as 'crf'"):
        pickle.dumps(MaskFinisher(CAMProtocol(), 0, refiner=refiner))
    again = pickle.loads(pickle.dumps(MaskFinisher(CAMProtocol(), 0, refiner=refiner,
                                                   refine_cfg='crf')))
    assert again._refiner is None and type(again.refiner).__name__ == 'DenseCRFRefiner'


# --------------------------------------------------------------------------- stage timer
def test_stage_timer_times_are_exclusive_and_patches_are_undone():
    timer = StageTimer()
    clock = iter([0.0, 1.0, 4.0, 10.0])  # outer opens, inner opens, inner closes, outer closes
    timer._now = lambda: next(clock)
    with timer.stage('outer'):
        with timer.stage('inner'):
            pass
    assert timer.seconds == {'inner': 3.0, 'outer': 7.0}  # 10 s in all, 3 of them inner
    timer.count_images(2)
    assert timer.per_image() == {'inner': 1.5, 'outer': 3.5}

    timer = StageTimer()
    model = PMSpeedStub()
    module = types.ModuleType('probe')
    module.step = lambda x: x + 1
    with timer.patch(model, '_forward', 'forward') as patched, \
            timer.patch(module, 'step', 'step') as patched_fn, \
            timer.patch(model, 'no_such_method', 'x') as missing:
        assert patched and patched_fn and not missing
        model._forward(torch.zeros(1, 3, 4, 4))
        assert module.step(1) == 2
    assert set(timer.seconds) == {'forward', 'step'}
    assert '_forward' not in vars(model) and module.step(1) == 2  # restored
    with NULL_TIMER.stage('x'):
        NULL_TIMER.add('y', 1.0)
    assert NULL_TIMER.seconds == {}


# --------------------------------------------------------------------------- CAM rows
def test_resize_rows_gives_every_row_what_it_gets_among_other_rows():
    torch.manual_seed(0)
    maps = torch.rand(2, 6, 24, 32)  # CAM-sized maps (the claim of resize_rows)
    every = F.interpolate(maps, size=(96, 128), mode='bilinear', align_corners=False)
    for rows in ([0], [1, 4], [0, 2, 5], [0, 1, 2, 3]):
        assert torch.equal(resize_rows(maps[:, rows], (96, 128)), every[:, rows]), rows
    # (whether torch's own 3-channel path rounds differently depends on the CPU's vector
    # instructions, so only the claim of resize_rows is asserted here)
    assert resize_rows(maps[:, :0], (96, 128)).shape == (2, 0, 96, 128)


def test_multi_scale_flip_cams_of_the_labelled_rows_equal_all_rows():
    model = PMSpeedStub().eval()
    torch.manual_seed(1)
    x = torch.randn(2, 3, 20, 28)
    labels = torch.tensor([[1, 1, 0, 0, 1], [1, 0, 0, 1, 1]], dtype=torch.float32)
    cams = multi_scale_flip_cams(model, x, labels, scales=(1.0, 0.5, 1.5), flip=True)
    total = 0  # the merge over all K rows, written out
    for scale in (1.0, 0.5, 1.5):
        size = (round(20 * scale), round(28 * scale))
        xs = F.interpolate(x, size=size, mode='bilinear', align_corners=False) if scale != 1 else x
        both = model.compute_cams(torch.cat([xs, xs.flip(-1)]), torch.cat([labels, labels]))
        both = F.interpolate(both, size=(20, 28), mode='bilinear', align_corners=False)
        total = total + both[:2] + both[2:].flip(-1)
    reference = total.clamp(min=0)
    reference = reference / reference.amax(dim=(2, 3), keepdim=True).clamp(min=1e-5)
    reference = reference * labels[:, :, None, None]
    assert cams.shape == (2, K, 20, 28) and torch.all(cams[:, 2] == 0)
    torch.testing.assert_close(cams, reference, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- tools
def _tool_config(tmp_path, refine):
    """Images on disk, a PMSpeedStub checkpoint and a config whose val split has image labels."""
    root = tmp_path / 'data'
    os.makedirs(root / 'img')
    os.makedirs(root / 'ann')
    labels = {}
    for i in range(5):
        Image.fromarray(_image(20 + 4 * (i % 2), 24, i)).save(root / 'img' / f'im{i}.png')
        write_palette_png(str(root / 'ann' / f'im{i}.png'), np.zeros((20 + 4 * (i % 2), 24), np.uint8))
        lab = np.zeros(K)
        lab[[0, 1 + i % (K - 1), 1 + (i + 1) % (K - 1)]] = 1
        labels[f'im{i}'] = lab.tolist()
    ckpt = tmp_path / 'stub.pth'
    torch.save(dict(state_dict=PMSpeedStub().state_dict(), meta=dict()), ckpt)
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f"""
default_scope = 'mmseg'
model = dict(type='PMSpeedStub')
val_dataloader = dict(batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='BaseSegDataset', data_root={str(root)!r}, img_suffix='.png',
                 seg_map_suffix='.png', data_prefix=dict(img_path='img', seg_map_path='ann'),
                 metainfo=dict(classes=('background', 'a', 'b', 'c', 'd')), pipeline=[]))
cam_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs'),
                dict(type='CAMTestSetImageLabels', labels={labels!r})]
cam_cfg = dict(scales=(1.0, 0.5), refine={refine!r}, bg_threshold=0.3)
""")
    return str(cfg), str(ckpt)


def test_make_pseudo_masks_with_workers_writes_what_one_process_writes(tmp_path):
    cfg, ckpt = _tool_config(tmp_path, dict(type='crf', num_iters=3, bi_sxy=20))
    common = [cfg, ckpt, '--split', 'val', '--no-progress', '--device', 'cpu']
    one = make_pseudo_masks_main([*common, '--out-dir', str(tmp_path / 'one')])
    two = make_pseudo_masks_main([*common, '--out-dir', str(tmp_path / 'two'), '--workers', '2',
                                  '--loader-workers', '1'])
    assert one['written'] == two['written'] == 5
    assert len(_files(tmp_path / 'one')) == 10
    assert _files(tmp_path / 'two') == _files(tmp_path / 'one')
    # the worker count decides nothing about the masks: a run with another count resumes
    again = make_pseudo_masks_main([*common, '--out-dir', str(tmp_path / 'two'), '--workers', '1'])
    assert again['written'] == 0 and again['skipped'] == 5
    with pytest.raises(SystemExit) as exc:  # refused by argparse (the message: test_tool_inputs.py)
        make_pseudo_masks_main([*common, '--out-dir', str(tmp_path / 'bad'), '--workers', '-1'])
    assert exc.value.code == 2 and not osp.exists(tmp_path / 'bad')


def test_benchmark_pseudo_masks_reports_every_stage_against_the_floor(tmp_path):
    cfg, _ = _tool_config(tmp_path, dict(type='par', num_iters=2))
    out = tmp_path / 'bench'
    result = benchmark_main(['--pseudo-masks', '--configs', f'stub={cfg}', '--input-size', '24', '32',
                             '--pseudo-mask-images', '3', '--pseudo-mask-repeats', '1', '--workers',
                             '2', '--crf-images', '3', '--crf-size', '24', '32', '--out-dir', str(out)])
    entry, = result['models']
    assert entry['name'] == 'stub' and entry['scales'] == [1.0, 0.5] and entry['refine'] == 'par'
    stages = entry['stages_s_per_img']
    assert {'decode', 'preprocess', 'forward', 'cam', 'refine', 'mask', 'write'} <= set(stages)
    assert all(v >= 0 for v in stages.values()) and entry['floor_s_per_img'] > 0
    total = sum(stages.values()) + entry['other_s_per_img']
    assert total == pytest.approx(entry['one_process_s_per_img'], rel=0.01, abs=2e-5)
    assert entry['one_process_ratio'] == pytest.approx(
        entry['one_process_s_per_img'] / entry['floor_s_per_img'], rel=0.01)
    assert entry['same_pngs'] is True and len(entry['times_s']['floor']) == 1
    beside = entry['workers_run_stages_s_per_img']  # the run with 2 workers: who did what
    assert {'worker cam', 'worker refine', 'worker write', 'decode', 'cam'} <= set(beside)
    assert 'refine' not in beside and beside['start workers (once)'] > 0
    crf = result['crf_workers']
    assert set(crf['img_per_s']) == {'1', '2'} and crf['same_pngs'] is True
    assert crf['speedup'] == pytest.approx(crf['img_per_s']['2'] / crf['img_per_s']['1'], rel=0.01)
    text = (out / 'pseudo_masks.md').read_text()
    assert '| `stub` | 24x32 | 3 | 1, 0.5 | yes | par |' in text and '| workers | img/s |' in text
    assert os.path.isfile(out / 'pseudo_masks.json')


def test_a_model_with_a_reference_reports_the_pixels_labelled_as_there(tmp_path):
    """``PseudoMaskSpec.reference``: the masks are compared with those of the named model of the
    same run (the same generated images); the floor table names it. A changed protocol (another
    refinement) shows as less than full agreement."""
    from mmseg_clip_wsss.benchmark.report import _floor_table
    cfg, _ = _tool_config(tmp_path, dict(type='par', num_iters=2))
    specs = [pm_bench.PseudoMaskSpec('a', str(cfg), (24, 32), images=3),
             pm_bench.PseudoMaskSpec('b', str(cfg), (24, 32), images=3, reference='a'),
             pm_bench.PseudoMaskSpec('c', str(cfg), (24, 32), images=3, reference='a',
                                     cfg_options={'cam_cfg.refine': None})]
    entries = pm_bench.measure_pseudo_masks(specs, str(tmp_path / 'bench'), repeats=1, say=lambda _: None)
    assert 'reference' not in entries[0]
    assert entries[1]['reference'] == 'a' and entries[1]['reference_mask_agreement'] == 1.0
    assert entries[2]['reference_mask_agreement'] < 1.0
    table = _floor_table(dict(workers=1, models=entries))
    assert 'pixels as in the reference masks' in table and '100.00% of `a`' in table


def test_the_floor_is_the_forward_passes_of_the_protocol():
    model = PMSpeedStub().eval()
    calls = []
    model._forward = lambda x: calls.append(tuple(x.shape))
    protocol = CAMProtocol(scales=(1.0, 0.5, 1.5), flip=True)
    pm_bench.floor_seconds(model, [torch.zeros(1, 3, 20, 24)], protocol)
    assert calls == [(2, 3, 20, 24), (2, 3, 10, 12), (2, 3, 30, 36)]  # every scale, flip batched in
    tower = types.SimpleNamespace(encode_image='the tower to its image embedding')
    assert pm_bench.floor_forward(types.SimpleNamespace(training_free=True, backbone=tower)) == tower.encode_image


def _tiny_segmentor():
    """A WSSSEncoderDecoder (tiny Swin, plain CAM classifier) on the CPU, eval mode."""
    init_default_scope('mmseg')
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='WSSSEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=MEAN, std=STD, bgr_to_rgb=True),
        backbone=dict(type='SwinTransformer', pretrain_img_size=64, embed_dims=16, patch_size=4,
                      window_size=4, mlp_ratio=2, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                      strides=(4, 2, 2, 2), out_indices=(0, 1, 2, 3), drop_path_rate=0.0),
        decode_head=dict(type='CAMClassifierHead', in_channels=128, channels=16, num_classes=K,
                         in_index=3), train_cfg=dict(), test_cfg=dict(mode='whole'))).eval()


def test_a_cpu_segmentor_runs_only_its_forward_passes_and_the_cams_stay_the_same(tmp_path):
    model = _tiny_segmentor()
    assert generate_module._defers_cams(model)
    protocol = CAMProtocol(scales=(1.0, 0.5, 1.5), flip=True, refine='none', bg_threshold=0.3)
    batch = next(_batches(1, size=(64, 96)))
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        job, = generate_module.mask_jobs_of_batch(model, data['inputs'], data['data_samples'],
                                                  protocol, None, 0, ['a.png'])
        direct = multi_scale_flip_cams(model, data['inputs'], torch.from_numpy(job.labels)[None],
                                       scales=protocol.scales, flip=True)
    assert job.scores is None and [s.shape[0] for s in job.scale_scores] == [2, 2, 2]
    assert job.scale_sizes == [(64, 96), (32, 48), (96, 144)]
    finisher = generate_module._finisher(model, protocol, None, 0)
    cams = finisher.cams(job)
    assert torch.equal(cams, direct[0, list(job.channels)])  # bit for bit the one-batch CAMs
    assert cams[1:].amax() > 0  # labelled classes have CAMs
    for w in (0, 2):
        generate_pseudo_masks(model, _batches(4, size=(64, 96)), str(tmp_path / f'w{w}'), protocol,
                              show_progress=False, workers=w)
    assert len(_files(tmp_path / 'w0')) == 8 and _files(tmp_path / 'w2') == _files(tmp_path / 'w0')


def test_bf16_autocast_is_a_protocol_field_and_changes_few_pixels(tmp_path):
    model = _tiny_segmentor()
    masks = {}
    for amp in (None, 'bf16'):
        protocol = CAMProtocol(scales=(1.0, 0.5), flip=True, refine='none', bg_threshold=0.3, amp=amp)
        assert protocol.record()['amp'] == amp  # resuming fp32 masks with bf16 is refused
        generate_pseudo_masks(model, _batches(3, size=(64, 96)), str(tmp_path / str(amp)), protocol,
                              show_progress=False)
        masks[amp] = np.stack([np.array(Image.open(tmp_path / str(amp) / f'im{i}.png'))
                               for i in (0, 2)])  # the masks at the input size
    agreement = (masks[None] == masks['bf16']).mean()
    assert 0.9 < agreement, agreement
    with pytest.raises(ValueError, match=r"amp='fp16' must be one of \(None, 'bf16'\)"):
        CAMProtocol(amp='fp16')


@pytest.mark.parametrize('rule', [dict(bg_mode='threshold', ignore_band=(0.3, 0.5)),
                                  dict(bg_mode='complement', bg_power=2.0),
                                  dict(bg_mode='prompt', ignore_margin=0.05),
                                  dict(bg_mode='threshold', background_index=None)])
def test_masks_of_the_present_rows_are_those_of_all_rows(rule):
    """The finisher decides the labels on the rows of the present classes only: the mask and the
    confidence are those that all K rows give."""
    rule = dict(rule)
    background_index = rule.pop('background_index', 0)
    protocol = CAMProtocol(bg_threshold=0.4, **rule)
    finisher = MaskFinisher(protocol, background_index)
    gen = torch.Generator().manual_seed(0)
    labels = np.zeros(7, np.float32)
    labels[[2, 5]] = 1
    channels = (2, 5) if background_index is None else (0, 2, 5)
    rows = torch.rand(len(channels), 12, 10, generator=gen)
    job = MaskJob('unused.png', rows.numpy(), channels, labels, (12, 10))
    mask, confidence = finisher.masks(job)
    full = torch.zeros(1, 7, 12, 10)
    full[0, list(channels)] = rows
    expected = cams_to_pseudo_mask(full, torch.from_numpy(labels)[None], background_index=background_index,
                                   bg_threshold=0.4, **rule)
    assert set(expected.unique().tolist()) - {255} == set(channels) or rule.get('ignore_band')
    assert torch.equal(mask, expected[0])
    torch.testing.assert_close(confidence, pseudo_mask_confidence(
        full, torch.from_numpy(labels)[None], expected, bg_mode=protocol.bg_mode, bg_threshold=0.4,
        background_index=background_index, bg_power=protocol.bg_power)[0])


@pytest.mark.parametrize('argv', [['--crf-only'], ['--pseudo-masks', '--crf-only', '--no-crf'],
                                  ['--pseudo-masks', '--crf-only', '--crf-images', '0'],
                                  ['--pseudo-masks', '--crf-only', '--crf-size', '-5', '10']])
def test_benchmark_refuses_pseudo_mask_options_that_cannot_hold(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main(argv)
    assert exit_info.value.code == 2 and '--' in capsys.readouterr().err
