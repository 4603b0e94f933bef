"""Fusing several systems' scores of the same trials into one calibrated LLR, with a guard.

The fusion is :class:`~gmmspeech.decisions.calibration.LinearFusion` (linear logistic regression,
prior-weighted as in BOSARIS), fitted on labelled calibration trials that every system
scored. It is the one home of the fitting and applying that ``gmmspeech fuse`` and the
fusion experiment (:mod:`gmmspeech.pipeline.fusion_stages`) share.

**The guard.** A fusion fitted on some trials can still be worse than the better system
alone on others: with few calibration trials the weights are noisy, and a system whose
calibration scores are over-confident gets too much weight. With ``guard=True`` the
candidates are every system calibrated alone and the fusion of all; each is judged by its
cross-validated Cllr at the prior of the fit (:func:`gmmspeech.decisions.metrics.cllr`) on the
calibration trials, split into folds by model (a model's trials are never both fitted and
judged). The choice follows the one-standard-error rule of cross-validation (Hastie,
Tibshirani & Friedman, *The Elements of Statistical Learning*, 7.10): the simplest candidate
whose cross-validated Cllr is within one standard error of the lowest, the standard error
being that of the lowest candidate's Cllr over the folds (``std / sqrt(n_folds)``); a
single system is simpler than the fusion, and among single systems the lower Cllr wins. A
fusion that gains less than the folds' own spread over the best single system is not worth
its extra weights. Only the calibration trials decide: the trials the result is evaluated
on never do. What the guard cannot see is a bias that the calibration trials share, e.g.
scores of speakers a model was trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DataError
from .calibration import LinearFusion
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


def fold_cllrs(
    llrs: np.ndarray, is_target: np.ndarray, folds: np.ndarray, prior: float
) -> np.ndarray:
    """Cllr at ``prior`` of the trials of each fold that holds both classes."""
    out = []
    for f in np.unique(folds):
        t = is_target[folds == f]
        if t.any() and not t.all():
            out.append(cllr(llrs[folds == f], t, p_target=prior))
    return np.array(out)


def one_se_choice(cv: dict[str, float], se: dict[str, float], simpler: Sequence[str]) -> str:
    """The first of ``simpler`` (candidates from simplest) whose ``cv`` is within one ``se``
    of the lowest (module docstring)."""
    best = min(cv, key=lambda k: cv[k])
    return next(k for k in simpler if cv[k] <= cv[best] + se[best])


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
    cv_cllr, cv_se : dict of str to float or None
        Candidate -> cross-validated Cllr at ``prior``, and its standard error over the
        folds; None without the guard.
    prior : float
    n_folds : int
        Folds of the cross-validation (0 without the guard).
    n_trials, n_target : int
        Calibration trials, and target trials among them.
    inputs : list of dict of str to str
        What the fusion was fitted on, one record per system in the order of ``names``
        (:func:`gmmspeech.decisions.fusionfile.input_record`); empty when unknown.
    """

    names: tuple[str, ...]
    chosen: tuple[int, ...]
    model: LinearFusion
    candidates: dict[str, LinearFusion]
    cv_cllr: dict[str, float] | None
    prior: float
    cv_se: dict[str, float] | None = None
    n_folds: int = 0
    n_trials: int = 0
    n_target: int = 0
    inputs: list[dict[str, str]] = field(default_factory=list)

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
                    **(
                        {}
                        if self.cv_cllr is None or self.cv_se is None
                        else {
                            "cv_cllr": round(self.cv_cllr[k], 6),
                            "cv_cllr_se": round(self.cv_se[k], 6),
                        }
                    ),
                }
                for k, c in self.candidates.items()
            },
            **({"inputs": [dict(r) for r in self.inputs]} if self.inputs else {}),
        }


def _matrix(scores: ArrayLike, m: int) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != m:
        raise DataError(f"scores: expected (n_trials, {m}) scores, got shape {x.shape}")
    return x


def _cross_validate(
    x: np.ndarray,
    t: np.ndarray,
    folds: np.ndarray,
    prior: float,
    columns: dict[str, tuple[int, ...]],
) -> tuple[dict[str, float], dict[str, float]]:
    """Candidate -> cross-validated Cllr, and its standard error over the folds."""
    cv, se = {}, {}
    for k, cols in columns.items():
        llr = cross_validated_llrs(x[:, list(cols)], t, folds, prior)
        cv[k] = cllr(llr, t, p_target=prior)
        per_fold = fold_cllrs(llr, t, folds, prior)
        n = per_fold.size
        se[k] = float(per_fold.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return cv, se


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
        cv, se = _cross_validate(x, t, folds, prior, columns)
        choice.cv_cllr, choice.cv_se = cv, se
        singles = sorted(names, key=lambda k: cv[k])
        kept = one_se_choice(cv, se, [*singles, choice.fusion_label])
        choice.chosen = columns[kept]
        table = ", ".join(f"{k} {v:.4f} (se {se[k]:.4f})" for k, v in cv.items())
        log.info(
            "fusion guard: cross-validated Cllr at P_tar %g on %d calibration trials "
            "(%d folds by model): %s; keeping %s (the simplest within one standard error "
            "of the lowest)",
            prior,
            len(t),
            choice.n_folds,
            table,
            kept,
        )
    choice.model = candidates[choice.label]
    if choice.label != choice.fusion_label and choice.cv_cllr is not None:
        cv, se = choice.cv_cllr, choice.cv_se or {}
        best = min(cv, key=lambda k: cv[k])
        log.warning(
            "fusion guard: the fusion's cross-validated Cllr on the calibration trials "
            "(%.4f) is not lower than %s's alone (%.4f) by more than one standard error "
            "(%.4f): keeping %s, calibrated alone",
            cv[choice.fusion_label],
            choice.label,
            cv[choice.label],
            se.get(best, 0.0),
            choice.label,
        )
    return choice


__all__ = [
    "FusionChoice",
    "cross_validated_llrs",
    "fit_fusion",
    "fold_cllrs",
    "model_folds",
    "one_se_choice",
]
