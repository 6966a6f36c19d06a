from .checkpoint_shape_check_hook import CheckpointShapeCheckHook
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .rng_state_hook import RNGStateHook, capture_rng_state, restore_rng_state

__all__ = [
    'RNGStateHook', 'NonFiniteLossHook', 'NonFiniteLossError', 'CheckpointShapeCheckHook',
    'capture_rng_state', 'restore_rng_state'
]
