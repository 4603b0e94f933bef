"""Diagonal-covariance Gaussian mixture model.

Parameters are kept in float64; likelihoods are computed in float32 chunks by two matrix
products (see DESIGN.md section 3). To keep float32 accurate when features are far from zero
(un-normalised c0, say), frames and means are first shifted by the model's centre
``c = sum_k w_k mu_k``:

    log w_k + log N(x; mu_k, var_k)
        = g_k + (x - c) @ ((mu_k - c) / var_k) - 0.5 * (x - c)**2 @ (1 / var_k)
    g_k = log w_k - 0.5 * (D log 2 pi + sum_d log var_kd + sum_d (mu_kd - c_d)**2 / var_kd)

which is exact algebra, but avoids the cancellation of large terms in float32.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any, NamedTuple

import h5py
import numpy as np
from numpy.typing import ArrayLike

from ..errors import DataError, ModelFormatError
from ..features.frames import COMPUTE_DTYPE, as_frames
from ..storage.atomic import atomic_path
from ..storage.h5io import from_json, open_checked, read_array, to_json, write_header

log = logging.getLogger(__name__)

FORMAT = "gmmspeech.DiagGMM"
FORMAT_VERSION = 1
DEFAULT_CHUNK_SIZE = 2048
_LOG_2PI = float(np.log(2.0 * np.pi))
# exp(-80) ~ 1.8e-35 is still a normal float32; below about -87 exp() gives denormals, which
# make sums and matrix products many times slower. Terms that small never change a result.
EXP_FLOOR = np.float32(-80.0)


class FrameBlock(NamedTuple):
    """One block of frames from :meth:`DiagGMM.blocks` (work buffers, see there).

    Attributes
    ----------
    start, stop : int
        The frames ``X[start:stop]`` of the block, n = stop - start.
    logp : ndarray, shape (n, K), float32
        ``log w_k + log N(x_t; mu_k, var_k)``.
    z : ndarray, shape (n, 2D) or (n, 2D + 1), float32
        ``[x_t - c, (x_t - c)**2]`` about the model's centre ``c`` (and a spare column).
    """

    start: int
    stop: int
    logp: np.ndarray
    z: np.ndarray


def _as_param(value: ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: cannot be read as a float array ({exc})") from None
    return arr


def unusable_components(means: np.ndarray, variances: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Which components have natural parameters that overflow float32.

    Likelihoods are computed in float32 from ``1 / var``, ``(mu - c) / var`` and
    ``sum_d (mu_d - c_d)**2 / var_d``; a variance of 1e-300 is finite and positive, but its
    precision is infinite in float32 and every likelihood it touches becomes NaN.

    Parameters
    ----------
    means, variances : ndarray, shape (..., K, D), float64
    center : ndarray, shape (D,)
        The centre the parameters are computed about (the UBM's for adapted models).

    Returns
    -------
    ndarray of bool, shape (..., K)
    """
    big = float(np.finfo(COMPUTE_DTYPE).max)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        prec = 1.0 / variances
        mc = means - center
        ok = (prec < big).all(axis=-1) & (np.abs(mc * prec) < big).all(axis=-1)
        ok &= (mc * mc * prec).sum(axis=-1) < big
        ok &= np.abs(np.log(variances).sum(axis=-1)) < big
    return ~ok


