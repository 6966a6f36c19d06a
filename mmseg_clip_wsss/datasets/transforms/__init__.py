from .formatting import PackWSSSInputs
from .loading import CorruptImageError, LoadWSSSAnnotations, LoadWSSSImage, jpeg_is_complete

__all__ = [
    'PackWSSSInputs', 'LoadWSSSImage', 'LoadWSSSAnnotations', 'CorruptImageError',
    'jpeg_is_complete'
]
