"""The synthetic demo dataset written by :func:`mmseg_clip_wsss.demo.make_demo_data` (VOC devkit
layout)."""
from ..registry import DATASETS
from .palette import voc_palette
from .wsss_dataset import WSSSDataset

__all__ = ['DemoWSSSDataset', 'DEMO_CLASSES', 'DEMO_TEXTURES', 'DEMO_COOCCURRING']

#: Background + 8 shapes. Every texture is shared by two classes and every colour by all of them,
#: so a class is told apart by its shape *and* texture, never by colour.
DEMO_CLASSES = ('background', 'disc', 'ring', 'square', 'triangle', 'star', 'cross', 'hexagon',
                'crescent')

#: The surface pattern of each class (two tones of the object's colour).
DEMO_TEXTURES = {
    'disc': 'stripes',
    'ring': 'checks',
    'square': 'dots',
    'triangle': 'stripes',
    'star': 'solid',
    'cross': 'checks',
    'hexagon': 'solid',
    'crescent': 'dots',
}

#: Pairs of classes that often appear together (like person + horse in VOC), so that image-level
#: labels alone do not say which region is which.
DEMO_COOCCURRING = (('disc', 'ring'), ('star', 'cross'), ('square', 'triangle'),
                    ('hexagon', 'crescent'))


@DATASETS.register_module()
class DemoWSSSDataset(WSSSDataset):
    """The demo dataset: ``data_root='data/demo'`` laid out like ``VOCdevkit/VOC2012``.

    ``JPEGImages/``, ``SegmentationClass/`` (VOC palette PNGs), ``Annotations/*.xml``,
    ``ImageSets/Segmentation/{train,val}.txt`` and ``ImageLabels/{train,val}.txt`` (made from the XML
    by the VOC converter).

    Args:
        **kwargs: See :class:`WSSSDataset`.
    """
    METAINFO = dict(classes=DEMO_CLASSES, palette=voc_palette(len(DEMO_CLASSES)).tolist())
