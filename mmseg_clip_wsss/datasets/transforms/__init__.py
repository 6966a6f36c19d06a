from .formatting import PackWSSSInputs
from .loading import CorruptImageError, LoadImageWSSS, LoadWSSSAnnotations, jpeg_is_complete

__all__ = [
    'PackWSSSInputs', 'LoadImageWSSS', 'LoadWSSSAnnotations', 'CorruptImageError',
    'jpeg_is_complete'
]
