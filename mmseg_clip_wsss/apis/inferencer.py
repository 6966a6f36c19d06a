"""Inference on any images with any class names, in mmseg's inferencer conventions.

:class:`WSSSInferencer` is mmseg's :class:`~mmseg.apis.MMSegInferencer` for the plugin's models: it
builds the model from a config + checkpoint like mmseg does, and its class list can be replaced by any
names (:meth:`WSSSInferencer.set_classes`): the classifier rows of a text-guided head are the text
embeddings of the class names, so names never labelled in training are encoded by the text tower on
the fly. :func:`load_rgb` reads an image of any mode and EXIF orientation as RGB.
"""
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
from mmcv.transforms import Compose
from mmengine.config import ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS
from mmseg.apis import MMSegInferencer

from mmseg_clip_wsss.apis.preflight import ConfigMismatchError
from mmseg_clip_wsss.cam.protocol import CAMProtocol
from mmseg_clip_wsss.datasets.class_lists import dataset_classes
from mmseg_clip_wsss.datasets.image_io import read_rgb
from mmseg_clip_wsss.datasets.image_labels import BACKGROUND
from mmseg_clip_wsss.datasets.palette import voc_palette
from mmseg_clip_wsss.engine.checkpoint_check import CHECKPOINT_FIX, check_checkpoint_for_model
from mmseg_clip_wsss.engine.weight_files import check_weight_file
from mmseg_clip_wsss.models.data_preprocessor import pad_small_test_images
from mmseg_clip_wsss.models.text.vocabularies import resolve_class_prompts
from mmseg_clip_wsss.registry import DEPRECATED_NAMES

__all__ = ['WSSSInferencer', 'load_rgb', 'resolve_classes']

#: Transforms of a dataset's test pipeline that read files; the inferencer reads arrays instead.
_FILE_TRANSFORMS = ('LoadWSSSImage', 'LoadImageFromFile', 'LoadWSSSAnnotations', 'LoadAnnotations')


