"""Cross-entropy on pseudo masks that the model corrects once it starts to memorise their errors
(ADELE)."""
import warnings

import numpy as np
import torch
from mmseg.models.losses import CrossEntropyLoss
from torch import Tensor

from ...registry import MODELS

__all__ = ['EarlyLearningCorrectionLoss', 'early_learning_ended']


def _iou_curve(t: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a * (1 - np.exp(-b * t**c))


def early_learning_ended(iou_history: np.ndarray, slowdown: float = 0.9) -> bool:
    """ADELE's test that a class has left its early-learning phase.

    Fits ``f(t) = a (1 - exp(-b t^c))`` to the class's training IoU at the points ``t = 1..n`` and
    says yes when the fitted slope at ``t = n`` has fallen by more than ``slowdown`` of the slope at
    ``t = 1``: ``|f'(1) - f'(n)| / |f'(1)| > slowdown``.

    Args:
        iou_history (np.ndarray): (n,) IoUs in [0, 1], oldest first; n >= 4.
        slowdown (float): ADELE's ``r``. Defaults to 0.9.

    Returns:
        bool: False too when the curve cannot be fitted.
    """
    from scipy.optimize import curve_fit
    y = np.asarray(iou_history, dtype=np.float64)
    t = np.arange(1, len(y) + 1, dtype=np.float64)
    if len(y) < 4 or y.max() <= 0:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            (a, b, c), _ = curve_fit(_iou_curve, t, y, p0=(max(y.max(), 1e-3), 1., 1.),
                                     bounds=([0, 0, 0], [1, 100, 10]), maxfev=2000)
    except (RuntimeError, ValueError):
        return False

    def slope(x):
        return a * b * c * x**(c - 1) * np.exp(-b * x**c)

    first = slope(1.)
    return bool(first > 0 and abs(first - slope(t[-1])) / first > slowdown)


@MODELS.register_module()
class EarlyLearningCorrectionLoss(CrossEntropyLoss):
    """Per-pixel cross-entropy on pseudo masks that corrects their labels during training, adapted
    from ADELE (Liu et al., "Adaptive Early-Learning Correction for Segmentation from Noisy
    Annotations", CVPR 2022).

    Networks fit the correct labels of noisy annotations first and memorise the errors later.
    ADELE watches, per class, the training IoU between the predictions and the noisy labels; when its
    fitted curve flattens (:func:`early_learning_ended`) the class has left early learning, and from
    then on every pixel the model gives that class with probability above ``prob_threshold`` is
    relabelled to it. What was adapted: the IoU is accumulated over ``interval`` training iterations
    (one curve point, in place of one epoch over the training set), from the training batches
    themselves; corrections go only to classes the image's pseudo mask contains (in WSSS these are
    among the image-level labels, so a correction never adds a class the image does not have);
    ADELE's multi-scale consistency regulariser is not used. The curve is tracked per process (no
    synchronisation across GPUs) and kept in the checkpoint (buffers), so a resumed run continues it.

    Args:
        num_classes (int): Number of classes K (the decode head's).
        interval (int): Training iterations per IoU point. Defaults to 25.
        prob_threshold (float): ADELE's tau: the softmax probability above which a pixel is
            relabelled. Defaults to 0.8.
        slowdown (float): ADELE's r (:func:`early_learning_ended`). Defaults to 0.9.
        max_points (int): Length of the stored IoU curve; a class not flagged by then never is.
            Defaults to 200.
        avg_non_ignore (bool): Average over the non-ignored pixels. Defaults to True.
        loss_name (str): Defaults to ``'loss_ce'``.
        **kwargs: Other arguments of mmseg's ``CrossEntropyLoss`` (``loss_weight``, ...).
    """

    def __init__(self, num_classes: int, interval: int = 25, prob_threshold: float = 0.8,
                 slowdown: float = 0.9, max_points: int = 200, avg_non_ignore: bool = True,
                 loss_name: str = 'loss_ce', **kwargs):
        if kwargs.get('use_sigmoid') or kwargs.get('use_mask'):
            raise ValueError('EarlyLearningCorrectionLoss is a softmax cross-entropy.')
        if interval < 1 or not 0 < prob_threshold < 1 or not 0 < slowdown < 1:
            raise ValueError('EarlyLearningCorrectionLoss: need interval >= 1, 0 < prob_threshold < 1 '
                             f'and 0 < slowdown < 1; got {interval}, {prob_threshold}, {slowdown}.')
        super().__init__(avg_non_ignore=avg_non_ignore, loss_name=loss_name, **kwargs)
        self.num_classes = num_classes
        self.interval = interval
        self.prob_threshold = prob_threshold
        self.slowdown = slowdown
        self.register_buffer('correcting', torch.zeros(num_classes, dtype=torch.bool))
        self.register_buffer('iou_history', torch.zeros(max_points, num_classes))
        self.register_buffer('num_points', torch.zeros((), dtype=torch.long))
        self.register_buffer('steps', torch.zeros((), dtype=torch.long))
        self.register_buffer('intersection', torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer('union', torch.zeros(num_classes, dtype=torch.float64))

    def forward(self, cls_score: Tensor, label: Tensor, weight: Tensor = None,
                ignore_index: int = 255, **kwargs) -> Tensor:
        """Cross-entropy against the corrected labels (training) or the labels (otherwise).

        Args:
            cls_score (Tensor): (B, K, H, W) logits.
            label (Tensor): (B, H, W) long pseudo labels, ``ignore_index`` ignored.
            weight (Tensor, optional): (B, H, W) pixel weights.
            ignore_index (int): Defaults to 255.

        Returns:
            Tensor: scalar loss.
        """
        if cls_score.shape[1] != self.num_classes:
            raise ValueError(f'EarlyLearningCorrectionLoss: num_classes={self.num_classes} but the '
                             f'logits have {cls_score.shape[1]} channels.')
        if self.training:
            with torch.no_grad():
                self._track_iou(cls_score.argmax(dim=1), label, ignore_index)
                label = self.correct(cls_score, label, ignore_index)
        return super().forward(cls_score, label, weight=weight, ignore_index=ignore_index, **kwargs)

    def _track_iou(self, pred: Tensor, label: Tensor, ignore_index: int) -> None:
        """Accumulate per-class intersection/union of ``pred`` and ``label`` (B, H, W); every
        ``interval`` steps, store one IoU point and test the classes not yet corrected."""
        valid = label != ignore_index
        k = self.num_classes
        pred_hist = torch.bincount(pred[valid], minlength=k)[:k]
        label_hist = torch.bincount(label[valid], minlength=k)[:k]
        inter = torch.bincount(label[valid & (pred == label)], minlength=k)[:k]
        self.intersection += inter.double()
        self.union += (pred_hist + label_hist - inter).double()
        self.steps += 1
        if int(self.steps) % self.interval or int(self.num_points) >= len(self.iou_history):
            return
        seen = self.union > 0
        iou = torch.where(seen, self.intersection / self.union.clamp(min=1),
                          torch.zeros_like(self.union))
        self.iou_history[int(self.num_points)] = iou.float()
        self.num_points += 1
        self.intersection.zero_()
        self.union.zero_()
        history = self.iou_history[:int(self.num_points)].cpu().numpy()  # (n, K)
        for c in range(k):
            if not self.correcting[c] and early_learning_ended(history[:, c], self.slowdown):
                self.correcting[c] = True

    def correct(self, cls_score: Tensor, label: Tensor, ignore_index: int = 255) -> Tensor:
        """Relabel the pixels whose predicted class is being corrected, is in the image's pseudo
        mask, and has softmax probability above ``prob_threshold``.

        Args:
            cls_score (Tensor): (B, K, H, W) logits.
            label (Tensor): (B, H, W) long labels.
            ignore_index (int): Defaults to 255.

        Returns:
            Tensor: (B, H, W) corrected labels (``label`` itself when nothing is corrected).
        """
        if not self.correcting.any():
            return label
        prob, pred = cls_score.detach().softmax(dim=1).max(dim=1)  # (B, H, W)
        valid = label != ignore_index
        in_mask = torch.zeros(label.shape[0], self.num_classes + 1, dtype=torch.bool,
                              device=label.device)  # (B, K + 1): last column collects ignored pixels
        in_mask.scatter_(1, torch.where(valid, label, self.num_classes).flatten(1), True)
        allowed = self.correcting[pred] & in_mask[:, :-1].gather(1, pred.flatten(1)).view_as(pred)
        return torch.where(allowed & (prob > self.prob_threshold), pred, label)

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, interval={self.interval}, '
                f'prob_threshold={self.prob_threshold}, slowdown={self.slowdown}')
