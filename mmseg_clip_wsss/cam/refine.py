"""CAM refinement: a pixel-adaptive propagation in torch (the CPU default), and dense CRF (``pydensecrf``).

:class:`PixelAdaptiveRefiner` follows the idea of pixel-adaptive refinement (PAR, as used in recent
single-stage WSSS): every pixel gets a kernel over a local, dilated neighbourhood whose weights come
from colour similarity (scaled by the local colour spread, so the kernel adapts to the contrast
around the pixel) and spatial distance, softmax-normalised over the neighbourhood; the CAMs are then
propagated with this kernel for a few iterations. Activations spread inside regions of coherent colour
and stop at colour edges. Each step is a convex combination per class, so zero maps (absent classes)
stay zero and values stay in the input range. ``formula='afa'`` computes instead the PAR module released
with AFA and ToCo (Ru et al., CVPR 2022 and 2023; see its docstring and docs/parity.md).

:class:`DenseCRFRefiner` wraps the fully connected CRF of ``pydensecrf`` (installed from the maintained
``pydensecrf2`` package, requirements/runtime.txt).
"""
import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmseg_clip_wsss.registry import MODELS

__all__ = ['PixelAdaptiveRefiner', 'DenseCRFRefiner', 'build_refiner', 'CRF_INSTALL_HINT', 'CRF_IMAGES',
           'PAR_FORMULAS', 'clip_es_crf_image']

#: The kernels of :class:`PixelAdaptiveRefiner`: the project's own, or that of AFA/ToCo's released PAR.
PAR_FORMULAS = ('project', 'afa')

#: What :class:`DenseCRFRefiner` gives the CRF's appearance kernel: the RGB image, or CLIP-ES's input.
CRF_IMAGES = ('rgb', 'clip_es')
#: The BGR mean CLIP-ES subtracts before its CRF (``eval_cam_with_crf.py``).
CLIP_ES_MEAN_BGR = (104.008, 116.669, 122.675)


def clip_es_crf_image(rgb: np.ndarray) -> np.ndarray:
    """The image CLIP-ES's CRF sees: (H, W, 3) uint8 RGB -> BGR minus the mean
    :data:`CLIP_ES_MEAN_BGR`, cast to uint8 as its code casts it (numpy on x86: truncation toward
    zero, then modulo 256, so a value below the mean wraps to the top of the range).

    Lin et al., "CLIP is Also an Efficient Segmenter", CVPR 2023, released ``eval_cam_with_crf.py``.
    """
    shifted = rgb[..., ::-1].astype(np.float32) - np.asarray(CLIP_ES_MEAN_BGR, dtype=np.float32)
    return np.mod(np.trunc(shifted).astype(np.int64), 256).astype(np.uint8)

CRF_INSTALL_HINT = ('dense CRF refinement needs `pydensecrf` (requirements/runtime.txt): install it with '
                    '`pip install pydensecrf2` (it builds with a C++ compiler), or use the '
                    "torch refinement instead (`--refine par`, cam_cfg.refine=dict(type='par')).")


def _neighbour_offsets(dilations: Sequence[int], centre: bool = True) -> Tuple[list, list]:
    """Offsets (dy, dx) of the centre (unless ``centre=False``) and the 8 neighbours at every
    dilation, with their lengths."""
    offsets = [(0, 0)] if centre else []
    for d in dilations:
        for dy in (-d, 0, d):
            for dx in (-d, 0, d):
                if dy or dx:
                    offsets.append((dy, dx))
    lengths = [math.hypot(dy, dx) for dy, dx in offsets]
    return offsets, lengths


def _shifted(padded: Tensor, dy: int, dx: int, pad: int, h: int, w: int) -> Tensor:
    """View of ``padded`` (replicate-padded by ``pad``) shifted by (dy, dx): value at p + (dy, dx)."""
    return padded[..., pad + dy:pad + dy + h, pad + dx:pad + dx + w]


