from .inferencer import WSSSInferencer, load_rgb, resolve_classes
from .preflight import (ConfigMismatchError, MissingAssetError, check_config_assets,
                        check_config_classes)
from .runner import USER_ERRORS, build_test_config, build_train_config, test_main, train_main

__all__ = [
    'build_train_config', 'build_test_config', 'train_main', 'test_main', 'MissingAssetError',
    'check_config_assets', 'ConfigMismatchError', 'check_config_classes', 'USER_ERRORS', 'WSSSInferencer',
    'load_rgb', 'resolve_classes'
]
