"""Verification and identification metrics.

Conventions: a trial is *accepted* when its score is ``>= threshold``;
``P_miss(t)`` is the fraction of target scores ``< t`` and ``P_fa(t)`` the fraction of
non-target scores ``>= t``.

**EER method: the ROC convex hull (ROCCH-EER, as in the BOSARIS toolkit).** The hull is found
by the pool-adjacent-violators algorithm on the target labels sorted by score (tied scores are
always pooled together, since no threshold can separate them), and the EER is the point where
the hull crosses ``P_miss = P_fa``. Why the hull rather than interpolating the empirical step
curve: (i) it is uniquely defined, whereas interpolating a step curve depends on how steps
and ties are joined; (ii) every point of the hull is reachable by a (randomised) threshold, so
it is the error rate of the best calibration of the scores; (iii) it is consistent with
minDCF (attained on hull vertices) and min Cllr (computed from the same PAV): the ROCCH-EER
equals the largest, over the target prior, of the minimum Bayes error rate. On small or
coarse score sets it can be lower than the step-curve crossing (e.g. targets {1, 3} vs
non-targets {0, 2}: hull EER 0.25, step-curve crossing 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DataError


def _split(scores: ArrayLike, is_target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    t = np.asarray(is_target).ravel()
    if s.shape != t.shape:
        raise DataError(
            f"scores and is_target: expected the same length, got {s.shape[0]} and {t.shape[0]}"
        )
    if t.dtype.kind not in "bui":
        raise DataError(f"is_target: expected booleans or 0/1, got dtype {t.dtype}")
    t = t.astype(bool)
    if not np.isfinite(s).all():
        raise DataError(f"scores: {int((~np.isfinite(s)).sum())} value(s) are NaN or infinite")
    if t.all() or not t.any():
        raise DataError(
            f"is_target: need both target and non-target trials, got {int(t.sum())} targets "
            f"and {int((~t).sum())} non-targets"
        )
    return s, t


def det_curve(scores: ArrayLike, is_target: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical miss and false-alarm rates at every distinct threshold.

    Parameters
    ----------
    scores : array-like, shape (n,)
    is_target : array-like of bool, shape (n,)

    Returns
    -------
    p_miss, p_fa : ndarray, shape (m + 1,)
        At thresholds ``-inf`` (accept all: ``p_miss = 0, p_fa = 1``), then just above each
        of the ``m`` distinct scores in increasing order (the last rejects everything).
    thresholds : ndarray, shape (m + 1,)
        ``-inf`` then the distinct scores; the point ``i >= 1`` rejects scores ``<=
        thresholds[i]``.

    Examples
    --------
    >>> from gmmspeech import det_curve
    >>> p_miss, p_fa, thr = det_curve([0.1, 0.4, 0.6, 0.9], [False, True, False, True])
    >>> p_miss.tolist(), p_fa.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [1.0, 0.5, 0.5, 0.0, 0.0])
    """
    s, t = _split(scores, is_target)
    order = np.argsort(s, kind="stable")
    s, t = s[order], t[order]
    uniq, start = np.unique(s, return_index=True)
    ends = np.append(start[1:], s.size)
    cum_t = np.concatenate([[0], np.cumsum(t)])
    n_t, n_n = int(t.sum()), int((~t).sum())
    tar_below = cum_t[ends]  # targets with score <= uniq[i]
    non_below = ends - tar_below
    p_miss = np.concatenate([[0.0], tar_below / n_t])
    p_fa = np.concatenate([[1.0], 1.0 - non_below / n_n])
    return p_miss, p_fa, np.concatenate([[-np.inf], uniq])


