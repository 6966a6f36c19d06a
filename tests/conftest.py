"""Shared pytest fixtures."""
import pytest

from mmseg_clip_wsss.models import TINY_CLIP_NAME, write_random_clip_checkpoint


@pytest.fixture(scope='session')
def tiny_clip(tmp_path_factory):
    """A tiny random open_clip model saved to a checkpoint file, for ``CLIPPromptTextEncoder`` configs.

    Returns:
        dict: ``dict(model_name=TINY_CLIP_NAME, pretrained=<checkpoint path>)``; splat it into a
        ``CLIPPromptTextEncoder`` config so the weights load through open_clip's real loader.
    """
    path = tmp_path_factory.mktemp('tiny_clip') / 'tiny_clip.pt'
    return dict(model_name=TINY_CLIP_NAME, pretrained=write_random_clip_checkpoint(str(path), seed=0))
