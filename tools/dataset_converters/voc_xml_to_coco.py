"""``tools/dataset_converters/voc_xml_to_coco.py``: see :mod:`mmseg_clip_wsss.cli.voc_xml_to_coco` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.voc_xml_to_coco import run

if __name__ == '__main__':
    run()
