"""Inference, tagging, robustness and training/testing from a config (the library behind the command
lines of :mod:`mmseg_clip_wsss.cli`)."""
from .inferencer import WSSSInferencer, load_rgb, resolve_classes
from .preflight import (ConfigMismatchError, MissingAssetError, check_config_assets,
                        check_config_classes)
from .robustness import evaluate_robustness, write_robustness_report
from .runner import build_runner, test, train

__all__ = [
    'build_runner', 'train', 'test', 'MissingAssetError', 'check_config_assets',
    'ConfigMismatchError', 'check_config_classes', 'evaluate_robustness', 'write_robustness_report',
    'WSSSInferencer', 'load_rgb', 'resolve_classes'
]
