"""Shared pytest fixtures, and the test transform the pseudo-mask tool tests put in their configs."""
import os.path as osp
import sys

import mmengine.logging
import pytest
import torch

from mmseg_clip_wsss.models import TINY_CLIP_NAME, write_random_clip_checkpoint
from mmseg_clip_wsss.registry import TRANSFORMS
from mmseg_clip_wsss.structures import set_image_labels


@TRANSFORMS.register_module(name='CAMTestSetImageLabels', force=True)
class CAMTestSetImageLabels:
    """Put fixed image-level labels (from a dict keyed by file stem) into packed data samples."""

    def __init__(self, labels: dict):
        self.labels = labels

    def __call__(self, results):
        stem = osp.splitext(osp.basename(results['data_samples'].metainfo['img_path']))[0]
        set_image_labels(results['data_samples'], self.labels[stem])
        return results


@pytest.fixture(scope='session')
def tiny_clip(tmp_path_factory):
    """A tiny random open_clip model saved to a checkpoint file, for ``CLIPPromptTextEncoder`` configs.

    Returns:
        dict: ``dict(model_name=TINY_CLIP_NAME, pretrained=<checkpoint path>)``; splat it into a
        ``CLIPPromptTextEncoder`` config so the weights load through open_clip's real loader.
    """
    path = tmp_path_factory.mktemp('tiny_clip') / 'tiny_clip.pt'
    return dict(model_name=TINY_CLIP_NAME, pretrained=write_random_clip_checkpoint(str(path), seed=0))


@pytest.fixture
def torch_threads():
    """``set_num_threads(n)`` for one test: torch's intra-op thread count is restored afterwards.

    Returns:
        Callable[[int], None]: ``torch.set_num_threads``.
    """
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _threads_left_as_found(request):
    """Fail a test that changes torch's thread count for the tests after it (use ``torch_threads``)."""
    before = torch.get_num_threads()
    yield
    after = torch.get_num_threads()
    if after != before:
        torch.set_num_threads(before)
        pytest.fail(f'{request.node.nodeid} left torch.get_num_threads() at {after} (was {before}): '
                    'set threads through the torch_threads fixture.')


@pytest.fixture
def logged(monkeypatch):
    """The messages the project's modules pass to mmengine's ``print_log`` during the test (a list).

    capsys misses them when the current MMLogger's stream handler was made by an earlier test (it
    keeps that test's stdout), so which tests ran before would decide what a test sees.
    """
    messages = []
    real = mmengine.logging.print_log

    def record(msg, *args, **kwargs):
        messages.append(str(msg))
        return real(msg, *args, **kwargs)

    for name, module in list(sys.modules.items()):
        if name.startswith('mmseg_clip_wsss') and getattr(module, 'print_log', None) is real:
            monkeypatch.setattr(module, 'print_log', record)
    return messages
