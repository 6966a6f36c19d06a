"""The synthetic demo dataset written by :func:`mmseg_clip_wsss.demo.make_demo_data` (VOC devkit
layout)."""
from ..registry import DATASETS
from .palette import voc_palette
from .wsss_dataset import WSSSDataset

__all__ = ['DemoWSSSDataset', 'DEMO_CLASSES']

#: Background + the 8 labelled classes of the ``'demo'`` world (:mod:`mmseg_clip_wsss.datasets.synthetic.world`,
#: which says what each looks like).
DEMO_CLASSES = ('background', 'disc', 'ring', 'square', 'triangle', 'star', 'cross', 'hexagon',
                'crescent')


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
