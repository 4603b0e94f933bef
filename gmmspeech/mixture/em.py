"""EM building blocks of UBM training: splitting, variance floors, the M-step with
dead-component repair, and the E-step map task.

The variance floor is relative to a robust per-dimension scale of the training data: the
median-based variance ``(1.4826 MAD)**2`` (capped by the plain variance), so that a few
far-out frames, which can raise the plain variance a thousandfold, cannot raise the floor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from ..config.sections import UBMConfig
from ..errors import DataError
from .gmm import DiagGMM
from .stats import SufficientStats, accumulate


class Chunked(Protocol):
    """Frames that can be read block by block: a shard of a frame source (a map task's item)."""

    def chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        """Yield float32 blocks of shape (<= chunk_size, D), always in one order."""
        ...


# the MAD of a normal distribution is sigma / 1.4826 (1 / Phi^-1(3/4))
_MAD_TO_SIGMA = 1.482602218505602
# frames further than this many robust standard deviations from the median are "far out"
FAR_OUT = 50.0


# ---------------------------------------------------------------------------- splitting
def split_plan(n_components: int) -> list[int]:
    """Model sizes stage by stage: 1, 2, 4, ... then ``n_components`` (never rounded).

    >>> split_plan(1000)[-3:]
    [256, 512, 1000]
    """
    sizes = [1]
    while sizes[-1] * 2 <= n_components:
        sizes.append(sizes[-1] * 2)
    if sizes[-1] != n_components:
        sizes.append(n_components)
    return sizes


def _split_one(
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    src: int,
    dst: int,
    eps: float,
    shrink: bool = False,
) -> None:
    """Split component ``src`` into ``src`` and ``dst`` in place (along its widest dimension).

    With ``shrink`` the pair's variance along that dimension becomes ``(1 - eps**2) var``
    (at least ``var / 4``), which for ``eps < 1`` keeps the pair's joint mean and variance.
    Dead-component repair uses it: a pair re-seeded with the parent's variance and then split
    again by the next stage, along the same dimension by the same offset, would give two
    identical components (``(mu - o) + o = (mu + o) - o``), which EM never separates.
    """
    d = int(np.argmax(variances[src]))
    offset = eps * np.sqrt(variances[src, d])
    if shrink:
        variances[src, d] *= max(1.0 - eps * eps, 0.25)
    means[dst] = means[src]
    variances[dst] = variances[src]
    means[src, d] -= offset
    means[dst, d] += offset
    weights[src] *= 0.5
    weights[dst] = weights[src]


def split_order(gmm: DiagGMM, n_new: int) -> np.ndarray:
    """The components :func:`split_components` splits, heaviest first: component
    ``order[j]`` gives its child the index ``K + j``.

    Returns
    -------
    ndarray, shape (n_new,), int64
    """
    k = gmm.n_components
    if not 1 <= n_new <= k:
        raise DataError(f"n_new: must be between 1 and {k}, got {n_new}")
    return np.argsort(-gmm.weights, kind="stable")[:n_new]


def split_components(gmm: DiagGMM, n_new: int, epsilon: float) -> DiagGMM:
    """Grow a model by ``n_new`` components by splitting its heaviest ones.

    Each split component keeps its variances; its mean moves by ``-epsilon * sigma`` and the
    new component's by ``+epsilon * sigma`` along the component's highest-variance
    dimension; both get half of the weight. New components are appended at the end.

    Parameters
    ----------
    gmm : DiagGMM
        Model with K components.
    n_new : int
        How many to add, 1 <= n_new <= K.
    epsilon : float
        Offset in standard deviations.

    Returns
    -------
    DiagGMM with K + n_new components.
    """
    k = gmm.n_components
    order = split_order(gmm, n_new)
    w = np.concatenate([gmm.weights, np.zeros(n_new)])
    mu = np.concatenate([gmm.means, np.zeros((n_new, gmm.n_features))])
    var = np.concatenate([gmm.variances, np.ones((n_new, gmm.n_features))])
    for j, src in enumerate(order):
        _split_one(w, mu, var, int(src), k + j, epsilon)
    return DiagGMM(
        w,
        mu,
        var,
        feature_config=gmm.feature_config,
        config=gmm.config,
        history=gmm.history_,
        var_floor=gmm.var_floor,
    )


# ---------------------------------------------------------------------------- M-step
def variance_floor(global_variance: np.ndarray, ratio: float) -> np.ndarray:
    """Per-dimension floor ``ratio * global variance`` (dimensions with no spread get a tiny
    positive floor relative to the others, so variances are never zero).

    Returns
    -------
    ndarray, shape (D,)
    """
    gv = np.asarray(global_variance, dtype=np.float64)
    scale = float(gv.max()) if gv.size and gv.max() > 0 else 1.0
    return np.maximum(ratio * gv, 1e-8 * scale) if ratio > 0 else np.full_like(gv, 1e-8 * scale)


def robust_variance(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension median and median-based variance ``(1.4826 MAD)**2`` of frames.

    A few far-out frames move it by a few frames' worth of rank, not by their distance, so
    unlike the variance it describes the bulk of the data.

    Parameters
    ----------
    frames : ndarray, shape (N, D)

    Returns
    -------
    median : ndarray, shape (D,), float64
    variance : ndarray, shape (D,), float64
        Equals the variance for normally distributed data (in expectation); 0 where more
        than half of the frames share one value.
    """
    x = np.asarray(frames, dtype=np.float64)
    med = np.median(x, axis=0)
    mad = np.median(np.abs(x - med), axis=0)
    return med, (_MAD_TO_SIGMA * mad) ** 2


def floor_scale(var: np.ndarray, sample: np.ndarray) -> tuple[np.ndarray, int]:
    """The per-dimension scale the variance floor is relative to, and the far-out frames.

    The median-based variance of ``sample``, capped by the plain variance ``var`` (the floor
    never rises above what the plain variance gives) and ``var`` where the median-based one is
    0 (more than half the frames equal).

    Parameters
    ----------
    var : ndarray, shape (D,)
        Variance of all training frames.
    sample : ndarray, shape (n, D)
        Training frames (all, or every k-th).

    Returns
    -------
    scale : ndarray, shape (D,)
    n_far : int
        Frames of ``sample`` further than 50 robust standard deviations from the median in
        some dimension.
    """
    med, rvar = robust_variance(sample)
    scale = np.where(rvar > 0, np.minimum(rvar, var), var)
    sigma = np.sqrt(np.where(rvar > 0, rvar, np.inf))
    n_far = int((np.abs(sample - med) > FAR_OUT * sigma).any(axis=1).sum())
    return scale, n_far


def sample_shard(shard: Chunked, shared: tuple[int, int]) -> np.ndarray:
    """Every ``stride``-th frame of each block of a shard, shape (n, D) float32: a map task.

    ``shared`` is ``(chunk_size, stride)``.
    """
    chunk_size, stride = shared
    parts = [np.asarray(b, dtype=np.float32)[::stride] for b in shard.chunks(chunk_size)]
    return np.concatenate(parts) if parts else np.empty((0, 0), dtype=np.float32)


def estimate(
    stats: SufficientStats,
    *,
    var_floor: np.ndarray,
    min_count: float,
    min_weight: float,
    split_epsilon: float,
    reseeded: list[tuple[int, int]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """M-step with variance floor and dead-component repair.

    Parameters
    ----------
    stats : SufficientStats
        Statistics of K components over D features.
    var_floor : ndarray, shape (D,)
        Lower bound on every variance.
    min_count, min_weight : float
        A component with ``n_k < min_count`` or ``n_k / N < min_weight`` is dead: instead of
        dividing by (almost) zero it is re-seeded by splitting the heaviest live component.
    split_epsilon : float
        Offset (in standard deviations) of such a re-seeding split.
    reseeded : list, optional
        Appended to: ``(parent, dead)`` for every re-seeding, in order (Gaussian selection
        follows a re-seeded component through the frames that selected its parent).

    Returns
    -------
    weights : ndarray, shape (K,)
    means : ndarray, shape (K, D)
    variances : ndarray, shape (K, D)
    n_repairs : int
        How many dead components were re-seeded.
    """
    n = stats.zeroth
    total = float(n.sum())
    if total <= 0:
        raise DataError("no frames were accumulated; cannot estimate a model")
    dead = (n < min_count) | (n / total < min_weight)
    if dead.all():
        raise DataError(f"every component has fewer than {min_count} frames; use fewer components")
    weights = np.where(dead, 0.0, n / total)
    weights /= weights.sum()
    means = stats.means()
    variances = np.maximum(stats.variances(), var_floor)
    dead_idx = np.flatnonzero(dead)
    for k in dead_idx:
        heaviest = int(np.argmax(weights))
        _split_one(weights, means, variances, heaviest, int(k), split_epsilon, shrink=True)
        if reseeded is not None:
            reseeded.append((heaviest, int(k)))
    np.maximum(variances, var_floor, out=variances)
    return weights, means, variances, int(dead_idx.size)


def accumulate_shard(shard: Chunked, shared: tuple[DiagGMM, int]) -> SufficientStats:
    """E-step over one shard (anything with ``chunks(chunk_size)``): the engines' map task.

    Parameters
    ----------
    shard : FrameSource-like
        The frames of one task.
    shared : (DiagGMM, int)
        The model and the block size, sent once per iteration to every worker.
    """
    gmm, chunk_size = shared
    total = SufficientStats.zeros(gmm.n_components, gmm.n_features, gmm.center)
    for block in shard.chunks(chunk_size):
        total = total + accumulate(gmm, block, chunk_size=chunk_size)
    return total


def em_step(
    gmm: DiagGMM,
    X: ArrayLike,
    *,
    config: UBMConfig | None = None,
    var_floor: ArrayLike | None = None,
    chunk_size: int | None = None,
) -> DiagGMM:
    """One EM iteration: accumulate statistics of ``X`` under ``gmm``, then re-estimate.

    Parameters
    ----------
    gmm : DiagGMM
        The current model (K components, D features).
    X : array-like, shape (N, D) or (N,) for D = 1
        Frames.
    config : UBMConfig, optional
        Supplies ``var_floor_ratio``, ``min_count``, ``min_weight``, ``split_epsilon`` and
        ``chunk_size`` (defaults: ``UBMConfig()``).
    var_floor : array-like, shape (D,), optional
        Absolute variance floor. Default: ``gmm.var_floor`` if set, else
        ``config.var_floor_ratio`` times the variance of ``X``.
    chunk_size : int, optional
        Overrides ``config.chunk_size``.

    Returns
    -------
    DiagGMM
        The re-estimated model; its ``history_`` gains one entry whose ``log_likelihood`` is
        the mean per-frame log-likelihood of ``X`` under the input model.

    Examples
    --------
    A few iterations from a poor start; the log-likelihood of each model entering an iteration
    (in ``history_``) rises:

    >>> from gmmspeech import DiagGMM, em_step
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-2, 1, 500), rng.normal(2, 1, 500)])
    >>> gmm = DiagGMM([0.5, 0.5], [-0.5, 0.5], [1.0, 1.0])
    >>> for _ in range(4):
    ...     gmm = em_step(gmm, X)
    >>> lls = [h["log_likelihood"] for h in gmm.history_]
    >>> bool(np.all(np.diff(lls) > 0))
    True
    """
    cfg = config or UBMConfig()
    step = int(chunk_size or cfg.chunk_size)
    stats = accumulate(gmm, X, chunk_size=step)
    if var_floor is not None:
        floor = np.broadcast_to(np.asarray(var_floor, dtype=np.float64), (gmm.n_features,))
    elif gmm.var_floor is not None:
        floor = gmm.var_floor
    else:
        floor = variance_floor(stats.global_variance(), cfg.var_floor_ratio)
    w, mu, var, repairs = estimate(
        stats,
        var_floor=floor,
        min_count=cfg.min_count,
        min_weight=cfg.min_weight,
        split_epsilon=cfg.split_epsilon,
    )
    entry = {
        "stage": -1,
        "n_components": gmm.n_components,
        "iteration": len(gmm.history_),
        "log_likelihood": stats.log_likelihood / max(stats.n_frames, 1),
        "n_repairs": repairs,
    }
    return DiagGMM(
        w,
        mu,
        var,
        feature_config=gmm.feature_config,
        config=gmm.config,
        history=[*gmm.history_, entry],
        var_floor=gmm.var_floor,
    )
