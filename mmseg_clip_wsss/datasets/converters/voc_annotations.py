"""PASCAL VOC XML annotations: the parser, and the image-level label file made from them.

The command line is ``tools/dataset_converters/voc_xml_to_labels.py``; the logic lives here so that
the demo data generator and the tests use the very same code.
"""
import os
import os.path as osp
import xml.etree.ElementTree as ET
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

from mmengine.utils import ProgressBar

from ..image_labels import BACKGROUND, write_image_labels
from ..split_file import read_split_file

__all__ = ['parse_voc_xml', 'check_class_names', 'voc_xml_to_labels']


def parse_voc_xml(xml_path: str, skip_difficult: bool = False) -> List[Dict]:
    """The objects of one VOC XML annotation, in file order (repeats kept).

    Args:
        xml_path (str): ``Annotations/<id>.xml``.
        skip_difficult (bool): Leave out objects marked ``<difficult>1</difficult>``.

    Returns:
        list[dict]: ``name`` (``object/name``, stripped), ``bbox`` ``(xmin, ymin, xmax, ymax)`` as
        written (1-based, inclusive; None without ``<bndbox>``) and ``difficult`` (bool).

    Raises:
        ValueError: naming the file when it is not valid XML, an object has no ``name`` or an
            incomplete ``<bndbox>``.
    """
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise ValueError(f'{xml_path} is not valid XML ({e}): restore the VOC Annotations '
                         'directory (re-extract VOCtrainval_11-May-2012.tar).') from e
    objects = []
    for obj in root.findall('object'):
        name = (obj.findtext('name') or '').strip()
        if not name:
            raise ValueError(f'{xml_path}: an <object> has no <name>; fix the annotation or '
                             're-extract the VOC Annotations directory.')
        difficult = (obj.findtext('difficult') or '0').strip() == '1'
        if skip_difficult and difficult:
            continue
        box = obj.find('bndbox')
        bbox = None
        if box is not None:
            try:
                bbox = tuple(float(box.findtext(k)) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
            except (TypeError, ValueError) as e:
                raise ValueError(f'{xml_path}: object {name!r} has an incomplete <bndbox>.') from e
        objects.append(dict(name=name, bbox=bbox, difficult=difficult))
    return objects


def check_class_names(xml_path: str, objects: Sequence[Dict], classes: Sequence[str]) -> None:
    """Raise a ValueError naming ``xml_path`` for an object whose class is not a foreground class."""
    for obj in objects:
        if obj['name'] not in classes or obj['name'] == BACKGROUND:
            raise ValueError(f'{xml_path}: object class {obj["name"]!r} is not one of the classes '
                             f'{tuple(classes[1:])}; pass the right class list (--classes) or fix '
                             'the annotation.')


def _under_root(data_root: str, path: str) -> str:
    """``path`` as is when absolute, else under ``data_root``."""
    return path if osp.isabs(path) else osp.join(data_root, path)


def _voc_image_ids(data_root: str, xml_dir: str, split_file: Optional[str]) -> List[str]:
    """The ids of ``split_file``, else of every ``*.xml`` in ``xml_dir`` (sorted)."""
    if split_file is not None:
        return read_split_file(split_file)
    if not osp.isdir(xml_dir):
        raise FileNotFoundError(f'annotation directory {xml_dir} does not exist: is '
                                f'{data_root} a VOC devkit root (VOCdevkit/VOC2012)?')
    return sorted(name[:-4] for name in os.listdir(xml_dir) if name.endswith('.xml'))


def _object_names(xml_dir: str, image_id: str, listed_in: str, classes: Sequence[str],
                  skip_difficult: bool) -> List[str]:
    """The checked class names of the objects of one image's XML, in file order."""
    xml_path = osp.join(xml_dir, image_id + '.xml')
    if not osp.isfile(xml_path):
        raise FileNotFoundError(
            f'{xml_path} does not exist but {image_id!r} is listed in '
            f'{listed_in}: restore the VOC Annotations directory or fix the split.')
    objects = parse_voc_xml(xml_path)
    check_class_names(xml_path, objects, classes)
    return [o['name'] for o in objects if not (skip_difficult and o['difficult'])]


def _collect_labels(image_ids: Sequence[str], xml_dir: str, split_file: Optional[str],
                    classes: Sequence[str], skip_difficult: bool, show_progress: bool) -> tuple:
    """``(labels, image_counts, object_counts)`` of ``image_ids``, labels in class order."""
    index = {name: i for i, name in enumerate(classes)}
    labels: 'OrderedDict[str, List[str]]' = OrderedDict()
    object_counts = {name: 0 for name in classes if name != BACKGROUND}
    image_counts = dict(object_counts)
    progress = ProgressBar(len(image_ids)) if show_progress and image_ids else None
    for image_id in image_ids:
        names = _object_names(xml_dir, image_id, split_file or xml_dir, classes, skip_difficult)
        for name in names:
            object_counts[name] += 1
        present = sorted(set(names), key=index.__getitem__)
        for name in present:
            image_counts[name] += 1
        labels[image_id] = present
        if progress is not None:
            progress.update()
    if progress is not None:
        print()
    return labels, image_counts, object_counts


def voc_xml_to_labels(data_root: str,
                      out_file: str,
                      classes: Sequence[str],
                      split_file: Optional[str] = None,
                      ann_dir: str = 'Annotations',
                      skip_difficult: bool = False,
                      show_progress: bool = True) -> Dict:
    """Write the image-level label file of a VOC-layout dataset from its XML annotations.

    Args:
        data_root (str): The devkit root, e.g. ``data/VOCdevkit/VOC2012``.
        out_file (str): Label file to write (relative paths are taken under ``data_root``).
        classes (Sequence[str]): The dataset's classes (``'background'`` first); every object name
            must be one of them.
        split_file (str, optional): Split file of image ids (relative paths under ``data_root``).
            ``None``: every ``*.xml`` in ``ann_dir``, sorted.
        ann_dir (str): XML directory under ``data_root``. Defaults to 'Annotations'.
        skip_difficult (bool): Ignore objects marked difficult. Defaults to False (all objects, the
            usual WSSS protocol).
        show_progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: Summary with ``out_file``, ``num_images``, ``num_empty`` (images with no object),
        ``image_counts`` (class -> number of images containing it) and ``object_counts``
        (class -> number of objects).

    Raises:
        FileNotFoundError: for a missing split file or an id without XML.
        ValueError: for an object name that is not in ``classes`` (naming the XML file).
    """
    xml_dir = _under_root(data_root, ann_dir)
    out_file = _under_root(data_root, out_file)
    if split_file is not None:
        split_file = _under_root(data_root, split_file)
    image_ids = _voc_image_ids(data_root, xml_dir, split_file)
    labels, image_counts, object_counts = _collect_labels(image_ids, xml_dir, split_file, classes,
                                                          skip_difficult, show_progress)
    source = osp.relpath(split_file, data_root) if split_file else ann_dir
    write_image_labels(out_file, labels, header=[f'made from {ann_dir}/*.xml for {source}'])
    return dict(
        out_file=out_file,
        num_images=len(labels),
        num_empty=sum(1 for names in labels.values() if not names),
        image_counts=image_counts,
        object_counts=object_counts)