def load_rgb(path: str) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, turned upright by its EXIF orientation
    (:func:`~mmseg_clip_wsss.datasets.image_io.read_rgb`, the project's one image reader).

    Any PIL mode works: palette, grey, grey + alpha, RGBA, CMYK, 16-bit and float grey (scaled by their
    own range into 0-255).

    Raises:
        OSError: the file is missing (``FileNotFoundError``) or no readable image
            (``CorruptImageError``), naming it.
        ImageTooLargeError: more pixels than the pixel limit, naming the file and how to raise it.
    """
    return read_rgb(path, 'image', 'check the file, or leave it out')


def resolve_classes(classes: Optional[Sequence[str]] = None, vocabulary: Optional[str] = None) -> List[str]:
    """The class list to segment: ``'background'`` + ``classes``, or a dataset's vocabulary.

    Args:
        classes (Sequence[str], optional): Foreground class names (``'background'`` is added first).
        vocabulary (str, optional): A dataset name (``'voc'``, ``'coco'``, ``'demo'``): its classes.

    Raises:
        ValueError: both or neither given, an empty name.
        DuplicateClassNameError: two names of one class (``'dog'`` and ``'Dog '``, ``'background'``
            and ``'Background'``), naming both: the rule of :mod:`mmseg_clip_wsss.datasets.class_names`.
    """
    if (classes is None) == (vocabulary is None):
        raise ValueError('give either class names or a vocabulary name (voc, coco, demo), not both.')
    if vocabulary is not None:
        return list(dataset_classes(vocabulary))
    names = [c.strip() for c in classes]
    if not names or any(not n for n in names):
        raise ValueError(f'class names must be non-empty, got {list(classes)!r}.')
    names = [BACKGROUND] + [n for n in names if n != BACKGROUND]
    resolve_class_prompts(names, 'class names')  # two names of one class are refused, naming both
    return names


class WSSSInferencer(MMSegInferencer):
    """mmseg's inferencer for text-guided WSSS segmentors, with an open class list.

    Inputs are what :class:`MMSegInferencer` takes (paths or (H, W, 3) uint8 **BGR** arrays, mmseg's
    convention); the test pipeline of the config is used without its file-reading transforms. An
    image whose side ends up shorter than the backbone takes is padded up to it and the padding
    cropped off the prediction (:func:`~mmseg_clip_wsss.models.data_preprocessor.pad_small_test_images`).

    Args:
        model (str | Config): Config file or object.
        weights (str, optional): Checkpoint; one saved from another config, or any for a
            training-free model, raises :class:`~mmseg_clip_wsss.engine.CheckpointMismatchError`.
        classes (Sequence[str], optional): The class list to segment, ``'background'`` first when
            the model has a background row (see :func:`resolve_classes`). None keeps the trained
            classes.
        device (str, optional): Device. Defaults to None (CUDA if available).
        output (str): ``'auto'``: a weakly supervised stage-1 model (a head trained from image-level
            labels) segments the way its pseudo masks are made: CAMs of the classes it finds in the
            image, background below the config's CAM-protocol threshold (``cam_cfg.bg_threshold``;
            see :class:`WSSSEncoderDecoder`, ``test_cfg.output='cam'``); any other model keeps its
            ``test_cfg``. ``'config'``: always the config's ``test_cfg``. Defaults to ``'auto'``.
    """

    def __init__(self,
                 model,
                 weights: Optional[str] = None,
                 classes: Optional[Sequence[str]] = None,
                 device: Optional[str] = None,
                 output: str = 'auto'):
        if output not in ('auto', 'config'):
            raise ValueError(f"WSSSInferencer: output={output!r} must be 'auto' or 'config'.")
        self._weights = weights  # named by the checkpoint check of _load_weights_to_model
        if weights:
            check_weight_file(weights, CHECKPOINT_FIX, 'segment: checkpoint')  # before mmseg reads it
        super().__init__(model, weights, device=device, scope='mmseg')
        pad_small_test_images(self.model)  # a 1000 x 13 px image is padded, not a pooling error
        if output == 'auto' and getattr(getattr(self.model, 'decode_head', None), 'is_weak', False):
            protocol = CAMProtocol.from_cfg(self.cfg.get('cam_cfg'))
            self.model.test_cfg.update(output='cam', bg_threshold=protocol.bg_threshold)
        if classes is not None:
            self.set_classes(classes)

    def _load_weights_to_model(self, model, checkpoint: Optional[dict], cfg) -> None:
        """mmseg's loading, after refusing a checkpoint that does not fit the model (saved from another
        config: mmseg only warns and runs with random layers) or one given for a training-free model
        (:func:`~mmseg_clip_wsss.engine.checkpoint_check.check_checkpoint_for_model`)."""
        if checkpoint is not None:
            check_checkpoint_for_model(model, checkpoint, self._weights, 'segment')
        super()._load_weights_to_model(model, checkpoint, cfg)

    def set_classes(self, classes: Union[str, Sequence[str]]) -> None:
        """Segment ``classes`` from now on (row ``k`` of the output is ``classes[k]``).

        Raises:
            ValueError: the model's classifier is not made of text embeddings (see
                :meth:`WSSSEncoderDecoder.set_class_names`).
        """
        if list(classes) == list(self.classes):
            return  # the trained list: nothing to change, for a fixed-class model too
        if not hasattr(self.model, 'set_class_names'):
            raise ValueError(f'{type(self.model).__name__} has a fixed class list; new class names need a '
                             'WSSSEncoderDecoder with a text-guided head.')
        self.model.set_class_names(classes)
        names = tuple(self.model.text_encoder.class_names)
        self.model.dataset_meta = dict(classes=names, palette=voc_palette(len(names)).tolist())

    @property
    def classes(self) -> tuple:
        return tuple(self.model.dataset_meta['classes'])

    def _init_collate(self, cfg: ConfigDict) -> Callable:
        """The config's ``test_dataloader.collate_fn`` (default :func:`pseudo_collate`), looked up in
        mmengine's function registry, where the collate functions are registered (as the Runner looks
        up its dataloaders').

        mmengine's inferencer looks it up in the function registry of the inferencer's scope,
        ``'mmseg'``, which has none: every run logged mmengine's "Failed to search registry with scope
        "mmseg" in the "function" registry tree" warning before using mmengine's registry anyway.

        Raises:
            ConfigMismatchError: the config names a collate function that is not registered, naming it.
        """
        collate = cfg.get('test_dataloader', {}).get('collate_fn')
        if collate is None:
            return pseudo_collate
        name = collate.get('type') if isinstance(collate, dict) else collate  # dict(type=...) as the Runner's
        found = FUNCTIONS.get(name)
        if found is None:
            raise ConfigMismatchError(f'test_dataloader.collate_fn {name!r} is no registered function; use '
                                      "'pseudo_collate' (the default) or 'default_collate', or leave it out.")
        return found

    def _init_pipeline(self, cfg: ConfigDict) -> Compose:
        """The config's test pipeline with mmseg's ``InferencerLoader`` instead of file loading."""
        steps = [t for t in cfg.test_dataloader.dataset.pipeline  # old names too (LoadImageWSSS)
                 if DEPRECATED_NAMES.get(t['type'], t['type']) not in _FILE_TRANSFORMS]
        return Compose([dict(type='InferencerLoader')] + steps)