def _pav(y: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: non-decreasing fit. Returns (block values, block sizes)."""
    w = np.ones_like(y, dtype=np.float64) if w is None else w
    vals: list[float] = []
    wts: list[float] = []
    sizes: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist(), strict=True):
        vals.append(yi)
        wts.append(wi)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] >= vals[-1]:
            v2, w2, n2 = vals.pop(), wts.pop(), sizes.pop()
            tw = wts[-1] + w2
            vals[-1] = (vals[-1] * wts[-1] + v2 * w2) / tw
            wts[-1] = tw
            sizes[-1] += n2
    return np.array(vals), np.array(sizes, dtype=np.int64)


def _sorted_for_pav(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Target labels sorted by score, targets first among ties (so ties always pool)."""
    order = np.lexsort((~t, s))  # by score, then targets (~t False) first
    return t[order].astype(np.float64)


def rocch(scores: ArrayLike, is_target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the ROC convex hull as ``(p_miss, p_fa)``, from (0, 1) to (1, 0)."""
    s, t = _split(scores, is_target)
    y = _sorted_for_pav(s, t)
    vals, sizes = _pav(y)
    n_tar_blk = vals * sizes
    n_non_blk = sizes - n_tar_blk
    n_t, n_n = t.sum(), (~t).sum()
    p_miss = np.concatenate([[0.0], np.cumsum(n_tar_blk) / n_t])
    p_fa = np.concatenate([[1.0], 1.0 - np.cumsum(n_non_blk) / n_n])
    return np.clip(p_miss, 0.0, 1.0), np.clip(p_fa, 0.0, 1.0)


def eer(scores: ArrayLike, is_target: ArrayLike) -> float:
    """Equal error rate by the ROC convex hull (see the module docstring for why).

    Parameters
    ----------
    scores : array-like, shape (n,)
    is_target : array-like of bool, shape (n,)

    Returns
    -------
    float
        In [0, 0.5]: 0 for separable scores, 0.5 when targets and non-targets are identical.

    Examples
    --------
    >>> from gmmspeech import eer
    >>> eer([0.1, 0.2, 0.8, 0.9], [False, False, True, True])  # separable
    0.0
    >>> eer([0.5, 0.5], [True, False])                         # no information
    0.5
    """
    p_miss, p_fa = rocch(scores, is_target)
    best = 0.0
    for i in range(p_miss.size - 1):
        x0, x1 = p_fa[i], p_fa[i + 1]
        y0, y1 = p_miss[i], p_miss[i + 1]
        if x0 == x1 or y0 == y1:
            continue  # a vertical or horizontal segment contributes 0 (BOSARIS rocch2eer)
        # the line through the two vertices, a * p_fa + b * p_miss = 1, meets p_fa = p_miss
        # at 1 / (a + b)
        det = x0 * y1 - x1 * y0
        a = (y1 - y0) / det
        b = (x0 - x1) / det
        best = max(best, 1.0 / (a + b))
    return float(best)


def _check_costs(p_target: float, c_miss: float, c_fa: float) -> None:
    if not 0.0 < p_target < 1.0:
        raise DataError(f"p_target: must be strictly between 0 and 1, got {p_target!r}")
    if not (c_miss > 0 and c_fa > 0):
        raise DataError(f"c_miss and c_fa: must be > 0, got {c_miss!r} and {c_fa!r}")


def min_dcf(
    scores: ArrayLike,
    is_target: ArrayLike,
    *,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> float:
    """Minimum normalised detection cost over all thresholds.

    ``DCF(t) = C_miss P_tar P_miss(t) + C_fa (1 - P_tar) P_fa(t)`` divided by
    ``min(C_miss P_tar, C_fa (1 - P_tar))`` (the cost of the best trivial system), so 1 means
    no better than always accepting or always rejecting.

    Returns
    -------
    float
        In [0, 1].

    Examples
    --------
    One non-target (0.6) above one target (0.4): at P_tar = 0.5 the best threshold misses half
    the targets or accepts half the non-targets, a cost of 0.25 against 0.5 for a trivial
    system:

    >>> from gmmspeech import min_dcf
    >>> min_dcf([0.1, 0.6, 0.4, 0.9], [False, False, True, True], p_target=0.5)
    0.5
    """
    _check_costs(p_target, c_miss, c_fa)
    p_miss, p_fa, _ = det_curve(scores, is_target)
    dcf = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    norm = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(min(dcf.min() / norm, 1.0))


def bayes_threshold(p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """The Bayes decision threshold for calibrated LLR scores:
    ``-log(C_miss P_tar / (C_fa (1 - P_tar)))``."""
    _check_costs(p_target, c_miss, c_fa)
    return float(-np.log(c_miss * p_target / (c_fa * (1.0 - p_target))))


def act_dcf(
    scores: ArrayLike,
    is_target: ArrayLike,
    *,
    threshold: float | None = None,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> float:
    """Actual normalised DCF at ``threshold`` (default: the Bayes threshold for LLRs).

    Accept when ``score >= threshold``. Normalised like :func:`min_dcf` (not clipped at 1).

    Examples
    --------
    At threshold 0.5 both errors are made: ``(0.5 * 0.5 + 0.5 * 0.5) / 0.5``:

    >>> from gmmspeech import act_dcf
    >>> act_dcf([0.1, 0.6, 0.4, 0.9], [False, False, True, True], threshold=0.5, p_target=0.5)
    1.0
    """
    _check_costs(p_target, c_miss, c_fa)
    s, t = _split(scores, is_target)
    thr = bayes_threshold(p_target, c_miss, c_fa) if threshold is None else float(threshold)
    p_miss = float((s[t] < thr).mean())
    p_fa = float((s[~t] >= thr).mean())
    dcf = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    return dcf / min(c_miss * p_target, c_fa * (1.0 - p_target))


def cllr(llrs: ArrayLike, is_target: ArrayLike, *, p_target: float = 0.5) -> float:
    """Log-likelihood-ratio cost (bits), treating scores as natural-log LLRs.

    ``Cllr = 0.5 [mean_tar log2(1 + e^{-s}) + mean_non log2(1 + e^{s})]``; 1 for a system
    that always says 0, 0 for perfect, calibrated, infinitely confident scores.

    With an effective prior ``p_target`` = pi other than 0.5 it is BOSARIS' normalised
    cross-entropy at that prior, the objective a calibration prior-weighted at pi minimises
    (:mod:`gmmspeech.decisions.calibration`), with ``l = logit pi``::

        [pi mean_tar log2(1 + e^{-(s + l)}) + (1 - pi) mean_non log2(1 + e^{s + l})] / H(pi)

    ``H(pi)`` the binary entropy of pi: 1 for a system that always says 0, at any prior.

    Examples
    --------
    A system that always says LLR 0 costs one bit; confident right answers cost almost nothing:

    >>> from gmmspeech import cllr
    >>> cllr([0.0, 0.0], [True, False])
    1.0
    >>> round(cllr([20.0, -20.0], [True, False]), 6)
    0.0
    """
    s, t = _split(llrs, is_target)
    pi = float(p_target)
    if not 0.0 < pi < 1.0:
        raise DataError(f"p_target: must be strictly between 0 and 1, got {p_target!r}")
    logit = float(np.log(pi / (1.0 - pi)))
    c_tar = np.logaddexp(0.0, -(s[t] + logit)).mean()
    c_non = np.logaddexp(0.0, s[~t] + logit).mean()
    entropy = -(pi * np.log(pi) + (1.0 - pi) * np.log1p(-pi))
    return float((pi * c_tar + (1.0 - pi) * c_non) / entropy)


def min_cllr(scores: ArrayLike, is_target: ArrayLike) -> float:
    """Cllr after the optimal monotonic calibration (PAV), in bits; in [0, 1].

    Examples
    --------
    Separable scores cost nothing once calibrated, whatever their scale:

    >>> from gmmspeech import min_cllr
    >>> min_cllr([0.1, 0.2, 0.8, 0.9], [False, False, True, True])
    0.0
    """
    s, t = _split(scores, is_target)
    y = _sorted_for_pav(s, t)
    vals, sizes = _pav(y)
    post = np.repeat(vals, sizes)
    ys = y.astype(bool)
    n_t, n_n = t.sum(), (~t).sum()
    prior_logit = np.log(n_t / n_n)
    with np.errstate(divide="ignore"):
        llr = np.log(post) - np.log1p(-post) - prior_logit
    # log(1 + e^{-llr}) for targets; llr = -inf only occurs where post = 0, never for a target
    c_tar = np.logaddexp(0.0, -llr[ys]).mean()
    c_non = np.logaddexp(0.0, llr[~ys]).mean()
    return float(0.5 * (c_tar + c_non) / np.log(2.0))


def identification_accuracy(true_labels: Sequence[Any], predicted: Sequence[Any]) -> float:
    """Fraction of closed-set identification trials whose predicted label is the true one.

    Examples
    --------
    >>> from gmmspeech import identification_accuracy
    >>> identification_accuracy(["a", "b", "c", "c"], ["a", "b", "b", "c"])
    0.75
    """
    a, b = np.asarray(true_labels), np.asarray(predicted)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise DataError(
            f"true_labels and predicted: expected two non-empty 1-D sequences of the same "
            f"length, got shapes {a.shape} and {b.shape}"
        )
    return float((a == b).mean())


def per_class_recall(true_labels: Sequence[Any], predicted: Sequence[Any]) -> dict[Any, float]:
    """Recall of each true class: the fraction of its items predicted as that class.

    Returns
    -------
    dict
        True label -> recall, for every label in ``true_labels`` (sorted by ``str``).
    """
    identification_accuracy(true_labels, predicted)  # shape checks
    a, b = np.asarray(true_labels), np.asarray(predicted)
    return {lab: float((b[a == lab] == lab).mean()) for lab in sorted(set(a.tolist()), key=str)}


def balanced_accuracy(true_labels: Sequence[Any], predicted: Sequence[Any]) -> float:
    """Mean of the per-class recalls (:func:`per_class_recall`): every class counts once,
    however many items it has, so a majority class cannot hide a class never recognised."""
    return float(np.mean(list(per_class_recall(true_labels, predicted).values())))


def confusion_matrix(
    true_labels: Sequence[Any], predicted: Sequence[Any], labels: Sequence[Any] | None = None
) -> tuple[np.ndarray, list[Any]]:
    """Counts ``C[i, j]`` of items of true class ``labels[i]`` predicted as ``labels[j]``.

    Returns
    -------
    matrix : ndarray, shape (L, L), int64
    labels : list
        The label order (sorted union of both inputs when not given).

    Examples
    --------
    >>> from gmmspeech import confusion_matrix
    >>> m, labels = confusion_matrix(["a", "a", "b"], ["a", "b", "b"])
    >>> m.tolist(), labels
    ([[1, 1], [0, 1]], ['a', 'b'])
    """
    a, b = list(true_labels), list(predicted)
    if len(a) != len(b):
        raise DataError(f"true_labels and predicted: lengths differ ({len(a)} vs {len(b)})")
    order = sorted(set(a) | set(b), key=str) if labels is None else list(labels)
    pos = {lab: i for i, lab in enumerate(order)}
    m = np.zeros((len(order), len(order)), dtype=np.int64)
    for x, y in zip(a, b, strict=True):
        if x not in pos or y not in pos:
            raise DataError(f"labels: {x if x not in pos else y!r} is not in the given labels")
        m[pos[x], pos[y]] += 1
    return m, order


def summary(
    scores: ArrayLike,
    is_target: ArrayLike,
    *,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> dict[str, float]:
    """EER, minDCF, actual DCF (Bayes threshold), Cllr and min Cllr in one dict."""
    s, t = _split(scores, is_target)
    kw = {"p_target": p_target, "c_miss": c_miss, "c_fa": c_fa}
    return {
        "n_target": int(t.sum()),
        "n_nontarget": int((~t).sum()),
        "eer": eer(s, t),
        "min_dcf": min_dcf(s, t, **kw),
        "act_dcf": act_dcf(s, t, **kw),
        "cllr": cllr(s, t),
        "min_cllr": min_cllr(s, t),
        "p_target": p_target,
        "c_miss": c_miss,
        "c_fa": c_fa,
    }
