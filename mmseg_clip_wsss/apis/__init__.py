from .runner import build_test_config, build_train_config, test_main, train_main

__all__ = ['build_train_config', 'build_test_config', 'train_main', 'test_main']
