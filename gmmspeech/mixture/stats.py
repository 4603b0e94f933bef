"""Zeroth, first and second order sufficient statistics of a diagonal GMM.

The statistics are accumulated about a ``shift`` (the model's centre, see :mod:`gmm`) to keep
float32 frames accurate: ``first = sum_t gamma_tk (x_t - shift)`` and
``second = sum_t gamma_tk (x_t - shift)**2``. Every accumulator is float64. Statistics from
different shards add with ``+`` (re-shifted exactly when their shifts differ), which is all a
map-reduce engine needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import ModelMismatchError
from .gmm import DiagGMM, log_normalize


@dataclass
class SufficientStats:
    """Sufficient statistics of frames under a K-component, D-dimensional diagonal GMM.

    Attributes
    ----------
    zeroth : ndarray, shape (K,), float64
        ``n_k = sum_t gamma_tk``.
    first : ndarray, shape (K, D), float64
        ``sum_t gamma_tk (x_t - shift)``.
    second : ndarray, shape (K, D), float64
        ``sum_t gamma_tk (x_t - shift)**2``.
    shift : ndarray, shape (D,), float64
        The point the first and second order statistics are taken about.
    log_likelihood : float
        Total log-likelihood ``sum_t log p(x_t)`` under the model that produced them.
    n_frames : int
        Number of frames accumulated.

    Examples
    --------
    Statistics of two shards add up to those of all the frames:

    >>> from gmmspeech import DiagGMM, accumulate
    >>> gmm = DiagGMM([1.0], [0.0], [1.0])
    >>> total = accumulate(gmm, [[1.0], [3.0]]) + accumulate(gmm, [[5.0]])
    >>> total.n_frames, total.means().ravel().tolist(), total.variances().round(4).ravel().tolist()
    (3, [3.0], [2.6667])
    """

    zeroth: np.ndarray
    first: np.ndarray
    second: np.ndarray
    shift: np.ndarray
    log_likelihood: float = 0.0
    n_frames: int = 0

    @classmethod
    def zeros(
        cls, n_components: int, n_features: int, shift: ArrayLike | None = None
    ) -> SufficientStats:
        """Empty statistics (the identity of ``+``)."""
        s = np.zeros(n_features) if shift is None else np.asarray(shift, dtype=np.float64)
        return cls(
            np.zeros(n_components),
            np.zeros((n_components, n_features)),
            np.zeros((n_components, n_features)),
            s.copy(),
        )

    @property
    def n_components(self) -> int:
        return int(self.zeroth.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.first.shape[1])

    def shifted(self, shift: ArrayLike) -> SufficientStats:
        """The same statistics taken about another point (exact algebra)."""
        new = np.asarray(shift, dtype=np.float64)
        delta = self.shift - new  # x - new = (x - old) + delta
        first = self.first + self.zeroth[:, None] * delta
        second = self.second + 2.0 * delta * self.first + self.zeroth[:, None] * delta**2
        return SufficientStats(
            self.zeroth.copy(), first, second, new.copy(), self.log_likelihood, self.n_frames
        )

    def __add__(self, other: SufficientStats) -> SufficientStats:
        if not isinstance(other, SufficientStats):
            return NotImplemented
        if other.zeroth.shape != self.zeroth.shape or other.first.shape != self.first.shape:
            raise ModelMismatchError(
                f"cannot add statistics of shape (K={other.n_components}, "
                f"D={other.n_features}) to (K={self.n_components}, D={self.n_features}); "
                f"accumulate both with the same model"
            )
        if not np.array_equal(other.shift, self.shift):
            other = other.shifted(self.shift)
        return SufficientStats(
            self.zeroth + other.zeroth,
            self.first + other.first,
            self.second + other.second,
            self.shift.copy(),
            self.log_likelihood + other.log_likelihood,
            self.n_frames + other.n_frames,
        )

    def __radd__(self, other: Any) -> SufficientStats:
        if isinstance(other, int) and other == 0:  # so that sum(list_of_stats) works
            return self
        return NotImplemented

    def means(self) -> np.ndarray:
        """Per-component data means ``E_k[x]``, shape (K, D); rows with ``n_k = 0`` are 0."""
        n = np.maximum(self.zeroth, np.finfo(np.float64).tiny)[:, None]
        return np.where(self.zeroth[:, None] > 0, self.shift + self.first / n, 0.0)

    def variances(self) -> np.ndarray:
        """Per-component data variances ``E_k[x^2] - E_k[x]^2``, shape (K, D), unfloored."""
        n = np.maximum(self.zeroth, np.finfo(np.float64).tiny)[:, None]
        m = self.first / n
        return np.where(self.zeroth[:, None] > 0, np.maximum(self.second / n - m * m, 0.0), 0.0)

    def global_mean(self) -> np.ndarray:
        """Mean of all accumulated frames, shape (D,)."""
        return self.shift + self.first.sum(axis=0) / self.zeroth.sum()

    def global_variance(self) -> np.ndarray:
        """Variance of all accumulated frames, shape (D,)."""
        n = self.zeroth.sum()
        m = self.first.sum(axis=0) / n
        return np.maximum(self.second.sum(axis=0) / n - m * m, 0.0)


def accumulate(gmm: DiagGMM, X: ArrayLike, *, chunk_size: int | None = None) -> SufficientStats:
    """E-step: accumulate the sufficient statistics of frames under ``gmm``.

    Parameters
    ----------
    gmm : DiagGMM
        The model giving the responsibilities.
    X : array-like, shape (N, D) or (N,) for D = 1
        Frames.
    chunk_size : int, optional
        Frames per block (memory is O(chunk_size x K)); default 2048.

    Returns
    -------
    SufficientStats
        Taken about ``gmm.center``.

    Examples
    --------
    The zeroth order statistics share the frames out among the components; a frame halfway
    between two equal components counts half for each:

    >>> from gmmspeech import DiagGMM, accumulate
    >>> gmm = DiagGMM([0.5, 0.5], [-2.0, 2.0], [1.0, 1.0])
    >>> stats = accumulate(gmm, [[-2.0], [0.0], [2.0]])
    >>> stats.n_frames, stats.zeroth.round(6).tolist()
    (3, [1.5, 1.5])
    """
    return _accumulate(gmm, X, chunk_size, 0)[0]


def accumulate_selecting(
    gmm: DiagGMM,
    X: ArrayLike,
    n_select: int,
    *,
    chunk_size: int | None = None,
    top: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> tuple[SufficientStats, np.ndarray]:
    """:func:`accumulate`, and each frame's ``n_select`` best components from the same pass.

    Parameters
    ----------
    top : callable, optional
        ``top(logp, n)``: the columns of the ``n`` largest entries of each row of the
        (rows, K) float32 block, shape (rows, n); default ``numpy.argpartition``.

    Returns
    -------
    stats : SufficientStats
        Identical to ``accumulate(gmm, X)``.
    selection : ndarray, shape (N, min(n_select, K)), int16 (int32 for K >= 32768)
        The components with the highest ``log w_k N_k(x_t)``, in no particular order.
    """
    stats, sel = _accumulate(gmm, X, chunk_size, int(n_select), top)
    return stats, sel if sel is not None else np.empty((0, 0), dtype=np.int16)


def _accumulate(
    gmm: DiagGMM,
    X: ArrayLike,
    chunk_size: int | None,
    n_select: int,
    top: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> tuple[SufficientStats, np.ndarray | None]:
    k, d = gmm.n_components, gmm.n_features
    acc = np.zeros((k, 2 * d + 1), dtype=np.float64)
    total_ll = 0.0
    n_frames = 0
    parts: list[np.ndarray] = []
    dtype = np.int16 if k < 2**15 else np.int32
    for blk in gmm.blocks(X, chunk_size=chunk_size, ones_column=True):
        if n_select > 0:
            parts.append(_top(blk.logp, n_select, dtype, top))
        frame_ll, sums = log_normalize(blk.logp)  # blk.logp now holds exp(logp - max)
        total_ll += float(frame_ll.sum())
        # responsibilities are exp / sums: fold 1/sums into the (n, 2D+1) side, not (n, K)
        z = blk.z
        z[:, 2 * d] = 1.0
        z /= sums
        acc += blk.logp.T @ z
        n_frames += blk.stop - blk.start
    stats = SufficientStats(
        zeroth=acc[:, 2 * d].copy(),
        first=acc[:, :d].copy(),
        second=acc[:, d : 2 * d].copy(),
        shift=gmm.center,
        log_likelihood=total_ll,
        n_frames=n_frames,
    )
    if n_select <= 0:
        return stats, None
    width = min(n_select, k)
    sel = np.concatenate(parts) if parts else np.empty((0, width), dtype=dtype)
    return stats, sel


def _top(
    logp: np.ndarray,
    n: int,
    dtype: type[np.signedinteger],
    top: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> np.ndarray:
    """Indices of the ``n`` largest entries of each row (unordered), shape (rows, min(n, K))."""
    k = logp.shape[1]
    if n >= k:
        return np.broadcast_to(np.arange(k, dtype=dtype), (logp.shape[0], k)).copy()
    if top is not None:
        return np.asarray(top(logp, n)).astype(dtype)
    return np.argpartition(-logp, n - 1, axis=1)[:, :n].astype(dtype)
