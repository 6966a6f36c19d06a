from .inferencer import WSSSInferencer, load_rgb, resolve_classes
from .preflight import (ConfigMismatchError, MissingAssetError, check_config_assets,
                        check_config_classes)
from .robustness import evaluate_robustness, robustness_main, write_robustness_report
from .runner import (USER_ERRORS, build_test_config, build_train_config, run_tool, test_main,
                     train_main)

__all__ = [
    'build_train_config', 'build_test_config', 'train_main', 'test_main', 'MissingAssetError',
    'check_config_assets', 'ConfigMismatchError', 'check_config_classes', 'USER_ERRORS', 'run_tool',
    'evaluate_robustness', 'write_robustness_report', 'robustness_main', 'WSSSInferencer', 'load_rgb',
    'resolve_classes'
]
