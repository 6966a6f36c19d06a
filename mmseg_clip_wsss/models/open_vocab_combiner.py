"""Open vocabulary from two sources: a trained head for the names it was trained on, a dense zero-shot
map for the names it never saw, calibrated against each other."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmseg_clip_wsss.registry import MODELS

__all__ = ['OpenVocabCombiner', 'fit_platt']

#: The two score sources of :class:`OpenVocabCombiner`.
SOURCES = ('head', 'dense')
_FILE_KIND = 'open_vocab_calibration'


def fit_platt(scores: Tensor, targets: Tensor, steps: int = 100) -> Tuple[float, float]:
    """Platt scaling: the ``scale`` and ``offset`` of ``sigmoid(scale * score + offset)`` that best
    predict binary targets (least binary cross-entropy, L-BFGS from scale 1, offset 0).

    Paper: J. Platt, "Probabilistic Outputs for Support Vector Machines and Comparisons to Regularized
    Likelihood Methods", 1999 (the sigmoid fit of a classifier's scores on held-out data).

    Args:
        scores (Tensor): (N, ) scores of one source.
        targets (Tensor): (N, ) 0/1 (the pixel is of the scored class).
        steps (int): L-BFGS iterations. Defaults to 100.

    Returns:
        tuple[float, float]: ``(scale, offset)``.

    Raises:
        ValueError: no scores, or targets all 0 or all 1 (nothing to separate).
    """
    scores, targets = scores.double().flatten(), targets.double().flatten()
    if scores.numel() == 0 or targets.min() == targets.max():
        raise ValueError(f'fit_platt: needs scores of both positive and negative pixels (got {scores.numel()} '
                         f'scores, {int(targets.sum())} positive): fit on a split whose GT masks hold the '
                         'scored classes.')
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=steps, line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(params[0] * scores + params[1], targets)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return float(params[0].detach()), float(params[1].detach())


@MODELS.register_module()
class OpenVocabCombiner(nn.Module):
    """Per pixel, one calibrated probability for every asked name, each from the source that knows it.

    The rule:

    - a name of ``trained_names`` (background included) is scored by the **head**: its row of the
      head's score maps (the head asked for the trained names only, e.g. a stage-1 model's CAMs with
      the constant background row of ``test_cfg.bg_threshold``);
    - any other name by the **dense** zero-shot map (e.g. :class:`TrainingFreeDenseCLIP` asked for
      every name: its class probability, 0 where a background word wins);
    - each source's scores go through its own Platt sigmoid ``p = sigmoid(scale * score + offset)``
      (:func:`fit_platt`), so that both read as "probability that the pixel is of this class";
    - the label of a pixel is the name of highest calibrated probability.

    What is fitted where: :meth:`fit` takes both sources' scores on a split with GT masks of the
    trained classes (the demo fits on ``val``, which the head never trained on, and scores the
    ``openvocab`` split). The head's sigmoid is fitted on its rows of the trained names (background
    included); the dense sigmoid on the dense rows of the trained *foreground* names (the fit split
    holds no unseen class) and applied unchanged to the unseen names: the dense map scores every name
    alike, so its calibration carries over to names the head never saw. Nothing is fitted on the
    scored split. :meth:`save` / :meth:`load` keep the fit with the run (a JSON file that names the
    trained names, the dense mode and the fit split); a file of another class list or dense mode is
    refused.

    Args:
        trained_names (Sequence[str]): Names the head was trained on, in the order of its rows
            (background first in the project's class lists).
        dense_mode (str): The dense zero-shot mode of the dense source (recorded in the calibration
            file and checked when one is loaded). Defaults to 'maskclip'.
        calibration (str, optional): A calibration file written by :meth:`save`, loaded now.
            Defaults to None (fit with :meth:`fit`).
        max_fit_pixels (int): Pixels per source drawn (seeded) from the fit split for the sigmoid fits.
            Defaults to 200000.

    Raises:
        ValueError: ``trained_names`` empty or with a name twice; a calibration file that does not fit
            (see :meth:`load`).
        FileNotFoundError: ``calibration`` names no file.
    """

    def __init__(self, trained_names: Sequence[str], dense_mode: str = 'maskclip',
                 calibration: Optional[str] = None, max_fit_pixels: int = 200000):
        super().__init__()
        if len(set(trained_names)) != len(trained_names) or not trained_names:
            raise ValueError(f'OpenVocabCombiner: trained_names {list(trained_names)} must be a non-empty list '
                             'of distinct names (the head\'s class list).')
        self.trained_names = list(trained_names)
        self.dense_mode = dense_mode
        self.max_fit_pixels = int(max_fit_pixels)
        self.params: Optional[Dict[str, Dict[str, float]]] = None
        self.fit_info: Dict = {}
        if calibration is not None:
            self.load(calibration)

    def sources(self, names: Sequence[str]) -> List[str]:
        """``'head'`` or ``'dense'`` for each name: the source that scores it."""
        return ['head' if n in self.trained_names else 'dense' for n in names]

    def _check_inputs(self, head_scores: Tensor, dense_scores: Tensor, names: Sequence[str]) -> None:
        if head_scores.dim() != 4 or head_scores.shape[1] != len(self.trained_names):
            raise ValueError(f'OpenVocabCombiner: head scores must be (B, {len(self.trained_names)}, H, W) '
                             f'(one row per trained name), got {tuple(head_scores.shape)}.')
        if dense_scores.dim() != 4 or dense_scores.shape[1] != len(names):
            raise ValueError(f'OpenVocabCombiner: dense scores must be (B, {len(names)}, H, W) (one row per '
                             f'asked name), got {tuple(dense_scores.shape)}.')
        if head_scores.shape[0] != dense_scores.shape[0] or head_scores.shape[2:] != dense_scores.shape[2:]:
            raise ValueError(f'OpenVocabCombiner: head scores {tuple(head_scores.shape)} and dense scores '
                             f'{tuple(dense_scores.shape)} differ in batch or size: resize both to the image.')

    def _calibrated(self, scores: Tensor, source: str) -> Tensor:
        p = self.params[source]
        return torch.sigmoid(p['scale'] * scores.float() + p['offset'])

    def forward(self, head_scores: Tensor, dense_scores: Tensor, names: Sequence[str]) -> Tensor:
        """Calibrated probabilities of every asked name.

        Args:
            head_scores (Tensor): (B, S, H, W) the head's scores of ``trained_names`` (S of them).
            dense_scores (Tensor): (B, K, H, W) the dense map's scores of ``names``.
            names (Sequence[str]): The K asked names; trained ones take the head's row of that name.

        Returns:
            Tensor: (B, K, H, W) in (0, 1); the prediction is its argmax over K.

        Raises:
            RuntimeError: no calibration fitted or loaded.
            ValueError: shapes that do not match the names.
        """
        if self.params is None:
            raise RuntimeError('OpenVocabCombiner: no calibration: call fit() on a split other than the one '
                               'scored, or give calibration=FILE (written by save()).')
        self._check_inputs(head_scores, dense_scores, names)
        head = self._calibrated(head_scores, 'head')
        dense = self._calibrated(dense_scores, 'dense')
        rows = [head[:, self.trained_names.index(n)] if s == 'head' else dense[:, k]
                for k, (n, s) in enumerate(zip(names, self.sources(names)))]
        return torch.stack(rows, dim=1)

    def predict(self, head_scores: Tensor, dense_scores: Tensor, names: Sequence[str]) -> Tensor:
        """(B, H, W) indices into ``names``: the argmax of :meth:`forward`."""
        return self.forward(head_scores, dense_scores, names).argmax(dim=1)

    def _sample(self, scores: Tensor, targets: Tensor, seed: int) -> Tuple[Tensor, Tensor]:
        if scores.numel() <= self.max_fit_pixels:
            return scores, targets
        g = torch.Generator().manual_seed(seed)
        keep = torch.randperm(scores.numel(), generator=g)[:self.max_fit_pixels]
        return scores[keep], targets[keep]

    def fit(self, head_scores: Sequence[Tensor], dense_scores: Sequence[Tensor], gts: Sequence[Tensor],
            names: Sequence[str], fit_split: str = '') -> Dict[str, Dict[str, float]]:
        """Fit both sigmoids on a split with GT masks of the trained classes (not the scored split).

        Args:
            head_scores (Sequence[Tensor]): Per image (S, H, W), the head's scores of ``trained_names``.
            dense_scores (Sequence[Tensor]): Per image (K, H, W), the dense map's scores of ``names``.
            gts (Sequence[Tensor]): Per image (H, W) GT indices into ``names`` (255 ignored).
            names (Sequence[str]): The names of the dense rows and the GT indices; must hold every
                trained name.
            fit_split (str): Name of the fit split, recorded in the calibration file.

        Returns:
            dict: ``{'head': {'scale', 'offset'}, 'dense': {...}}``, also kept for :meth:`forward`.
        """
        missing = [n for n in self.trained_names if n not in names]
        if missing:
            raise ValueError(f'OpenVocabCombiner.fit: the fit names lack the trained names {missing}: the '
                             'fit split must be scored over every trained name.')
        head_rows = [names.index(n) for n in self.trained_names]
        fg = [names.index(n) for n in self.trained_names if n != 'background']
        feats = {s: ([], []) for s in SOURCES}
        for head, dense, gt in zip(head_scores, dense_scores, gts):
            valid = gt != 255
            for source, scores, rows in (('head', head, head_rows), ('dense', dense[fg], fg)):
                feats[source][0].append(scores[:, valid].flatten().float())
                feats[source][1].append(torch.stack([gt[valid] == r for r in rows]).flatten())
        self.params = {}
        for i, source in enumerate(SOURCES):
            scores, targets = self._sample(torch.cat(feats[source][0]), torch.cat(feats[source][1]), i)
            scale, offset = fit_platt(scores, targets)
            self.params[source] = dict(scale=round(scale, 6), offset=round(offset, 6))
        self.fit_info = dict(fit_split=fit_split, fit_images=len(gts))
        return self.params

    def save(self, path: str) -> None:
        """Write the fitted calibration (with the trained names, dense mode and fit split) as JSON."""
        if self.params is None:
            raise RuntimeError('OpenVocabCombiner.save: nothing fitted: call fit() first.')
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(dict(kind=_FILE_KIND, trained_names=self.trained_names, dense_mode=self.dense_mode,
                           params=self.params, **self.fit_info), f, indent=2)

    def load(self, path: str) -> None:
        """Read a calibration written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a calibration file, or one fitted for other trained names or another
                dense mode (the message names the file, both values and the fix).
        """
        if not osp.isfile(path):
            raise FileNotFoundError(f'OpenVocabCombiner: calibration file {path} not found: fit one first '
                                    '(python -m mmseg_clip_wsss.cli.open_vocab ... --combine CONFIG '
                                    f'--calibration {path} fits and writes it).')
        refit = f'delete {path} (or give another --calibration path) to fit a new one on the fit split'
        try:
            with open(path) as f:
                state = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f'OpenVocabCombiner: {path} is not JSON ({err}): {refit}.') from None
        if not isinstance(state, dict) or state.get('kind') != _FILE_KIND or \
                any(s not in state.get('params', {}) for s in SOURCES):
            raise ValueError(f'OpenVocabCombiner: {path} is not an open-vocabulary calibration file (no '
                             f"kind={_FILE_KIND!r} with head and dense params): {refit}.")
        if state.get('trained_names') != self.trained_names:
            raise ValueError(f'OpenVocabCombiner: {path} was fitted for the trained names '
                             f"{state.get('trained_names')}, this head has {self.trained_names}: {refit}.")
        if state.get('dense_mode') != self.dense_mode:
            raise ValueError(f"OpenVocabCombiner: {path} was fitted for dense_mode {state.get('dense_mode')!r}, "
                             f'this run uses {self.dense_mode!r}: {refit}.')
        self.params = {s: dict(scale=float(state['params'][s]['scale']),
                               offset=float(state['params'][s]['offset'])) for s in SOURCES}
        self.fit_info = dict(fit_split=state.get('fit_split', ''), fit_images=state.get('fit_images', 0))

    def extra_repr(self) -> str:
        return f'trained_names={self.trained_names}, dense_mode={self.dense_mode!r}, params={self.params}'