@MODELS.register_module()
class PixelAdaptiveRefiner(nn.Module):
    """Pixel-adaptive CAM refinement (colour + position affinities, iterated propagation).

    Args:
        num_iters (int): Propagation steps. Defaults to 10.
        dilations (Sequence[int]): Dilations of the 3x3 neighbourhoods that form the kernel support.
            Defaults to (1, 2, 4, 8).
        colour_sigma (float): Width of the colour term relative to the local colour spread (smaller is
            more edge-preserving). Defaults to 0.3.
        pos_sigma (float, optional): Width of the position term relative to the largest dilation;
            None uses colour only. Defaults to 0.5.
        renormalise (bool): Scale every class map to max 1 after propagation. Defaults to False.
        formula (str): The kernel, one of :data:`PAR_FORMULAS`. ``'project'``: the one described
            above (centre included, squared colour distance over the mean squared distance of the
            neighbourhood, position added to the logits, one softmax). ``'afa'``: the PAR module
            released with AFA and ToCo (Ru et al., CVPR 2022 / 2023): the 8 neighbours of every
            dilation without the centre; per channel ``-(|I_j - I_i| / (std_j I_j + 1e-8) /
            colour_sigma) ** 2`` with the unbiased standard deviation of the neighbours' values,
            averaged over the channels, softmax over the neighbours; plus ``pos_weight`` times a
            softmax of ``-(d_j / (std_j d_j + 1e-8) / pos_sigma) ** 2`` over the neighbour
            distances ``d_j`` (``d`` or ``d * sqrt(2)``), so the weights sum to ``1 + pos_weight``
            and each step scales the maps by it. Their settings: ``dilations=(1, 2, 4, 8, 12, 24)``,
            ``num_iters=10`` (AFA on COCO: 15), ``colour_sigma=0.3``, ``pos_sigma=0.3``,
            ``pos_weight=0.01``. Defaults to ``'project'``.
        pos_weight (float): Weight of the position softmax with ``formula='afa'`` (unused
            otherwise). Defaults to 0.01.
    """

    def __init__(self,
                 num_iters: int = 10,
                 dilations: Sequence[int] = (1, 2, 4, 8),
                 colour_sigma: float = 0.3,
                 pos_sigma: Optional[float] = 0.5,
                 renormalise: bool = False,
                 formula: str = 'project',
                 pos_weight: float = 0.01):
        super().__init__()
        if formula not in PAR_FORMULAS:
            raise ValueError(f'PixelAdaptiveRefiner: formula={formula!r} must be one of {PAR_FORMULAS}.')
        if num_iters < 0:
            raise ValueError(f'PixelAdaptiveRefiner: num_iters must be >= 0, got {num_iters}.')
        if not dilations or any(int(d) < 1 for d in dilations):
            raise ValueError(f'PixelAdaptiveRefiner: dilations must be positive integers, got '
                             f'{dilations}.')
        if colour_sigma <= 0:
            raise ValueError(f'PixelAdaptiveRefiner: colour_sigma must be > 0, got {colour_sigma}.')
        if pos_sigma is not None and pos_sigma <= 0:
            raise ValueError(f'PixelAdaptiveRefiner: pos_sigma must be > 0 or None, got {pos_sigma}.')
        self.num_iters = int(num_iters)
        self.dilations = tuple(int(d) for d in dilations)
        self.colour_sigma = float(colour_sigma)
        self.pos_sigma = None if pos_sigma is None else float(pos_sigma)
        self.renormalise = renormalise
        self.formula = formula
        self.pos_weight = float(pos_weight)
        self.offsets, lengths = _neighbour_offsets(self.dilations, centre=formula == 'project')
        self.register_buffer('lengths', torch.tensor(lengths, dtype=torch.float32), persistent=False)

    def kernel(self, images: Tensor) -> Tensor:
        """Per-pixel propagation weights.

        Args:
            images (Tensor): (B, C, H, W) images (any consistent scaling, e.g. normalised inputs).

        Returns:
            Tensor: (B, N, H, W) weights over the N neighbourhood offsets, summing to 1 per pixel
            (``formula='afa'`` with a position term: to ``1 + pos_weight``).
        """
        b, _, h, w = images.shape
        pad = max(self.dilations)
        padded = F.pad(images.float(), (pad, pad, pad, pad), mode='replicate')
        centre = images.float()
        if self.formula == 'afa':
            return self._afa_kernel(padded, centre, pad)
        dist = torch.stack([
            (_shifted(padded, dy, dx, pad, h, w) - centre).pow(2).mean(dim=1)
            for dy, dx in self.offsets
        ], dim=1)  # (B, N, H, W) squared colour distances
        spread = dist[:, 1:].mean(dim=1, keepdim=True)  # (B, 1, H, W) local colour spread
        logits = -dist / (2 * self.colour_sigma ** 2 * spread + 1e-8)  # (B, N, H, W)
        if self.pos_sigma is not None:
            rel = self.lengths.to(images.device) / pad  # (N,)
            logits = logits - (rel ** 2 / (2 * self.pos_sigma ** 2))[None, :, None, None]
        return logits.softmax(dim=1)

    def _afa_kernel(self, padded: Tensor, centre: Tensor, pad: int) -> Tensor:
        """Kernel of ``formula='afa'`` (see the class docstring), (B, N, H, W)."""
        h, w = centre.shape[-2:]
        neighbours = torch.stack([_shifted(padded, dy, dx, pad, h, w) for dy, dx in self.offsets],
                                 dim=2)  # (B, C, N, H, W)
        spread = neighbours.std(dim=2, keepdim=True)  # (B, C, 1, H, W)
        logits = -((neighbours - centre[:, :, None]).abs() / (spread + 1e-8) / self.colour_sigma) ** 2
        weights = logits.mean(dim=1).softmax(dim=1)  # (B, N, H, W)
        if self.pos_sigma is not None:
            lengths = self.lengths.to(centre.device)  # (N,)
            pos = (-(lengths / (lengths.std() + 1e-8) / self.pos_sigma) ** 2).softmax(dim=0)
            weights = weights + self.pos_weight * pos[None, :, None, None]
        return weights

    def forward(self, cams: Tensor, images: Tensor) -> Tensor:
        """Refine CAMs.

        Args:
            cams (Tensor): (B, K, H, W) class activation maps.
            images (Tensor): (B, C, H', W') the images; resized to (H, W) if needed.

        Returns:
            Tensor: (B, K, H, W) refined maps.
        """
        if cams.dim() != 4 or images.dim() != 4 or cams.shape[0] != images.shape[0]:
            raise ValueError(f'PixelAdaptiveRefiner: expected cams (B, K, H, W) and images '
                             f'(B, C, H, W), got {tuple(cams.shape)} and {tuple(images.shape)}.')
        b, k, h, w = cams.shape
        if tuple(images.shape[-2:]) != (h, w):
            images = F.interpolate(images.float(), size=(h, w), mode='bilinear', align_corners=False)
        weights = self.kernel(images.to(cams.device))  # (B, N, H, W)
        pad = max(self.dilations)
        # propagation is linear and the same for every class: maps that are zero everywhere (the
        # classes absent from every image of the batch) stay zero and are skipped
        active = cams.flatten(2).abs().amax(dim=2).amax(dim=0) > 0  # (K,)
        refined = torch.zeros_like(cams)
        if not active.any():
            return refined
        out = cams.float()[:, active]  # (B, K', H, W)
        for _ in range(self.num_iters):
            padded = F.pad(out, (pad, pad, pad, pad), mode='replicate')  # (B, K', H+2p, W+2p)
            acc = torch.zeros_like(out)
            for n, (dy, dx) in enumerate(self.offsets):
                acc.addcmul_(weights[:, n:n + 1], _shifted(padded, dy, dx, pad, h, w))  # no temporary
            out = acc
        if self.renormalise:
            out = out / out.amax(dim=(2, 3), keepdim=True).clamp(min=1e-5)
        refined[:, active] = out.to(cams.dtype)
        return refined


