"""Install mmseg_clip_wsss (use ``make install`` to set up the whole stack)."""
from pathlib import Path

from setuptools import find_packages, setup


def read_version():
    scope = {}
    exec((Path(__file__).parent / 'mmseg_clip_wsss' / 'version.py').read_text(), scope)
    return scope['__version__']


setup(
    name='mmseg_clip_wsss',
    version=read_version(),
    description='CLIP text-guided weakly supervised semantic segmentation with learned prompts '
    'for MMSegmentation and MMDetection',
    long_description=Path('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['mmseg_clip_wsss', 'mmseg_clip_wsss.*']),
    # The pinned stack lives in requirements/ and is installed by tools/install_env.sh: mmcv has to be
    # built from source there, so it is deliberately not an install_requires entry.
    install_requires=['mmengine>=0.10', 'open_clip_torch>=2.20', 'timm>=0.9', 'numpy'],
    extras_require={'tests': ['pytest>=8']},
    zip_safe=False,
)
