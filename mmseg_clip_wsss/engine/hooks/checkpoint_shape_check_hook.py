"""Make ``load_from`` / ``--resume`` / ``tools/test.py`` refuse a checkpoint of another config."""
import os.path as osp
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import find_latest_checkpoint

from mmseg_clip_wsss.registry import register_hook_seg_and_det
from ..checkpoint_check import check_checkpoint_fits

__all__ = ['CheckpointShapeCheckHook']


def _checkpoint_file(runner) -> Optional[str]:
    """The file the runner loads, following mmengine's ``Runner.load_or_resume``."""
    load_from = getattr(runner, '_load_from', None)
    if getattr(runner, '_resume', False) and load_from is None:
        return find_latest_checkpoint(runner.work_dir)
    return load_from


def _shown_path(filename: Optional[str]) -> Optional[str]:
    if not filename or '://' in filename:
        return filename
    return osp.abspath(filename)


@register_hook_seg_and_det
class CheckpointShapeCheckHook(Hook):
    """Raise :class:`~mmseg_clip_wsss.engine.CheckpointMismatchError` before a checkpoint that does
    not fit the model is loaded (mmengine would only warn and go on with random layers).

    The error names the checkpoint file, every mismatched key with both shapes and missing weights.

    Args:
        allow_missing (bool): Accept checkpoints that lack some weights of the model.
            Defaults to False.
    """

    priority = 'VERY_HIGH'

    def __init__(self, allow_missing: bool = False):
        self.allow_missing = allow_missing

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        filename = _checkpoint_file(runner)
        check_checkpoint_fits(model, checkpoint.get('state_dict', checkpoint),
                              _shown_path(filename),
                              allow_missing=self.allow_missing)