class DenseCRFRefiner:
    """Fully connected CRF over the classes present in each image (needs ``pydensecrf``).

    Args:
        num_iters (int): Mean-field iterations. Defaults to 10.
        pos_sxy (float): Spatial width of the smoothness kernel. Defaults to 3.
        pos_compat (float): Weight of the smoothness kernel. Defaults to 3.
        bi_sxy (float): Spatial width of the appearance kernel. Defaults to 50.
        bi_srgb (float): Colour width of the appearance kernel. Defaults to 13.
        bi_compat (float): Weight of the appearance kernel. Defaults to 10.
        image (str): The appearance kernel's image, one of :data:`CRF_IMAGES`: ``'rgb'``, the image
            as loaded, or ``'clip_es'``, the input of CLIP-ES's released CRF
            (:func:`clip_es_crf_image`). Defaults to ``'rgb'``.
        bg_power (float, optional): With the protocol's ``bg_mode='complement'``, the power of the
            background score ``(1 - max CAM) ** bg_power`` the CRF starts from (CLIP-ES: 1, while its
            labels without CRF use 2); None: the protocol's ``bg_power``. Defaults to None.

    Raises:
        ImportError: At construction when ``pydensecrf`` is not installed (message says how to fix).
        ValueError: for an unknown ``image``.
    """

    def __init__(self,
                 num_iters: int = 10,
                 pos_sxy: float = 3,
                 pos_compat: float = 3,
                 bi_sxy: float = 50,
                 bi_srgb: float = 13,
                 bi_compat: float = 10,
                 image: str = 'rgb',
                 bg_power: Optional[float] = None):
        if image not in CRF_IMAGES:
            raise ValueError(f"DenseCRFRefiner: image={image!r} must be one of {CRF_IMAGES}.")
        self.image = image
        self.bg_power = None if bg_power is None else float(bg_power)
        try:
            import pydensecrf.densecrf as dcrf
            from pydensecrf.utils import unary_from_softmax
        except ImportError as err:
            raise ImportError(CRF_INSTALL_HINT) from err
        self._dcrf = dcrf
        self._unary_from_softmax = unary_from_softmax
        self.num_iters = num_iters
        self.pos_sxy, self.pos_compat = pos_sxy, pos_compat
        self.bi_sxy, self.bi_srgb, self.bi_compat = bi_sxy, bi_srgb, bi_compat

    def __call__(self, scores: Tensor, images: Union[Tensor, np.ndarray], keep: Tensor) -> Tensor:
        """Refine score maps into CRF marginals.

        Args:
            scores (Tensor): (B, K, H, W) non-negative scores with the background channel filled.
            images (Tensor | np.ndarray): (B, H, W, 3) uint8 RGB images.
            keep (Tensor): (B, K) bool, the classes allowed in each image (background included).

        Returns:
            Tensor: (B, K, H, W) marginals over the kept classes, 0 elsewhere.
        """
        b, k, h, w = scores.shape
        images = images.cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
        out = torch.zeros_like(scores, dtype=torch.float32)
        for i in range(b):  # one CRF per image (the C++ inference is per image)
            idx = torch.nonzero(keep[i], as_tuple=False).flatten().cpu()
            if idx.numel() == 0:
                continue
            probs = scores[i, idx].float().clamp(min=1e-5).cpu()  # (k', H, W)
            probs = (probs / probs.sum(dim=0, keepdim=True)).numpy()
            crf = self._dcrf.DenseCRF2D(w, h, len(idx))
            crf.setUnaryEnergy(np.ascontiguousarray(self._unary_from_softmax(probs)))
            crf.addPairwiseGaussian(sxy=self.pos_sxy, compat=self.pos_compat)
            image = images[i].astype(np.uint8)
            if self.image == 'clip_es':
                image = clip_es_crf_image(image)
            crf.addPairwiseBilateral(sxy=self.bi_sxy, srgb=self.bi_srgb, rgbim=np.ascontiguousarray(image),
                                     compat=self.bi_compat)
            q = np.asarray(crf.inference(self.num_iters), dtype=np.float32).reshape(len(idx), h, w)
            out[i, idx.to(out.device)] = torch.from_numpy(q).to(out.device)
        return out


def build_refiner(cfg: Union[None, str, dict]):
    """Build a refiner from ``None`` / ``'none'``, ``'par'``, ``'crf'`` or ``dict(type=..., **kwargs)``.

    Returns:
        PixelAdaptiveRefiner | DenseCRFRefiner | None
    """
    if cfg is None:
        return None
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    cfg = dict(cfg)
    kind = str(cfg.pop('type', 'par')).lower()
    if kind == 'none':
        return None
    if kind in ('par', 'pixeladaptiverefiner'):
        return PixelAdaptiveRefiner(**cfg)
    if kind in ('crf', 'densecrf', 'densecrfrefiner'):
        return DenseCRFRefiner(**cfg)
    raise ValueError(f"refine type {kind!r} is unknown: use 'par', 'crf' or 'none'.")
