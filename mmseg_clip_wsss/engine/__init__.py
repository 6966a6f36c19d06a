"""Runner-side pieces: hooks (exact resume, non-finite losses, checkpoint checks), distributed
helpers and the layer-wise learning-rate decay of CLIP image towers."""
from .checkpoint_check import (CheckpointMismatchError, build_model_from_checkpoint,
                               check_checkpoint_fits, check_checkpoint_for_model)
from .weight_files import WeightFileError, check_weight_file, load_weight_file
from .clip_layer_decay_optimizer_constructor import CLIPLayerDecayOptimizerConstructor
from .dist import (adapt_config_to_cpu_distributed, all_gather_rows, cpu_distributed,
                   setup_cpu_distributed)
from .hooks import (CheckpointShapeCheckHook, NonFiniteLossError, NonFiniteLossHook, RNGStateHook,
                    capture_rng_state, restore_rng_state)
from .mmengine_internals import (VERIFIED_MMENGINE, MMEngineInternalsError,
                                 check_mmengine_internals)

__all__ = [
    'RNGStateHook', 'NonFiniteLossHook', 'NonFiniteLossError', 'CheckpointShapeCheckHook',
    'CheckpointMismatchError', 'check_checkpoint_fits', 'check_checkpoint_for_model',
    'build_model_from_checkpoint', 'WeightFileError', 'check_weight_file', 'load_weight_file',
    'capture_rng_state', 'restore_rng_state',
    'all_gather_rows', 'cpu_distributed', 'setup_cpu_distributed', 'adapt_config_to_cpu_distributed',
    'VERIFIED_MMENGINE', 'MMEngineInternalsError', 'check_mmengine_internals'
]
