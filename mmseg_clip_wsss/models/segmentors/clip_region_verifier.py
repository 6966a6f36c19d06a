"""Which classes an unlabelled image holds, checked region by region by a CLIP."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.model import get_model_preprocess_cfg
from scipy import ndimage
from torch import Tensor

from mmseg_clip_wsss.datasets.class_names import class_name_key
from ..open_clip_models import load_open_clip
from ..text.vocabularies import BACKGROUND_WORDS
from ..text.zero_shot import ZERO_SHOT_TEMPLATES, class_embeddings

__all__ = ['CLIPRegionVerifier']


class CLIPRegionVerifier:

    """Class presence of unlabelled images: CLIP zero-shot classification of the regions each CAM claims.

    A text-guided head draws a named class well once it is told that the class is in the image, but its
    pooled image-level scores recognise names it was never trained on poorly: on the demo's
    ``openvocab`` split its CAMs give the unseen classes 50.0 mIoU with the true image labels and 6.6
    with the classes its pooled scores predict. So every class's claim is checked by the CLIP itself:

    1. With every class switched on, each connected region where the CAM of foreground class ``k``
       exceeds ``region_threshold`` and covers at least ``min_area`` of the image is a region of ``k``.
    2. The region is cut out twice in the same square window (its box times ``context``, at least
       ``min_window`` and at most all of the shorter image side, so a region longer than that is seen
       in part): masked (the pixels outside the region set to the median colour of the rest of the
       image) and as it is (with its context); both are resized to the CLIP's input size and encoded.
       Two crops per region of every class: the cost grows with the number of names.
    3. The sum of their cosine similarities to the zero-shot class embeddings (the class name and its
       synonyms in ``templates``, averaged) and to each of the ``background_words`` ranks the
       foreground classes and the words. ``k`` is present when one of its regions ranks ``k`` first:
       a region that looks more like another class or like background proves nothing (with a single
       class name, the words are its only competitors).

    The CLIP only decides presence; the head's CAMs still draw the masks. Classifying mask proposals by
    CLIP crops is how two-stage open-vocabulary segmenters name their segments (ZegFormer, Ding et al.,
    CVPR 2022; masked crops: OVSeg, Liang et al., CVPR 2023).

    Args:
        clip_model (str): open_clip model config (e.g. ``'ViT-B-16'``, or the demo CLIP's name).
        clip_pretrained (str): Pretrained tag or local checkpoint of that model.
        region_threshold (float): CAM value (CAMs are scaled to max 1) that bounds a region.
            Defaults to 0.5.
        min_area (float): Smallest region, as a fraction of the image area. Defaults to 0.001.
        context (float): Window side over the region's longer box side. Defaults to 1.2.
        min_window (float): Smallest window side, as a fraction of the shorter image side (the scale
            the CLIP sees objects at). Defaults to 0.3.
        templates (Sequence[str], optional): Prompt templates with one ``{}``; None takes
            :data:`mmseg_clip_wsss.models.text.zero_shot.ZERO_SHOT_TEMPLATES`.
        background_words (Sequence[str]): Competitors standing for "no object", each a row of its own
            (CLIP-ES's use of them); a word that is also a class name is dropped. Defaults to
            :data:`BACKGROUND_WORDS` (CLIP-ES's list).

    Raises:
        ValueError: a threshold or fraction outside (0, 1), ``context`` < 1.
    """

    #: Crops per image tower call: the crops of all regions of all classes of a batch are encoded in
    #: calls of at most this many, so memory does not grow with the vocabulary.
    crop_batch = 256

    def __init__(self,
                 clip_model: str,
                 clip_pretrained: str,
                 region_threshold: float = 0.5,
                 min_area: float = 0.001,
                 context: float = 1.2,
                 min_window: float = 0.3,
                 templates: Optional[Sequence[str]] = None,
                 background_words: Sequence[str] = BACKGROUND_WORDS):
        for name, value in (('region_threshold', region_threshold), ('min_area', min_area),
                            ('min_window', min_window)):
            if not 0 < value < 1:
                raise ValueError(f'CLIPRegionVerifier: {name}={value} must lie in (0, 1).')
        if context < 1:
            raise ValueError(f'CLIPRegionVerifier: context={context} must be >= 1 (the window holds the region).')
        self.clip_model = clip_model
        self.model = load_open_clip(clip_model, clip_pretrained, owner='CLIPRegionVerifier').eval()
        self.model.requires_grad_(False)
        cfg = get_model_preprocess_cfg(self.model)
        size = cfg['size']
        self.input_size = (size, size) if isinstance(size, int) else tuple(size)
        self.clip_mean = torch.tensor(cfg['mean']).view(1, 3, 1, 1) * 255
        self.clip_std = torch.tensor(cfg['std']).view(1, 3, 1, 1) * 255
        self.region_threshold = float(region_threshold)
        self.min_area = float(min_area)
        self.context = float(context)
        self.min_window = float(min_window)
        self.templates = tuple(templates or ZERO_SHOT_TEMPLATES)
        self.background_words = tuple(background_words)
        self.text = None  # (C + W, D): the C classes, then the background words
        self._rows: List[List[str]] = []  # the words of those rows
        self.num_classes = 0

    def set_class_prompts(self, class_prompts: Sequence[Sequence[str]]) -> None:
        """Embed the foreground classes to rank (per class, its name and synonyms), in channel order.

        All prompts are encoded in a few batched text tower calls (progress is logged when that
        takes long), once per name list: the same list again is not encoded again.
        """
        names = {class_name_key(w) for words in class_prompts for w in words}
        rows = [list(words) for words in class_prompts] + [[w] for w in self.background_words
                                                            if class_name_key(w) not in names]
        if self.text is not None and rows == self._rows:
            return
        self.model.cpu()
        self.text = class_embeddings(self.model, self.clip_model, rows, self.templates)  # (C + W, D)
        self._rows = rows
        self.num_classes = len(class_prompts)

    def _window(self, region: np.ndarray) -> Tuple[int, int, int]:
        """Top, left and side of the square window around a (H, W) bool region."""
        h, w = region.shape
        ys, xs = np.nonzero(region)
        extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
        side = int(min(max(extent * self.context, self.min_window * min(h, w)), min(h, w)))
        top = int(np.clip((ys.min() + ys.max() + 1 - side) / 2, 0, h - side))
        left = int(np.clip((xs.min() + xs.max() + 1 - side) / 2, 0, w - side))
        return top, left, side

    def _regions(self, cams: np.ndarray, foreground: Sequence[int]) -> List[Tuple[int, np.ndarray]]:
        """(class channel, (H, W) bool region) of every region the CAMs (K, H, W) claim."""
        min_pixels = self.min_area * cams.shape[1] * cams.shape[2]
        regions = []
        for k in foreground:
            labelled, num = ndimage.label(cams[k] > self.region_threshold)
            for j in range(1, num + 1):
                region = labelled == j
                if region.sum() >= min_pixels:
                    regions.append((k, region))
        return regions

    def _crops(self, image: Tensor, region: np.ndarray) -> Tensor:
        """Masked and context crops (2, 3, S, S) of a (3, H, W) image around a region."""
        top, left, side = self._window(region)
        inside = torch.from_numpy(region).to(image.device)
        fill = image[:, ~inside].median(dim=1).values if (~inside).any() else image.new_full((3, ), 127.5)
        masked = torch.where(inside, image, fill[:, None, None])
        window = torch.stack([masked, image])[:, :, top:top + side, left:left + side]
        return F.interpolate(window, size=self.input_size, mode='bilinear', align_corners=False, antialias=True)

    @torch.no_grad()
    def __call__(self, images: Tensor, cams: Tensor, foreground: Sequence[int]) -> Tensor:
        """Which classes each image holds.

        Args:
            images (Tensor): (B, 3, H, W) RGB pixel values in [0, 255].
            cams (Tensor): (B, K, H, W) CAMs of every class (each scaled to max 1).
            foreground (Sequence[int]): The channels of the classes given to :meth:`set_class_prompts`,
                in that order.

        Returns:
            Tensor: (B, K) float multi-hot over the foreground channels (other channels 0).

        Raises:
            RuntimeError: before :meth:`set_class_prompts`, or with another number of classes.
        """
        if self.num_classes != len(foreground):
            raise RuntimeError(f'CLIPRegionVerifier: {len(foreground)} foreground classes to check, but '
                               f'{self.num_classes} embedded; call set_class_prompts with the class list '
                               'first.')
        device = images.device
        self.model.to(device)
        present = cams.new_zeros(cams.shape[:2])
        cams_np = cams.float().cpu().numpy()
        crops, owners = [], []
        for b in range(len(images)):
            for k, region in self._regions(cams_np[b], foreground):
                crops.append(self._crops(images[b].float(), region))
                owners.append((b, k))
        if not crops:
            return present
        x = (torch.cat(crops) - self.clip_mean.to(device)) / self.clip_std.to(device)  # (2R, 3, S, S)
        feats = torch.cat([self.model.encode_image(x[i:i + self.crop_batch])  # memory bounded by the
                           for i in range(0, len(x), self.crop_batch)])  # batch, not the vocabulary
        sims = F.normalize(feats, dim=-1) @ self.text.to(device).t()  # (2R, C + W)
        ranked = sims.view(len(owners), 2, -1).sum(dim=1).argmax(dim=1).tolist()  # (R, ) row indices
        for (b, k), best in zip(owners, ranked):
            if best < self.num_classes and foreground[best] == k:
                present[b, k] = 1
        return present
