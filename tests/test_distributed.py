"""Distributed training and pseudo-mask generation on CPU (gloo, 2 processes via torchrun):

- ``tools/dist_train.sh`` trains the tiny demo model; afterwards every rank holds the same memory
  bank, prompt parameters and text embeddings (the ranks saw different images);
- the memory update of ranks with different batch sizes equals the single-process update on all
  their regions; the image-text loss of 2 ranks x batch 2 is that of 1 rank x batch 4;
- ``tools/dist_make_pseudo_masks.sh`` shards the images over the ranks: each PNG is written once,
  existing valid PNGs are kept, leftovers of a killed run are removed;
- ``tools/slurm_train.sh`` / ``slurm_test.sh`` hand srun the right job.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.cam import is_valid_png
from mmseg_clip_wsss.cam.run import PROTOCOL_FILE, build_cam_dataloader_cfg
from mmseg_clip_wsss.cli.make_pseudo_masks import parse_args, protocol_from_args
from mmseg_clip_wsss.cam.evaluate import write_metrics_json
from mmseg_clip_wsss.datasets import (CONFIDENCE_DIR, confidence_path, write_confidence_png,
                                      write_palette_png)
from mmseg_clip_wsss.datasets.synthetic import make_demo_data
from mmseg_clip_wsss.engine import dist as wsss_dist
from mmseg_clip_wsss.models.losses import ImageTextContrastiveLoss
from mmseg_clip_wsss.models.memory import ClassMemoryBank

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_helpers import (REPO, cfg_options, run_env, write_config,  # noqa: E402
                         write_probe_module)

NUM_TRAIN = 8


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory, tiny_clip):
    """Data, probe hooks and a 2-process training run of 3 iterations (shared by the tests)."""
    tmp = tmp_path_factory.mktemp('dist')
    data_root = tmp / 'demo'
    make_demo_data(str(data_root), seed=0, num_train=NUM_TRAIN, num_val=4, size=64,
                   show_progress=False)
    probe = write_probe_module(tmp / 'probe')
    dumps = tmp / 'dumps'
    config = write_config(tmp / 'dist_cfg.py',
                          [f'dict(type="DumpRankStateHook", out_dir={str(dumps)!r})'])
    work_dir = tmp / 'work'
    cmd = ['bash', str(REPO / 'tools' / 'dist_train.sh'), str(config), '2', '--work-dir', str(work_dir),
           *cfg_options(data_root, tiny_clip['pretrained'], max_iters=3, interval=3)]
    result = subprocess.run(cmd, cwd=tmp, env=run_env(probe), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return dict(tmp=tmp, data_root=data_root, probe=probe, config=config, work_dir=work_dir,
                dumps=dumps, log=result.stdout + result.stderr, clip=tiny_clip['pretrained'])


def test_dist_train_keeps_memory_bank_and_prompts_equal_across_ranks(tiny_run):
    assert "'gloo'" in tiny_run['log']  # the CPU run switched the nccl default to gloo
    r0 = torch.load(tiny_run['dumps'] / 'rank0.pt', weights_only=False)
    r1 = torch.load(tiny_run['dumps'] / 'rank1.pt', weights_only=False)
    assert r0['iters'] == r1['iters'] == 3
    # the ranks trained on different images ...
    for batch0, batch1 in zip(r0['seen'], r1['seen']):
        assert not set(batch0) & set(batch1)
    # ... yet hold the same memory bank (every rank updates it with the regions of both)
    assert r0['memory_initialized'].any()
    assert torch.equal(r0['memory_initialized'], r1['memory_initialized'])
    assert torch.equal(r0['memory_bank'], r1['memory_bank'])
    rows = r0['memory_bank'][r0['memory_initialized']]
    assert torch.allclose(rows.norm(dim=1), torch.ones(len(rows)), atol=1e-5)
    # prompt parameters (DDP-synchronised gradients), their text embeddings and all weights
    assert set(r0['prompt']) == set(r1['prompt']) and r0['prompt']
    for name in r0['prompt']:
        assert torch.equal(r0['prompt'][name], r1['prompt'][name]), name
    assert torch.equal(r0['text_embeds'], r1['text_embeds'])
    for name in r0['params']:
        assert torch.equal(r0['params'][name], r1['params'][name]), name
    # rank 0's checkpoint holds that bank
    ckpt = torch.load(tiny_run['work_dir'] / 'iter_3.pth', weights_only=False)
    assert torch.equal(ckpt['state_dict']['neck.memory_bank.prototypes'], r0['memory_bank'])
    assert len(ckpt['rng_state']['states']) == 2  # the random states of both ranks


GATHER_SCRIPT = '''
import sys
import torch
import torch.distributed as dist
from mmseg_clip_wsss.models.memory import ClassMemoryBank

dist.init_process_group('gloo')
rank = dist.get_rank()
torch.manual_seed(0)
embeds = torch.randn(3, 4, 8)  # (B, K, C): images 0 | 1, 2 split over the ranks
use = torch.tensor([[0, 1, 0, 1], [0, 0, 1, 1], [0, 1, 1, 0]]).bool()  # present, background out
mine = slice(0, 1) if rank == 0 else slice(1, 3)
bank = ClassMemoryBank(num_classes=4, channels=8, momentum=0.5).train()
bank.update(embeds[mine], use[mine])
bank.update(embeds[mine].flip(0) * 2, use[mine])
torch.save(dict(bank=bank.prototypes, init=bank.initialized), sys.argv[1] + f'/rank{rank}.pt')
dist.destroy_process_group()
'''


def run_on_ranks(script_text: str, tmp_path: Path, result_name: str, ranks: int = 2):
    """Run a script under torchrun with ``ranks`` gloo processes; each saves
    ``<tmp_path>/<result_name><rank>.pt``, which are returned in rank order."""
    script = tmp_path / f'{result_name}.py'
    script.write_text(script_text)
    env = run_env()
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={ranks}',
           f'--master_port={env["PORT"]}', str(script), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return tuple(torch.load(tmp_path / f'{result_name}{r}.pt') for r in range(ranks))


GATHER_ROWS_SCRIPT = '''
import sys
import torch
import torch.distributed as dist
from mmseg_clip_wsss.engine.dist import all_gather_rows

dist.init_process_group('gloo')
rank = dist.get_rank()
counts = [2, 0, 3]  # rank 1 holds no row; ranks 0 and 1 are padded to 3 rows for the gather
rows = torch.tensor([[10.0 * rank + i] * 2 for i in range(counts[rank])]).reshape(-1, 2)  # (N_r, 2)
plain = all_gather_rows(rows)
mine = rows.clone().requires_grad_()
gathered = all_gather_rows(mine, differentiable=True)
(gathered * torch.arange(1.0, len(gathered) + 1)[:, None]).sum().backward()
torch.save(dict(plain=plain, gathered=gathered.detach(), grad=mine.grad),
           sys.argv[1] + f'/rows{rank}.pt')
dist.destroy_process_group()
'''


def test_all_gather_rows_concatenates_ranks_in_order_without_padding(tmp_path):
    results = run_on_ranks(GATHER_ROWS_SCRIPT, tmp_path, 'rows', ranks=3)
    expected = torch.tensor([[0., 0.], [1., 1.], [20., 20.], [21., 21.], [22., 22.]])
    for rank, result in enumerate(results):
        assert torch.equal(result['plain'], expected), rank
        assert torch.equal(result['gathered'], expected), rank
    # differentiable: the gradient of row j of the gathered tensor, (j + 1), summed over the 3 ranks
    # (each computes the same loss), reaches the rank that holds row j
    assert torch.equal(results[0]['grad'], torch.tensor([[3., 3.], [6., 6.]]))
    assert results[1]['grad'] is None or results[1]['grad'].numel() == 0
    assert torch.equal(results[2]['grad'], torch.tensor([[9., 9.], [12., 12.], [15., 15.]]))
    rows = torch.randn(4, 2)
    assert wsss_dist.all_gather_rows(rows) is rows  # single process: a no-op


def test_memory_update_gathers_variable_batch_sizes(tmp_path):
    r0, r1 = run_on_ranks(GATHER_SCRIPT, tmp_path, 'rank')
    # one process updating with all three images, twice
    torch.manual_seed(0)
    embeds = torch.randn(3, 4, 8)
    use = torch.tensor([[0, 1, 0, 1], [0, 0, 1, 1], [0, 1, 1, 0]]).bool()
    single = ClassMemoryBank(num_classes=4, channels=8, momentum=0.5).train()
    single.update(embeds, use)
    single.update(torch.cat([embeds[:1].flip(0), embeds[1:].flip(0)]) * 2, use)
    assert torch.equal(r0['bank'], r1['bank']) and torch.equal(r0['init'], r1['init'])
    assert r0['init'].tolist() == [False, True, True, True]
    assert torch.allclose(r0['bank'], single.prototypes, atol=1e-6)
    assert wsss_dist.all_gather_rows(embeds) is embeds  # single process: a no-op


ITC_SCRIPT = '''
import sys
import torch
import torch.distributed as dist
from mmseg_clip_wsss.models.losses import ImageTextContrastiveLoss

dist.init_process_group('gloo')
rank = dist.get_rank()
torch.manual_seed(0)
images, text = torch.randn(4, 8), torch.randn(5, 8)  # images 0, 1 | 2, 3 on the two ranks
labels = torch.tensor([[1., 1, 0, 0, 0], [1, 0, 1, 0, 0], [1, 1, 0, 1, 0], [1, 0, 0, 0, 1]])
mine = images[2 * rank:2 * rank + 2].clone().requires_grad_()
loss = ImageTextContrastiveLoss(temperature=0.1)(mine, text, labels[2 * rank:2 * rank + 2])
loss.backward()
torch.save(dict(loss=loss.detach(), grad=mine.grad), sys.argv[1] + f'/itc{rank}.pt')
dist.destroy_process_group()
'''


def test_image_text_loss_of_2_ranks_x_batch_2_is_that_of_1_rank_x_batch_4(tmp_path):
    """The image embeddings of every rank are gathered: each rank's loss is the loss of the whole
    batch, and its gradient (summed over the ranks by the gather, averaged by DDP) is that of one
    process holding the whole batch -- the text -> image half no longer degenerates per rank."""
    r0, r1 = run_on_ranks(ITC_SCRIPT, tmp_path, 'itc')
    torch.manual_seed(0)
    images, text = torch.randn(4, 8), torch.randn(5, 8)
    labels = torch.tensor([[1., 1, 0, 0, 0], [1, 0, 1, 0, 0], [1, 1, 0, 1, 0], [1, 0, 0, 0, 1]])
    images.requires_grad_()
    loss = ImageTextContrastiveLoss(temperature=0.1)(images, text, labels)
    loss.backward()
    assert torch.allclose(r0['loss'], loss.detach()) and torch.allclose(r1['loss'], loss.detach())
    ddp_grad = torch.cat([r0['grad'], r1['grad']]) / 2  # DDP averages the ranks' gradients
    assert torch.allclose(ddp_grad, images.grad, atol=1e-6)


def test_cam_dataloader_shards_each_image_to_one_rank(tiny_run, monkeypatch):
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(tiny_run['config']), import_custom_modules=False)
    cfg.cam_dataloader.dataset.data_root = str(tiny_run['data_root'])
    import mmengine.dataset.sampler as sampler_mod
    shards = []
    for rank in range(3):  # 8 images over 3 ranks: 3 + 3 + 2, no padding
        monkeypatch.setattr(sampler_mod, 'get_dist_info', lambda r=rank: (r, 3))
        loader = Runner.build_dataloader(build_cam_dataloader_cfg(cfg, 'train'))
        shards.append(list(iter(loader.sampler)))
    assert sorted(i for shard in shards for i in shard) == list(range(NUM_TRAIN))
    assert [len(s) for s in shards] == [3, 3, 2]


def test_dist_pseudo_masks_write_each_file_once_and_resume(tiny_run):
    out = tiny_run['tmp'] / 'pseudo'
    out.mkdir()
    ids = sorted(p.stem for p in (tiny_run['data_root'] / 'JPEGImages').glob('train_*.jpg'))
    assert len(ids) == NUM_TRAIN
    # a previous, killed run: two valid masks (with their confidence maps), one cut short, one
    # temporary file
    for name in ids[:2]:
        write_palette_png(str(out / f'{name}.png'), np.zeros((64, 64), np.uint8))
        write_confidence_png(confidence_path(str(out / f'{name}.png')), np.full((64, 64), 0.5))
    stamps = {name: os.stat(out / f'{name}.png').st_mtime_ns for name in ids[:2]}
    write_palette_png(str(out / f'{ids[2]}.png'), np.zeros((64, 64), np.uint8))
    with open(out / f'{ids[2]}.png', 'r+b') as f:
        f.truncate(30)
    (out / f'.{ids[3]}.png.x1y2.tmp').write_bytes(b'half')
    args = [str(tiny_run['config']), str(tiny_run['work_dir'] / 'iter_3.pth'), '--out-dir', str(out),
            '--eval', '--scales', '1.0', '--no-flip', '--refine', 'none', '--no-progress',
            *cfg_options(tiny_run['data_root'], tiny_run['clip'])]
    # ... which wrote its protocol record first, as every run does
    parsed = parse_args(args)
    cfg = Config.fromfile(parsed.config, import_custom_modules=False)
    cfg.merge_from_dict(parsed.cfg_options)
    record = dict(checkpoint=osp.abspath(parsed.checkpoint), split='train',
                  **protocol_from_args(cfg, parsed).record())
    write_metrics_json(str(out / PROTOCOL_FILE), record)

    env = run_env(tiny_run['probe'])
    cmd = ['bash', str(REPO / 'tools' / 'dist_make_pseudo_masks.sh'), *args[:2], '2', *args[2:]]
    result = subprocess.run(cmd, cwd=tiny_run['tmp'], env=env, capture_output=True, text=True,
                            timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert 'pseudo masks: 6 written (per rank: 3, 3), 2 already there' in log
    expected = [f'{i}.png' for i in ids] + ['metrics.json', 'protocol.json', CONFIDENCE_DIR]
    assert sorted(os.listdir(out)) == sorted(expected)
    for name in ids:
        assert is_valid_png(str(out / f'{name}.png'), (64, 64)), name
    for name, stamp in stamps.items():  # kept, not rewritten
        assert os.stat(out / f'{name}.png').st_mtime_ns == stamp
    import json
    assert json.loads((out / 'metrics.json').read_text())['num_images'] == NUM_TRAIN


@pytest.mark.parametrize('checkpoint', ['none', ''])
def test_dist_pseudo_mask_script_runs_a_training_free_config_without_checkpoint(tmp_path, checkpoint):
    """CHECKPOINT ``none`` (or "") hands make_pseudo_masks.py no checkpoint argument."""
    python = tmp_path / 'python'  # records the command line instead of starting torchrun
    python.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$RECORD"\n')
    python.chmod(0o755)
    record = tmp_path / 'args.txt'
    env = dict(os.environ, PYTHON=str(python), RECORD=str(record))
    cmd = ['bash', str(REPO / 'tools' / 'dist_make_pseudo_masks.sh'), 'cfg.py', checkpoint, '2',
           '--out-dir', 'D']
    subprocess.run(cmd, env=env, check=True, timeout=60)
    args = record.read_text().splitlines()
    script = args.index(str(REPO / 'tools' / 'make_pseudo_masks.py'))
    assert args[script + 1:] == ['cfg.py', '--launcher', 'pytorch', '--out-dir', 'D']
    assert '--nproc_per_node=2' in args


def test_slurm_scripts_hand_srun_the_job(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    record = tmp_path / 'srun_args.txt'
    fake = bin_dir / 'srun'
    fake.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {record}\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}', GPUS='8',
               GPUS_PER_NODE='4', SRUN_ARGS='--quotatype=auto')
    subprocess.run(['bash', str(REPO / 'tools' / 'slurm_train.sh'), 'gpu_part', 'wsss', 'cfg.py',
                    '--work-dir', 'w d'], env=env, check=True, capture_output=True)
    args = record.read_text().splitlines()
    assert args[:3] == ['-p', 'gpu_part', '--job-name=wsss']
    for expected in ('--gres=gpu:4', '--ntasks=8', '--ntasks-per-node=4', '--kill-on-bad-exit=1',
                     '--quotatype=auto', '-u', str(REPO / 'tools' / 'train.py'), 'cfg.py',
                     '--launcher=slurm', '--work-dir', 'w d'):
        assert expected in args, expected
    env.update(GPUS_PER_NODE='0', GPUS='2')  # CPU nodes: no GPU request
    subprocess.run(['bash', str(REPO / 'tools' / 'slurm_test.sh'), 'cpu', 'eval', 'cfg.py', 'ck.pth',
                    '--out', 'o'], env=env, check=True, capture_output=True)
    args = record.read_text().splitlines()
    assert not any(a.startswith('--gres') for a in args)
    assert args[-6:] == [str(REPO / 'tools' / 'test.py'), 'cfg.py', 'ck.pth', '--launcher=slurm',
                         '--out', 'o']


def test_slurm_environment_for_gloo(monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv('SLURM_PROCID', '3')
    monkeypatch.setenv('SLURM_NTASKS', '4')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'node7')
    monkeypatch.setenv('PATH', '/nonexistent')  # no scontrol: the node list is used as is
    wsss_dist._slurm_env()
    assert [os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                                    'MASTER_PORT')] == ['3', '4', '1', 'node7', '29500']
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl')), model=dict(type='X')))
    changes = wsss_dist.adapt_config_to_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo' and len(changes) == 2
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model_wrapper_cfg.broadcast_buffers is False
