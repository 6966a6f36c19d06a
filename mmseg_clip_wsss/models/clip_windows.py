"""Zero-shot multi-label scores of an open_clip image tower from windows of the image.

A window is how the generated corpus shows objects (object-centred crops at their scale in the
world's images); one embedding of a whole image with several objects matches single-class prompts
poorly, so each class is scored by its best-matching window.
"""
import numpy as np
import torch
import torch.nn.functional as F
from open_clip.model import get_model_preprocess_cfg

__all__ = ['normalise_images', 'window_scores']


def normalise_images(model, images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float, normalised with the model's mean and std."""
    cfg = get_model_preprocess_cfg(model)
    mean = torch.tensor(cfg['mean']).view(1, 3, 1, 1) * 255
    std = torch.tensor(cfg['std']).view(1, 3, 1, 1) * 255
    return (torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() - mean) / std


@torch.no_grad()
def window_scores(model, images: np.ndarray, text: torch.Tensor, window: float = 0.375,
                  stride: float = 0.125, batch_size: int = 256) -> torch.Tensor:
    """Per-class score of every image: the best cosine similarity over its windows.

    Args:
        model: open_clip model.
        images (np.ndarray): (N, S, S, 3) uint8 RGB.
        text (Tensor): (K, D) unit-norm class embeddings.
        window (float): Window side as a fraction of the image side. Defaults to 0.375.
        stride (float): Window stride as a fraction of the image side. Defaults to 0.125.

    Returns:
        Tensor: (N, K) scores.
    """
    cfg = get_model_preprocess_cfg(model)
    size = cfg['size'] if isinstance(cfg['size'], int) else cfg['size'][0]
    x = normalise_images(model, images)  # (N, 3, S, S)
    side = x.shape[-1]
    win = max(1, int(round(window * side)))
    step = max(1, int(round(stride * side)))
    starts = list(range(0, side - win + 1, step))
    if starts[-1] != side - win:
        starts.append(side - win)
    best = torch.full((len(x), len(text)), -2.0)
    for i in range(0, len(x), batch_size):
        chunk = x[i:i + batch_size]
        crops = torch.cat([chunk[:, :, y:y + win, x0:x0 + win] for y in starts for x0 in starts])
        crops = F.interpolate(crops, size=(size, size), mode='bilinear', align_corners=False,
                              antialias=True)
        emb = F.normalize(model.encode_image(crops), dim=-1) @ text.t()  # (W * n, K)
        best[i:i + len(chunk)] = emb.view(-1, len(chunk), len(text)).amax(0)
    return best
