"""Fusing several systems' scores of the same trials into one calibrated LLR, with a guard.

The fusion is :class:`~gmmspeech.calibration.LinearFusion` (linear logistic regression,
prior-weighted as in BOSARIS), fitted on labelled calibration trials that every system
scored. It is the one home of the fitting and applying that ``gmmspeech fuse`` and the
fusion experiment (:mod:`gmmspeech.pipeline.fusion_stages`) share.

**The guard.** A fusion fitted on some trials can still be worse than the better system
alone on others: with few calibration trials the weights are noisy, and a system whose
calibration scores are over-confident gets too much weight. With ``guard=True`` the
candidates are every system calibrated alone and the fusion of all; each is judged by its
cross-validated Cllr at the prior of the fit (:func:`gmmspeech.metrics.cllr`) on the
calibration trials, split into folds by model (a model's trials are never both fitted and
judged), and the lowest is kept (on a tie the earlier candidate: single systems in the order
given, then the fusion). Only the calibration trials decide: the trials the result is
evaluated on never do. What the guard cannot see is a bias that the calibration trials
share, e.g. scores of speakers a model was trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .calibration import LinearFusion
from .errors import DataError
from .metrics import cllr

log = logging.getLogger(__name__)


def model_folds(model_ids: Sequence[str], n_folds: int) -> np.ndarray:
    """Fold number of each trial: the distinct model ids in sorted order dealt out to
    ``min(n_folds, n_models)`` folds in turn.

    Parameters
    ----------
    model_ids : sequence of str, length n
        The model of each trial.
    n_folds : int

    Returns
    -------
    ndarray of int, shape (n,)
    """
    models = sorted(set(model_ids))
    k = min(int(n_folds), len(models))
    fold = {m: i % k for i, m in enumerate(models)}
    return np.array([fold[m] for m in model_ids], dtype=np.int64)


def cross_validated_llrs(
    scores: np.ndarray, is_target: np.ndarray, folds: np.ndarray, prior: float
) -> np.ndarray:
    """LLRs (n,) of each trial from a :class:`LinearFusion` of ``scores`` (n, m) fitted on
    the trials of the other folds (``folds`` (n,))."""
    out = np.empty(len(is_target))
    for f in np.unique(folds):
        held = folds == f
        fit = LinearFusion(prior).fit(scores[~held], is_target[~held])
        out[held] = fit.transform(scores[held])
    return out


@dataclass
class FusionChoice:
    """A fitted fusion and, with the guard, the candidate it kept.

    Attributes
    ----------
    names : tuple of str
        The systems, in the order of the score columns.
    chosen : tuple of int
        The columns the kept candidate uses (all of them: the fusion).
    model : LinearFusion
        The kept candidate, fitted on all the calibration trials, on the ``chosen`` columns.
    candidates : dict of str to LinearFusion
        Every candidate fitted on all the trials: each system alone (its calibration), and
        the fusion of all under :attr:`fusion_label`.
    cv_cllr : dict of str to float or None
        Candidate -> cross-validated Cllr at ``prior``; None without the guard.
    prior : float
    n_folds : int
        Folds of the cross-validation (0 without the guard).
    n_trials, n_target : int
        Calibration trials, and target trials among them.
    """

    names: tuple[str, ...]
    chosen: tuple[int, ...]
    model: LinearFusion
    candidates: dict[str, LinearFusion]
    cv_cllr: dict[str, float] | None
    prior: float
    n_folds: int = 0
    n_trials: int = 0
    n_target: int = 0

    @property
    def fusion_label(self) -> str:
        """The name of the fusion of every system, ``"a+b"``."""
        return "+".join(self.names)

    @property
    def label(self) -> str:
        """The kept candidate: a system's name, or :attr:`fusion_label`."""
        if len(self.chosen) == len(self.names):
            return self.fusion_label
        return "+".join(self.names[i] for i in self.chosen)

    def transform(self, scores: ArrayLike) -> np.ndarray:
        """LLRs (n,) of the kept candidate from every system's scores (n, n_systems)."""
        x = _matrix(scores, len(self.names))
        return self.model.transform(x[:, list(self.chosen)])

    def apply(self, label: str, scores: ArrayLike) -> np.ndarray:
        """LLRs (n,) of candidate ``label`` from every system's scores (n, n_systems)."""
        x = _matrix(scores, len(self.names))
        cols = list(range(len(self.names))) if label == self.fusion_label else None
        if cols is None:
            cols = [self.names.index(label)]
        return self.candidates[label].transform(x[:, cols])

    def info(self) -> dict[str, Any]:
        """JSON-ready facts: weights and offset of every candidate, the CV figures, the choice."""
        return {
            "systems": list(self.names),
            "prior": self.prior,
            "guard": self.cv_cllr is not None,
            "cv_folds": self.n_folds,
            "trials": self.n_trials,
            "target_trials": self.n_target,
            "chosen": self.label,
            "weights": [float(w) for w in self.model.weights_],
            "offset": float(self.model.offset_),
            "candidates": {
                k: {
                    "weights": [float(w) for w in c.weights_],
                    "offset": float(c.offset_),
                    **({} if self.cv_cllr is None else {"cv_cllr": round(self.cv_cllr[k], 6)}),
                }
                for k, c in self.candidates.items()
            },
        }


