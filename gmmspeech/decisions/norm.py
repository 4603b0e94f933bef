"""Score normalisation with a cohort: Z-, T-, ZT-, S-norm and adaptive S-norm.

Notation, for a trial of model ``m`` against test utterance ``t`` with raw score ``s``:

* ``model_cohort`` (M, Nu): model ``m`` scored against Nu cohort (impostor) *utterances*;
  gives the Z-norm statistics ``mu_z[m], sd_z[m]``.
* ``test_cohort`` (T, Nm): test utterance ``t`` scored against Nm cohort *models*; gives the
  T-norm statistics ``mu_t[t], sd_t[t]``.
* ``cohort_cohort`` (Nm, Nu): cohort models against cohort utterances, for ZT-norm (the
  T-norm cohort scores are Z-normalised with it first).

Definitions (``sd`` is the population standard deviation; NaN cohort entries, e.g.
same-speaker pairs, are ignored):

* Z-norm   ``(s - mu_z[m]) / sd_z[m]``
* T-norm   ``(s - mu_t[t]) / sd_t[t]``
* ZT-norm  Z-norm ``s`` and every ``test_cohort[t, j]`` (with cohort model ``j``'s Z-norm
  statistics from ``cohort_cohort[j]``), then T-norm the former with the latter
* S-norm   ``0.5 (Z-norm + T-norm)``
* adaptive S-norm  as S-norm, but each side's statistics come from only its ``top_n``
  highest cohort scores (Matejka et al. 2017).

Each function takes the trial scores (n,) and the integer positions of each trial's model
(``model_index``, rows of ``model_cohort``) and test utterance (``test_index``, rows of
``test_cohort``). The cohort score matrices are built by :mod:`gmmspeech.decisions.cohort`
from any system's score function.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import ArrayLike

from ..config.sections import NORMS
from ..errors import DataError

log = logging.getLogger(__name__)

#: The methods themselves (``auto`` is a choice among them: :func:`~.heldout.choose_norm`).
METHODS = tuple(m for m in NORMS if m != "auto")


def _stats(cohort: ArrayLike, name: str, top_n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(cohort, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] == 0:
        raise DataError(f"{name}: expected a 2-D array (rows, cohort size), got shape {c.shape}")
    if top_n is not None:
        if int(top_n) < 1:
            raise DataError(f"top_n: must be >= 1, got {top_n}")
        n = min(int(top_n), c.shape[1])
        # NaN (excluded) entries sort last: replace with -inf for the selection
        filled = np.where(np.isnan(c), -np.inf, c)
        top = -np.sort(-filled, axis=1)[:, :n]
        c = np.where(np.isinf(top), np.nan, top)
    valid = (~np.isnan(c)).sum(axis=1)
    if (valid < 2).any():
        row = int(np.flatnonzero(valid < 2)[0])
        raise DataError(
            f"{name}: row {row} has {int(valid[row])} usable cohort score(s); need at least 2 "
            f"(use a larger cohort)"
        )
    mu = np.nanmean(c, axis=1)
    sd = np.nanstd(c, axis=1)
    if (sd <= 0).any():
        row = int(np.flatnonzero(sd <= 0)[0])
        raise DataError(f"{name}: row {row} has identical cohort scores (std 0); cannot normalise")
    return mu, sd


def _index(idx: ArrayLike, n_rows: int, n_trials: int, name: str) -> np.ndarray:
    i = np.asarray(idx)
    if i.shape != (n_trials,) or i.dtype.kind not in "iu":
        raise DataError(f"{name}: expected {n_trials} integer positions, got {i.shape} {i.dtype}")
    if n_trials and (i.min() < 0 or i.max() >= n_rows):
        raise DataError(f"{name}: positions must be in [0, {n_rows}), got {i.min()}..{i.max()}")
    return i


def znorm(scores: ArrayLike, model_cohort: ArrayLike, model_index: ArrayLike) -> np.ndarray:
    """Z-norm: ``(s - mean) / std`` of the trial's model against the cohort utterances.

    Parameters
    ----------
    scores : array-like, shape (n,)
    model_cohort : array-like, shape (M, Nu)
    model_index : array-like of int, shape (n,)

    Returns
    -------
    ndarray, shape (n,)

    Examples
    --------
    A score of 3 against a model whose cohort scores are 0, 1 and 2:

    >>> from gmmspeech import znorm
    >>> cohort = np.array([[0.0, 1.0, 2.0]])
    >>> # the standard deviation of the cohort scores, ddof=0
    >>> bool(np.isclose(znorm([3.0], cohort, [0])[0], (3.0 - 1.0) / cohort.std()))
    True
    """
    s = np.asarray(scores, dtype=np.float64)
    mu, sd = _stats(model_cohort, "model_cohort")
    i = _index(model_index, mu.size, s.size, "model_index")
    return (s - mu[i]) / sd[i]


def tnorm(scores: ArrayLike, test_cohort: ArrayLike, test_index: ArrayLike) -> np.ndarray:
    """T-norm: ``(s - mean) / std`` of the trial's test utterance against the cohort models.

    ``test_cohort`` has shape (T, Nm); ``test_index`` (n,) picks its rows.

    Examples
    --------
    The same with the test utterance's scores against cohort models (the standard deviation
    is that of the cohort scores, ``ddof=0``):

    >>> from gmmspeech import tnorm
    >>> cohort = np.array([[-1.0, 0.0, 1.0], [10.0, 11.0, 12.0]])
    >>> s = tnorm([2.0, 12.0], cohort, [0, 1])
    >>> bool(np.allclose(s, [2.0 / cohort[0].std(), 1.0 / cohort[1].std()]))
    True
    """
    s = np.asarray(scores, dtype=np.float64)
    mu, sd = _stats(test_cohort, "test_cohort")
    i = _index(test_index, mu.size, s.size, "test_index")
    return (s - mu[i]) / sd[i]


def ztnorm(
    scores: ArrayLike,
    model_cohort: ArrayLike,
    test_cohort: ArrayLike,
    cohort_cohort: ArrayLike,
    model_index: ArrayLike,
    test_index: ArrayLike,
) -> np.ndarray:
    """ZT-norm: Z-norm, then T-norm with Z-normalised cohort-model scores.

    ``cohort_cohort`` (Nm, Nu) holds the cohort models against the cohort utterances.

    Examples
    --------
    Written out: Z-norm the score; Z-norm the cohort models' scores of the test utterance
    with each cohort model's own statistics (``cohort_cohort``); T-norm the first by the
    second:

    >>> from gmmspeech import znorm, ztnorm
    >>> model_cohort = np.array([[0.0, 1.0, 2.0]])
    >>> cohort_cohort = np.array([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    >>> test_cohort = np.array([[0.0, 2.0]])
    >>> s = ztnorm([3.0], model_cohort, test_cohort, cohort_cohort, [0], [0])
    >>> z = znorm([3.0], model_cohort, [0])[0]
    >>> zt = (test_cohort[0] - cohort_cohort.mean(1)) / cohort_cohort.std(1)
    >>> bool(np.isclose(s[0], (z - zt.mean()) / zt.std()))
    True
    """
    z = znorm(scores, model_cohort, model_index)
    tc = np.asarray(test_cohort, dtype=np.float64)
    mu_c, sd_c = _stats(cohort_cohort, "cohort_cohort")
    if tc.ndim != 2 or tc.shape[1] != mu_c.size:
        raise DataError(
            f"test_cohort: expected {mu_c.size} columns (one per cohort model, like the rows "
            f"of cohort_cohort), got shape {tc.shape}"
        )
    return tnorm(z, (tc - mu_c) / sd_c, test_index)


def snorm(
    scores: ArrayLike,
    model_cohort: ArrayLike,
    test_cohort: ArrayLike,
    model_index: ArrayLike,
    test_index: ArrayLike,
    *,
    top_n: int | None = None,
) -> np.ndarray:
    """Symmetric normalisation ``0.5 (Z-norm + T-norm)``; adaptive when ``top_n`` is given.

    Examples
    --------
    The mean of the Z-normalised and T-normalised scores (standard deviations with ``ddof=0``):

    >>> from gmmspeech import snorm
    >>> model_cohort, test_cohort = np.array([[0.0, 1.0, 2.0]]), np.array([[-1.0, 1.0]])
    >>> s = snorm([3.0], model_cohort, test_cohort, [0], [0])
    >>> z, t = (3.0 - 1.0) / model_cohort.std(), (3.0 - 0.0) / test_cohort.std()
    >>> bool(np.isclose(s[0], 0.5 * (z + t)))
    True
    """
    s = np.asarray(scores, dtype=np.float64)
    mu_z, sd_z = _stats(model_cohort, "model_cohort", top_n)
    mu_t, sd_t = _stats(test_cohort, "test_cohort", top_n)
    i = _index(model_index, mu_z.size, s.size, "model_index")
    j = _index(test_index, mu_t.size, s.size, "test_index")
    return 0.5 * ((s - mu_z[i]) / sd_z[i] + (s - mu_t[j]) / sd_t[j])


def adaptive_snorm(
    scores: ArrayLike,
    model_cohort: ArrayLike,
    test_cohort: ArrayLike,
    model_index: ArrayLike,
    test_index: ArrayLike,
    *,
    top_n: int = 200,
) -> np.ndarray:
    """Adaptive S-norm: S-norm with each side's ``top_n`` highest cohort scores.

    Examples
    --------
    Only each side's ``top_n`` highest cohort scores count:

    >>> from gmmspeech import adaptive_snorm
    >>> model_cohort, test_cohort = np.array([[-50.0, 0.0, 2.0]]), np.array([[-9.0, -1.0, 1.0]])
    >>> s = adaptive_snorm([3.0], model_cohort, test_cohort, [0], [0], top_n=2)
    >>> z, t = (3.0 - 1.0) / np.std([0.0, 2.0]), (3.0 - 0.0) / np.std([-1.0, 1.0])
    >>> bool(np.isclose(s[0], 0.5 * (z + t)))
    True
    """
    return snorm(scores, model_cohort, test_cohort, model_index, test_index, top_n=top_n)


def normalize(
    method: str,
    scores: ArrayLike,
    *,
    model_index: ArrayLike,
    test_index: ArrayLike,
    model_cohort: ArrayLike | None = None,
    test_cohort: ArrayLike | None = None,
    cohort_cohort: ArrayLike | None = None,
    top_n: int = 200,
) -> np.ndarray:
    """Dispatch on ``method`` in ``{"none", "z", "t", "zt", "s", "as"}``."""
    if method not in METHODS:
        raise DataError(f"norm: expected one of {', '.join(METHODS)}, got {method!r}")
    if method == "none":
        return np.asarray(scores, dtype=np.float64).copy()
    if method == "z":
        return znorm(scores, _given(model_cohort, "model_cohort", method), model_index)
    if method == "t":
        return tnorm(scores, _given(test_cohort, "test_cohort", method), test_index)
    mc = _given(model_cohort, "model_cohort", method)
    tc = _given(test_cohort, "test_cohort", method)
    if method == "zt":
        cc = _given(cohort_cohort, "cohort_cohort", method)
        return ztnorm(scores, mc, tc, cc, model_index, test_index)
    if method == "s":
        return snorm(scores, mc, tc, model_index, test_index)
    return adaptive_snorm(scores, mc, tc, model_index, test_index, top_n=top_n)


def _given(cohort: ArrayLike | None, name: str, method: str) -> ArrayLike:
    if cohort is None:
        raise DataError(f"norm {method!r}: needs {name} (cohort scores), got None")
    return cohort


_LOGGED_TOP_N: set[tuple[int, int, int]] = set()


def log_top_n(top_n: int, n_models: int, n_utts: int) -> None:
    """Say once per process and cohort that adaptive S-norm keeps fewer than ``top_n``."""
    key = (top_n, n_models, n_utts)
    if top_n > min(n_models, n_utts) and key not in _LOGGED_TOP_N:
        _LOGGED_TOP_N.add(key)
        log.info(
            "adaptive S-norm: top_n %d exceeds the cohort (%d models, %d utterances); "
            "each side uses all its cohort scores up to top_n",
            top_n,
            n_models,
            n_utts,
        )


#: Z-, T- and ZT-side cohort matrices (None where the method needs none).
CohortScores = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]