class DiagGMM:
    """A Gaussian mixture with diagonal covariances.

    A model whose parameters are finite in float64 but whose natural parameters (precisions,
    ``(mu - c) / var``, log-normalisers) overflow float32, e.g. a variance of 1e-300, is
    rejected with a :class:`~gmmspeech.errors.DataError` naming the component (at load, a
    :class:`~gmmspeech.errors.ModelFormatError`), not floored: flooring would silently change
    a model that was trained or edited elsewhere, and its scores with it. Floor the variances
    yourself (e.g. ``np.maximum(variances, 1e-6)``) if that is what you want.

    Parameters
    ----------
    weights : array-like, shape (K,)
        Mixture weights, non-negative, summing to 1 (within 1e-5).
    means : array-like, shape (K, D), or (K,) for D = 1
        Component means.
    variances : array-like, shape (K, D), or (K,) for D = 1
        Diagonal variances, finite and positive.
    feature_config : dict, optional
        The feature configuration the model expects (stored in the model file).
    config : dict, optional
        The configuration that produced the model (stored in the model file).
    history : list of dict, optional
        Training history (one entry per EM iteration).
    var_floor : array-like, shape (D,), optional
        The variance floor used in training; kept so that later estimates (MAP) can apply
        the same floor.

    Attributes
    ----------
    weights : ndarray, shape (K,), float64
    means : ndarray, shape (K, D), float64
    variances : ndarray, shape (K, D), float64
    history_ : list of dict
        One entry per training iteration: ``stage``, ``n_components``, ``iteration``,
        ``log_likelihood`` (mean per frame, of the model entering the iteration) and
        ``n_repairs`` (dead components re-seeded by that iteration).

    Examples
    --------
    Two bumps on a line and the soft assignment of a point between them:

    >>> gmm = DiagGMM([0.5, 0.5], [-2.0, 2.0], [1.0, 1.0])
    >>> gmm.posteriors([0.0]).round(3)
    array([[0.5, 0.5]])
    """

    def __init__(
        self,
        weights: ArrayLike,
        means: ArrayLike,
        variances: ArrayLike,
        *,
        feature_config: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
        var_floor: ArrayLike | None = None,
    ) -> None:
        w = _as_param(weights, "weights")
        mu = _as_param(means, "means")
        var = _as_param(variances, "variances")
        if w.ndim != 1 or w.size == 0:
            raise DataError(
                f"weights: expected a non-empty 1-D array of shape (K,), got shape {w.shape}"
            )
        k = w.shape[0]
        if mu.ndim == 1 and mu.shape[0] == k:
            mu = mu[:, None]
        if var.ndim == 1 and var.shape[0] == k:
            var = var[:, None]
        if mu.ndim != 2 or mu.shape[0] != k:
            raise DataError(
                f"means: expected shape (K, D) with K={k} rows to match weights, got shape "
                f"{mu.shape}; pass one row of D means per component"
            )
        if var.shape != mu.shape:
            raise DataError(
                f"variances: expected shape {mu.shape} to match means (K={k}, D={mu.shape[1]}), "
                f"got shape {var.shape}; a diagonal GMM takes one variance per mean"
            )
        for name, arr in (("weights", w), ("means", mu), ("variances", var)):
            if not np.isfinite(arr).all():
                n_bad = int((~np.isfinite(arr)).sum())
                raise DataError(
                    f"{name}: {n_bad} value(s) are NaN or infinite; all parameters must be finite"
                )
        if (w < 0).any():
            raise DataError(
                f"weights: must be >= 0, got minimum {w.min():.6g} at component "
                f"{int(w.argmin())}; mixture weights are probabilities"
            )
        if abs(w.sum() - 1.0) > 1e-5:
            raise DataError(
                f"weights: must sum to 1 (within 1e-5), got {w.sum():.8g}; normalise them "
                f"with weights / weights.sum()"
            )
        if (var <= 0).any():
            bad = np.argwhere(var <= 0)[0]
            raise DataError(
                f"variances: must be > 0, got {var[tuple(bad)]:.6g} at component {bad[0]}, "
                f"dimension {bad[1]}; floor them (e.g. np.maximum(variances, 1e-6))"
            )
        bad = unusable_components(mu, var, w @ mu)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            j = int(np.argmin(var[k]))
            raise DataError(
                f"variances: component {k} (smallest variance {var[k, j]:.6g}, dimension {j}) "
                f"makes the precisions overflow float32; floor the variances "
                f"(e.g. np.maximum(variances, 1e-6))"
            )
        self.weights = w
        self.means = mu
        self.variances = var
        self.feature_config = dict(feature_config) if feature_config else None
        self.config = dict(config) if config else None
        self.history_: list[dict[str, Any]] = list(history) if history else []
        self.var_floor: np.ndarray | None = None
        if var_floor is not None:
            vf = _as_param(var_floor, "var_floor").reshape(-1)
            if vf.shape != (mu.shape[1],) or not np.isfinite(vf).all() or (vf < 0).any():
                raise DataError(
                    f"var_floor: expected {mu.shape[1]} finite values >= 0 (one per feature), "
                    f"got shape {vf.shape}"
                )
            self.var_floor = vf
        self._natural: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ basics
    @property
    def n_components(self) -> int:
        """Number of mixture components K."""
        return int(self.weights.shape[0])

    @property
    def n_features(self) -> int:
        """Feature dimension D."""
        return int(self.means.shape[1])

    def __repr__(self) -> str:
        return f"DiagGMM(n_components={self.n_components}, n_features={self.n_features})"

    def copy(self) -> DiagGMM:
        """Return a deep copy (history and configs included)."""
        return DiagGMM(
            self.weights.copy(),
            self.means.copy(),
            self.variances.copy(),
            feature_config=self.feature_config,
            config=self.config,
            history=[dict(h) for h in self.history_],
            var_floor=self.var_floor,
        )

    @property
    def center(self) -> np.ndarray:
        """Weighted mean of the component means, shape (D,), float64 (the compute shift)."""
        return self._natural_parameters()[0].astype(np.float64)

    def _natural_parameters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (centre (D,), A (2D, K), g (K,)) in float32, cached."""
        if self._natural is None:
            c = self.weights @ self.means
            prec = 1.0 / self.variances
            mc = self.means - c
            a = np.concatenate([(mc * prec).T, (-0.5 * prec).T], axis=0)
            with np.errstate(divide="ignore"):
                logw = np.log(self.weights)
            g = logw - 0.5 * (
                self.n_features * _LOG_2PI
                + np.log(self.variances).sum(axis=1)
                + (mc * mc * prec).sum(axis=1)
            )
            self._natural = (
                c.astype(COMPUTE_DTYPE),
                np.ascontiguousarray(a, dtype=COMPUTE_DTYPE),
                g.astype(COMPUTE_DTYPE),
            )
        return self._natural

    # ------------------------------------------------------------------ compute
    def blocks(
        self, X: ArrayLike, *, chunk_size: int | None = None, ones_column: bool = False
    ) -> Iterator[FrameBlock]:
        """The first half of the block kernel: per-component log-likelihoods, a block of
        frames at a time.

        Parameters
        ----------
        X : array-like, shape (N, D) or (N,) for D = 1
            Frames.
        chunk_size : int, optional
            Frames per block (default 2048); memory is O(chunk_size x K).
        ones_column : bool
            Give ``z`` a spare last column (for the caller to fill with ones, so that one
            product yields the zeroth order statistics too).

        Yields
        ------
        FrameBlock
            ``logp`` (n, K) float32 holds ``log w_k + log N(x_t; mu_k, var_k)``; ``z``
            (n, 2D [+1]) float32 holds ``[x_t - c, (x_t - c)**2]`` about the model's centre
            ``c``. Both are work buffers reused by the next block: the caller may overwrite
            them (e.g. with :func:`log_normalize`) but must copy what it keeps.
        """
        x = as_frames(X, self.n_features)
        c, a, g = self._natural_parameters()
        n, d = x.shape
        step = int(chunk_size or DEFAULT_CHUNK_SIZE)
        if step < 1:
            raise DataError(f"chunk_size: must be >= 1, got {chunk_size}")
        width = 2 * d + (1 if ones_column else 0)
        zbuf = np.empty((min(step, n), width), dtype=COMPUTE_DTYPE)
        rbuf = np.empty((min(step, n), self.n_components), dtype=COMPUTE_DTYPE)
        for start in range(0, n, step):
            stop = min(start + step, n)
            z = zbuf[: stop - start]
            r = rbuf[: stop - start]
            np.subtract(x[start:stop], c, out=z[:, :d])
            np.multiply(z[:, :d], z[:, :d], out=z[:, d : 2 * d])
            np.matmul(z[:, : 2 * d], a, out=r)
            r += g
            yield FrameBlock(start, stop, r, z)

    def component_log_likelihoods(
        self, X: ArrayLike, *, chunk_size: int | None = None
    ) -> np.ndarray:
        """Per-frame, per-component ``log w_k + log N(x_t; mu_k, var_k)``.

        Parameters
        ----------
        X : array-like, shape (N, D) or (N,) for D = 1

        Returns
        -------
        ndarray, shape (N, K), float32
        """
        x = as_frames(X, self.n_features)
        out = np.empty((x.shape[0], self.n_components), dtype=COMPUTE_DTYPE)
        for blk in self.blocks(x, chunk_size=chunk_size):
            out[blk.start : blk.stop] = blk.logp
        return out

    def log_likelihood(self, X: ArrayLike, *, chunk_size: int | None = None) -> np.ndarray:
        """Per-frame log-likelihood ``log p(x_t)``.

        Parameters
        ----------
        X : array-like, shape (N, D) or (N,) for D = 1

        Returns
        -------
        ndarray, shape (N,), float64
        """
        x = as_frames(X, self.n_features)
        out = np.empty(x.shape[0], dtype=np.float64)
        for blk in self.blocks(x, chunk_size=chunk_size):
            out[blk.start : blk.stop], _ = log_normalize(blk.logp)
        return out

    def score(self, X: ArrayLike, *, chunk_size: int | None = None) -> float:
        """Mean per-frame log-likelihood of ``X`` (shape (N, D)); a float."""
        ll = self.log_likelihood(X, chunk_size=chunk_size)
        if ll.size == 0:
            raise DataError("X: no frames to score")
        return float(ll.mean())

    def posteriors(self, X: ArrayLike, *, chunk_size: int | None = None) -> np.ndarray:
        """Component responsibilities ``p(k | x_t)``; rows sum to 1.

        Parameters
        ----------
        X : array-like, shape (N, D) or (N,) for D = 1

        Returns
        -------
        ndarray, shape (N, K), float64
        """
        x = as_frames(X, self.n_features)
        out = np.empty((x.shape[0], self.n_components), dtype=np.float64)
        # the denormal guard gives every term at least exp(-80) of the largest; a component
        # of weight 0 must still get exactly 0
        absent = np.flatnonzero(self.weights == 0)
        for blk in self.blocks(x, chunk_size=chunk_size):
            p = out[blk.start : blk.stop]
            p[...] = blk.logp  # normalised in float64, as the result is float64
            log_normalize(p, posteriors=True)
            p[:, absent] = 0.0
        return out

    def top_components(self, X: ArrayLike, c: int, *, chunk_size: int | None = None) -> np.ndarray:
        """Indices of the ``c`` components with the highest ``log w_k + log N_k(x_t)``.

        Parameters
        ----------
        X : array-like, shape (N, D) or (N,) for D = 1
        c : int
            How many components per frame, 1 <= c <= K.

        Returns
        -------
        ndarray, shape (N, c), int64
            Best first.
        """
        if not 1 <= int(c) <= self.n_components:
            raise DataError(f"c: must be between 1 and n_components={self.n_components}, got {c}")
        c = int(c)
        x = as_frames(X, self.n_features)
        out = np.empty((x.shape[0], c), dtype=np.int64)
        for start, stop, r, _ in self.blocks(x, chunk_size=chunk_size):
            if c < self.n_components:
                idx = np.argpartition(-r, c - 1, axis=1)[:, :c]
            else:
                idx = np.broadcast_to(np.arange(c), (r.shape[0], c))
            vals = np.take_along_axis(r, idx, axis=1)
            order = np.argsort(-vals, axis=1, kind="stable")
            out[start:stop] = np.take_along_axis(idx, order, axis=1)
        return out

    def sample(
        self, n: int, random_state: int | np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` frames from the mixture.

        Returns
        -------
        X : ndarray, shape (n, D), float64
        labels : ndarray, shape (n,), int64
            The component each frame was drawn from.
        """
        if int(n) < 0:
            raise DataError(f"n: must be >= 0, got {n}")
        rng = np.random.default_rng(random_state)
        labels = rng.choice(self.n_components, size=int(n), p=self.weights / self.weights.sum())
        noise = rng.standard_normal((int(n), self.n_features))
        X = self.means[labels] + np.sqrt(self.variances[labels]) * noise
        return X, labels.astype(np.int64)

    # ------------------------------------------------------------------ storage
    def save(
        self, path: str | os.PathLike[str], *, extra_attrs: dict[str, Any] | None = None
    ) -> None:
        """Write the model to an HDF5 file atomically (float64 parameters, no pickle)."""
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            write_header(f, FORMAT, FORMAT_VERSION, self.config)
            if self.feature_config is not None:
                f.attrs["feature_config"] = to_json(self.feature_config)
            f.attrs["history"] = to_json(self.history_)
            for key, value in (extra_attrs or {}).items():
                f.attrs[key] = value
            f.create_dataset("weights", data=self.weights.astype(np.float64))
            f.create_dataset("means", data=self.means.astype(np.float64))
            f.create_dataset("variances", data=self.variances.astype(np.float64))
            if self.var_floor is not None:
                f.create_dataset("var_floor", data=self.var_floor.astype(np.float64))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DiagGMM:
        """Read a model written by :meth:`save`.

        Raises
        ------
        ModelFormatError
            The file is missing, truncated, not HDF5, not a DiagGMM, of an unsupported
            version, or its parameters are invalid.
        """
        f = open_checked(path, FORMAT, FORMAT_VERSION)
        try:
            missing = [k for k in ("weights", "means", "variances") if k not in f]
            if missing:
                raise ModelFormatError(f"{path}: missing dataset(s) {', '.join(missing)}")
            # shapes checked against each other before anything is read
            shape = getattr(f["means"], "shape", None)
            k, d = shape if shape is not None and len(shape) == 2 else (None, None)
            w = read_array(f, "weights", (k,), where=path, kinds="f")
            mu = read_array(f, "means", (k, d), where=path, kinds="f")
            var = read_array(f, "variances", (k, d), where=path, kinds="f")
            var_floor = read_array(f, "var_floor", (d,), where=path) if "var_floor" in f else None
            try:
                config = from_json(f.attrs.get("config"))
                feature_config = from_json(f.attrs.get("feature_config"))
                history = from_json(f.attrs.get("history"), [])
            except (OSError, ValueError, KeyError) as exc:
                raise ModelFormatError(f"{path}: cannot read model data ({exc})") from None
        finally:
            f.close()
        try:
            return cls(
                w,
                mu,
                var,
                feature_config=feature_config,
                config=config,
                history=history,
                var_floor=var_floor,
            )
        except DataError as exc:
            raise ModelFormatError(f"{path}: invalid model parameters: {exc}") from None