def _matrix(scores: ArrayLike, m: int) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != m:
        raise DataError(f"scores: expected (n_trials, {m}) scores, got shape {x.shape}")
    return x


def fit_fusion(
    scores: ArrayLike,
    is_target: ArrayLike,
    names: Sequence[str],
    *,
    prior: float,
    model_ids: Sequence[str] | None = None,
    guard: bool = True,
    cv_folds: int = 5,
) -> FusionChoice:
    """Fit the fusion of ``names`` on labelled trials; with ``guard``, keep the best
    candidate by cross-validated Cllr (module docstring).

    Parameters
    ----------
    scores : array_like, shape (n, n_systems)
        Every system's scores of the same calibration trials.
    is_target : array_like of bool, shape (n,)
    names : sequence of str
        The systems' names (columns of ``scores``).
    prior : float
        The effective target prior of the fit and of the Cllr that judges.
    model_ids : sequence of str, optional
        The model of each trial (the folds); needed with ``guard``.
    guard : bool
    cv_folds : int
        Folds of the cross-validation (at most one per model).

    Raises
    ------
    DataError
        Scores of the wrong shape, trials of one class, or (with ``guard``) fewer than two
        models, or a fold whose other folds lack a class.
    """
    names = tuple(names)
    x = _matrix(scores, len(names))
    t = np.asarray(is_target, dtype=bool)
    candidates = {n: LinearFusion(prior).fit(x[:, [j]], t) for j, n in enumerate(names)}
    everything = tuple(range(len(names)))
    choice = FusionChoice(names, everything, LinearFusion(prior), {}, None, prior)
    candidates[choice.fusion_label] = LinearFusion(prior).fit(x, t)
    choice.candidates = candidates
    choice.n_trials, choice.n_target = len(t), int(t.sum())
    columns = {n: (j,) for j, n in enumerate(names)} | {choice.fusion_label: everything}
    if guard:
        if model_ids is None or len(set(model_ids)) < 2:
            n = 0 if model_ids is None else len(set(model_ids))
            raise DataError(
                f"fusion guard: the calibration trials have {n} model(s); a cross-validation "
                f"by model needs at least 2 (or turn the guard off)"
            )
        folds = model_folds(model_ids, cv_folds)
        choice.n_folds = int(folds.max()) + 1
        choice.cv_cllr = {
            k: cllr(cross_validated_llrs(x[:, list(cols)], t, folds, prior), t, p_target=prior)
            for k, cols in columns.items()
        }
        best = min(choice.cv_cllr, key=lambda k: choice.cv_cllr[k])  # type: ignore[index]
        choice.chosen = columns[best]
        table = ", ".join(f"{k} {v:.4f}" for k, v in choice.cv_cllr.items())
        log.info(
            "fusion guard: cross-validated Cllr at P_tar %g on %d calibration trials "
            "(%d folds by model): %s; keeping %s",
            prior, len(t), choice.n_folds, table, best,
        )  # fmt: skip
    choice.model = candidates[choice.label]
    return choice


__all__ = ["FusionChoice", "cross_validated_llrs", "fit_fusion", "model_folds"]
