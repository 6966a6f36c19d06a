"""Bad input to the command-line tools: each is refused with a message that names the option or file
and the fix, before any work, and no finished output is lost."""
import importlib

import pytest
import torch

from mmseg_clip_wsss.cli import device_arg

# Every tool with a --device option, and the least command line it parses.
DEVICE_TOOLS = {
    'make_pseudo_masks': ['missing_config.py', '--out-dir', 'out'],
    'segment': ['missing.png', '--config', 'missing_config.py', '--checkpoint', 'missing.pth',
                '--out-dir', 'out'],
    'tune_prompts': ['missing_config.py'],
    'robustness': ['missing_config.py', 'missing.pth'],
    'benchmark': [],
    'benchmark_memory': ['--spec', '{}'],
}


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 0)


@pytest.mark.parametrize('tool', sorted(DEVICE_TOOLS))
def test_device_cuda_without_a_gpu_is_refused_before_any_work(tool, no_gpu, capsys):
    cli = importlib.import_module(f'mmseg_clip_wsss.cli.{tool}')
    argv = DEVICE_TOOLS[tool] + ['--device', 'cuda']
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)  # the config / images do not exist: the device is refused before they are read
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert 'argument --device' in err and 'CUDA is not available' in err and 'use --device cpu' in err
    assert cli.parse_args(DEVICE_TOOLS[tool] + ['--device', 'cpu']).device == 'cpu'


def test_device_arg_refuses_a_missing_gpu_index_and_a_misspelt_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert device_arg('cuda:1') == 'cuda:1'
    with pytest.raises(Exception, match=r'2 CUDA device\(s\), cuda:0 to cuda:1; use --device cpu'):
        device_arg('cuda:2')
    with pytest.raises(Exception, match="'gpu' is not a device .*use cpu, cuda or cuda:N"):
        device_arg('gpu')