def log_normalize(
    logp: np.ndarray, *, axis: int = -1, posteriors: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The second half of the block kernel: log-sum-exp over components, in place.

    Every log-sum-exp and every set of posteriors in the package goes through here, so all
    get the same max shift and the same guard against denormals: terms more than 80 below
    the row maximum are raised to ``exp(-80)`` (~1.8e-35, still a normal float32). Below about
    -87 float32 ``exp`` returns denormals, which slow later sums and matrix products by orders
    of magnitude, and such terms never change a result.

    Parameters
    ----------
    logp : ndarray, shape (..., K, ...), float32 or float64
        Log-terms, e.g. ``log w_k + log N(x_t; mu_k, var_k)`` of :meth:`DiagGMM.blocks`,
        summed over ``axis``. Overwritten: on return it holds ``exp(logp - max)`` (each
        entry in ``(0, 1]``, the largest per row 1), or with ``posteriors`` those divided by
        their sum, ``p(k | x_t)``, which sum to 1 along ``axis``.
    axis : int
        The component axis.
    posteriors : bool
        Normalise ``logp`` to posteriors.

    Returns
    -------
    log_sum : ndarray, shape of ``logp`` without ``axis``, float64
        ``log sum_k exp(logp_k)`` (the per-frame log-likelihood for a block of ``blocks``).
    sums : ndarray, shape of ``logp`` with ``axis`` of length 1, dtype of ``logp``
        ``sum_k exp(logp_k - max)``: dividing the exponentials by it gives the posteriors, so
        a caller can fold ``1 / sums`` into a narrower operand instead (see
        :func:`gmmspeech.mixture.stats.accumulate`).

    Examples
    --------
    >>> a = np.log(np.array([[1.0, 3.0]], dtype=np.float32))
    >>> log_sum, _ = log_normalize(a, posteriors=True)
    >>> round(float(np.exp(log_sum[0])), 5), a.round(3).tolist()
    (4.0, [[0.25, 0.75]])
    """
    m = logp.max(axis=axis, keepdims=True)
    logp -= m
    np.maximum(logp, EXP_FLOOR, out=logp)
    np.exp(logp, out=logp)
    sums = logp.sum(axis=axis, keepdims=True)  # terms in (0, 1], one of them 1: accurate
    if posteriors:
        logp /= sums
    log_sum = np.log(sums.astype(np.float64)) + m.astype(np.float64)
    return np.squeeze(log_sum, axis=axis), sums
