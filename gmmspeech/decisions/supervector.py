"""GMM supervectors with a linear classifier (Campbell, Sturim & Reynolds 2006).

Each file's MAP-adapted means (relevance factor ``r``) are stacked into one vector, each
component scaled by the UBM's ``sqrt(w_k) / sigma_k``: the inner product of two such vectors
is the KL-divergence kernel. With the UBM's centred statistics ``N_k`` and
``F_k = sum_t g_tk (x_t - mu_k)`` the adapted offset is ``mu'_k - mu_k = F_k / (N_k + r)``, so
the supervector is ``sqrt(w_k) F_k / ((N_k + r) sigma_k)`` (the offset, not the mean: a linear
classifier with an intercept is unchanged by the constant ``mu_k``). A scikit-learn linear
classifier is then trained on the supervectors, its regularisation chosen by
cross-validation over groups of the training files only (:func:`fit_linear`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..engine import Engine, LocalEngine
from ..errors import DataError
from ..features.store import read_utterances
from ..ivector.stats import utterance_stats
from ..mixture.gmm import DiagGMM

log = logging.getLogger(__name__)

#: The linear classifiers :func:`fit_linear` offers.
LINEAR_CLASSIFIERS = ("logistic", "linear_svc")


def kl_supervectors(ubm: DiagGMM, zeroth: np.ndarray, first: np.ndarray, r: float) -> np.ndarray:
    """KL-kernel supervectors from centred Baum-Welch statistics.

    Parameters
    ----------
    ubm : DiagGMM
        K components, D features (the model the statistics were taken on).
    zeroth : ndarray, shape (n, K)
        Counts ``N_k`` per file.
    first : ndarray, shape (n, K, D)
        First-order statistics centred on the UBM means.
    r : float
        MAP relevance factor (> 0).

    Returns
    -------
    ndarray, shape (n, K * D), float32
        ``sqrt(w_k) (mu'_k - mu_k) / sigma_k`` per component, components in order.
    """
    n = np.asarray(zeroth, dtype=np.float64)
    f = np.asarray(first, dtype=np.float64)
    k, d = ubm.n_components, ubm.n_features
    if n.ndim != 2 or n.shape[1] != k or f.shape != (n.shape[0], k, d):
        raise DataError(
            f"statistics: expected zeroth (n, {k}) and first (n, {k}, {d}), got "
            f"{n.shape} and {f.shape}"
        )
    if not r > 0:
        raise DataError(f"relevance_factor: must be > 0, got {r}")
    scale = np.sqrt(ubm.weights)[:, None] / np.sqrt(ubm.variances)  # (K, D)
    sv = f / (n[:, :, None] + float(r)) * scale[None]
    return sv.reshape(n.shape[0], k * d).astype(np.float32)


def _supervector_task(item: tuple[str, list[str]], shared: tuple[DiagGMM, float]) -> np.ndarray:
    """Map task: the supervectors of a batch of files of a feature store."""
    ubm, r = shared
    path, ids = item
    # only this batch's datasets, as the i-vector statistics task reads them: opening a
    # FeatureStore per task reads every utterance's index entry, quadratic in the store
    stats = [utterance_stats(ubm, x) for x in read_utterances(path, ids)]
    zeroth = np.stack([s.zeroth for s in stats])
    first = np.stack([s.first for s in stats])
    return kl_supervectors(ubm, zeroth, first, r)


def store_supervectors(
    ubm: DiagGMM,
    store_path: str,
    utt_ids: Sequence[str],
    relevance_factor: float,
    *,
    engine: Engine | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """Supervectors of ``utt_ids`` of the feature store at ``store_path``, on an engine.

    Workers open the store themselves; the result is (n, K * D) float32 in the order of
    ``utt_ids`` (the same numbers on every engine).
    """
    ids = list(utt_ids)
    if not ids:
        raise DataError(f"{store_path}: no files to make supervectors of")
    items = [(str(store_path), ids[s : s + batch_size]) for s in range(0, len(ids), batch_size)]
    eng = engine or LocalEngine()
    return np.concatenate(eng.map(_supervector_task, items, (ubm, float(relevance_factor))))


def span_coordinates(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Coordinates of ``train`` and ``others`` in an orthonormal basis of the span of the
    ``train`` rows (plus the part of ``others`` outside it dropped).

    An L2-regularised linear model trained on rows of ``train`` has its weight vector in
    that span (the representer theorem), so it gives the same decisions on these
    coordinates, whose dimension is at most ``len(train)`` instead of ``K * D``: the
    classifier and its cross-validation then cost O(n^2) per file, not O(n K D).

    Parameters
    ----------
    train : ndarray, shape (n, d)
    *others : ndarray, shape (m, d)

    Returns
    -------
    list of ndarray
        ``[train (n, r), other (m, r), ...]`` float64, ``r`` the numerical rank of ``train``.
    """
    x = np.asarray(train, dtype=np.float64)
    gram = x @ x.T
    vals, vecs = np.linalg.eigh(gram)
    keep = vals > max(float(vals[-1]), 0.0) * 1e-10 if vals.size else np.zeros(0, bool)
    if not keep.any():
        raise DataError("supervectors: every training supervector is zero")
    # basis V = x' U / sqrt(lambda), orthonormal columns spanning the rows of x
    basis = (x.T @ vecs[:, keep]) / np.sqrt(vals[keep])
    return [x @ basis] + [np.asarray(o, dtype=np.float64) @ basis for o in others]


def make_linear(classifier: str, c: float, random_state: int = 0) -> Any:
    """An unfitted scikit-learn linear classifier with inverse regularisation ``c``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    if classifier == "logistic":
        return LogisticRegression(C=c, max_iter=2000, random_state=random_state)
    if classifier == "linear_svc":
        return LinearSVC(C=c, max_iter=20000, random_state=random_state)
    raise DataError(f"classifier: must be one of {LINEAR_CLASSIFIERS}, got {classifier!r}")


def fit_linear(
    X: np.ndarray,
    y: Sequence[str],
    groups: Sequence[int],
    *,
    classifier: str = "logistic",
    c_grid: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0),
    random_state: int = 0,
) -> tuple[Any, float, dict[float, float]]:
    """A linear classifier on ``(X, y)``, its ``C`` chosen by leave-one-group-out accuracy.

    The groups are the training folds, so ``C`` is chosen on the training data only and,
    when folds are by speaker, on held-out speakers. Ties go to the smaller ``C`` (stronger
    regularisation); with one group only the middle of the grid is used. The classifier is
    then refitted on all of ``(X, y)`` with that ``C``.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    y : sequence of str, length n
    groups : sequence of int, length n
    classifier : {"logistic", "linear_svc"}
    c_grid : sequence of float
    random_state : int

    Returns
    -------
    model : fitted scikit-learn estimator
    c : float
    scores : dict of float to float
        Mean inner accuracy per ``C`` (empty with one group).
    """
    yv, gv = np.asarray(y), np.asarray(groups)
    grid = sorted(float(c) for c in c_grid)
    if not grid:
        raise DataError("c_grid: needs at least one value")
    scores: dict[float, float] = {}
    if len(np.unique(gv)) < 2:
        c = grid[len(grid) // 2]
    else:
        scores = {c: _inner_accuracy(X, yv, gv, classifier, c, random_state) for c in grid}
        best = max(scores.values())
        c = min(c for c, s in scores.items() if s == best)
    model = make_linear(classifier, c, random_state).fit(X, yv)
    return model, c, scores


def _inner_accuracy(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, classifier: str, c: float, seed: int
) -> float:
    """Accuracy pooled over leave-one-group-out folds (folds with one class are skipped)."""
    correct, total = 0, 0
    for g in np.unique(groups):
        tr, te = groups != g, groups == g
        if len(np.unique(y[tr])) < 2:
            continue
        model = make_linear(classifier, c, seed).fit(X[tr], y[tr])
        correct += int((model.predict(X[te]) == y[te]).sum())
        total += int(te.sum())
    return correct / max(total, 1)
