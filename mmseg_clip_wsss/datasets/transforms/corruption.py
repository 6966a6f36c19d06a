"""Image corruptions (sensor noise, blur, compression) from the ``imagecorruptions`` package, for
robustness evaluation and as a training augmentation.

The corruptions and their 5 severities are those of Hendrycks & Dietterich, "Benchmarking Neural
Network Robustness to Common Corruptions and Perturbations" (ICLR 2019), as packaged for any image size
by Michaelis et al. (``imagecorruptions``, "Benchmarking Robustness in Object Detection", 2019). Their
parameters are absolute (pixels of blur, noise sigma), set for ImageNet-sized images: on small images
a blur of the same severity covers a larger part of an object.
"""
import hashlib
import warnings
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from ...registry import TRANSFORMS

__all__ = [
    'CORRUPTIONS', 'ALIGNED_CORRUPTIONS', 'SHIFTING_CORRUPTIONS', 'BROKEN_CORRUPTIONS', 'corrupt_image',
    'ImageCorruption', 'RandomImageCorruption'
]

#: Noise, blur and compression corruptions of ``imagecorruptions`` used here.
CORRUPTIONS = ('gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'motion_blur',
               'jpeg_compression')
#: Corruptions that move image content: ``imagecorruptions``' motion blur smears along a one-sided
#: kernel, which displaces objects (by up to 8 px at severity 5 on a 64 px test square, measured by
#: phase correlation), so a mask would no longer fit the image.
SHIFTING_CORRUPTIONS = ('motion_blur', )
#: The corruptions :class:`RandomImageCorruption` draws from by default.
ALIGNED_CORRUPTIONS = tuple(c for c in CORRUPTIONS if c not in SHIFTING_CORRUPTIONS)
MAX_SEVERITY = 5
#: imagecorruptions 1.1.2 names that fail on the pinned stack (numpy 2 removed ``np.float_``, which
#: ``fog`` calls; scikit-image dropped the ``multichannel`` argument the two blurs pass).
BROKEN_CORRUPTIONS = ('fog', 'glass_blur', 'gaussian_blur')


def _imagecorruptions():
    try:
        with warnings.catch_warnings():  # it imports deprecated scipy / pkg_resources names
            warnings.simplefilter('ignore')
            import imagecorruptions
    except ImportError as e:
        raise ImportError('image corruptions need the `imagecorruptions` package: '
                          'pip install -r requirements/runtime.txt (or pip install imagecorruptions)'
                          ) from e
    return imagecorruptions


def corrupt_image(img: np.ndarray, corruption: str, severity: int) -> np.ndarray:
    """Corrupt a BGR image (mmcv's channel order) with ``imagecorruptions``.

    Args:
        img (np.ndarray): (H, W, 3) uint8 BGR image (H, W >= 32).
        corruption (str): One of ``imagecorruptions.get_corruption_names('all')``.
        severity (int): 0 (the image itself, unchanged) to 5.

    Returns:
        np.ndarray: (H, W, 3) uint8 BGR image. Noise draws from numpy's global random state. Only
        :data:`SHIFTING_CORRUPTIONS` move content; the others keep every object where its mask is.

    Raises:
        ValueError: for an unknown corruption or a severity outside 0..5.
    """
    if corruption not in _imagecorruptions().get_corruption_names('all'):
        names = [n for n in _imagecorruptions().get_corruption_names('all') if n not in BROKEN_CORRUPTIONS]
        raise ValueError(f'unknown corruption {corruption!r}; choose from {names}.')
    if corruption in BROKEN_CORRUPTIONS:
        raise ValueError(f'corruption {corruption!r} of imagecorruptions fails with numpy 2 / current '
                         f'scikit-image; choose one of the others (e.g. {", ".join(CORRUPTIONS)}).')
    if not 0 <= int(severity) <= MAX_SEVERITY:
        raise ValueError(f'severity must be 0..{MAX_SEVERITY}, got {severity}.')
    if int(severity) == 0:
        return img
    rgb = np.ascontiguousarray(img[..., ::-1])
    out = _imagecorruptions().corrupt(rgb, corruption_name=corruption, severity=int(severity))
    return np.ascontiguousarray(np.asarray(out, dtype=np.uint8)[..., ::-1])


@TRANSFORMS.register_module()
class ImageCorruption(BaseTransform):
    """Corrupt ``results['img']`` with one corruption at one severity, the same noise for the same
    image every time (for evaluation: ``tools/robustness.py`` inserts it after the image loader).
    Exception: ``impulse_noise``, which scikit-image draws from a generator of its own (unseeded).

    Args:
        corruption (str): A name of :data:`CORRUPTIONS` (or any of ``imagecorruptions``).
        severity (int): 0 (identity) to 5.
        seed (int): Seed of the noise, combined with the image path. Defaults to 0.
    """

    def __init__(self, corruption: str, severity: int, seed: int = 0):
        self.corruption = corruption
        self.severity = int(severity)
        self.seed = seed
        corrupt_image(np.zeros((32, 32, 3), np.uint8), corruption, severity)  # validates the names

    def transform(self, results: dict) -> dict:
        key = f"{self.seed}:{results.get('img_path')}:{self.corruption}:{self.severity}"
        state = np.random.get_state()
        np.random.seed(int.from_bytes(hashlib.md5(key.encode()).digest()[:4], 'little'))
        try:
            results['img'] = corrupt_image(results['img'], self.corruption, self.severity)
        finally:
            np.random.set_state(state)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(corruption={self.corruption!r}, severity={self.severity})'


@TRANSFORMS.register_module()
class RandomImageCorruption(BaseTransform):
    """Training augmentation: with probability ``prob`` corrupt ``results['img']`` with a random
    corruption of ``corruptions`` at a random severity in ``1..max_severity``.

    The corruptions allowed here move no image content, so the masks (and every ``seg_fields`` map)
    stay aligned; put it after the geometric transforms. Noise draws from numpy's global random
    state (seeded per worker by mmengine).

    Args:
        corruptions (Sequence[str]): Names of ``imagecorruptions``. Defaults to
            :data:`ALIGNED_CORRUPTIONS` (noise, defocus blur, JPEG).
        max_severity (int): Highest severity drawn, 1..5. Defaults to 3.
        prob (float): Probability of corrupting an image. Defaults to 0.5.

    Raises:
        ValueError: for a corruption of :data:`SHIFTING_CORRUPTIONS` (it would misalign the masks).
    """

    def __init__(self, corruptions: Sequence[str] = ALIGNED_CORRUPTIONS, max_severity: int = 3,
                 prob: float = 0.5):
        if not 1 <= int(max_severity) <= MAX_SEVERITY:
            raise ValueError(f'max_severity must be 1..{MAX_SEVERITY}, got {max_severity}.')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must lie in [0, 1], got {prob}.')
        shifting = sorted(set(corruptions) & set(SHIFTING_CORRUPTIONS))
        if shifting:
            raise ValueError(f'RandomImageCorruption: {shifting} move image content (one-sided '
                             'motion kernel), so the masks would no longer fit; leave them out.')
        self.corruptions = tuple(corruptions)
        for name in self.corruptions:
            corrupt_image(np.zeros((32, 32, 3), np.uint8), name, 0)  # validates the names
        self.max_severity = int(max_severity)
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if np.random.rand() < self.prob:
            name = self.corruptions[np.random.randint(len(self.corruptions))]
            severity = np.random.randint(1, self.max_severity + 1)
            results['img'] = corrupt_image(results['img'], name, severity)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(corruptions={self.corruptions}, '
                f'max_severity={self.max_severity}, prob={self.prob})')
