from .confidence import CONFIDENCE_KEY, LoadConfidenceMap
from .corruption import CORRUPTIONS, ImageCorruption, RandomImageCorruption, corrupt_image
from .formatting import PackWSSSInputs
from .loading import CorruptImageError, LoadWSSSAnnotations, LoadWSSSImage, jpeg_is_complete

__all__ = [
    'PackWSSSInputs', 'LoadWSSSImage', 'LoadWSSSAnnotations', 'CorruptImageError',
    'jpeg_is_complete', 'LoadConfidenceMap', 'CONFIDENCE_KEY', 'CORRUPTIONS', 'corrupt_image',
    'ImageCorruption', 'RandomImageCorruption'
]
