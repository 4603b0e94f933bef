"""Baum-Welch statistics per utterance, the total-variability model and i-vectors.

Model (Dehak et al. 2011, with the UBM covariances ``S`` kept fixed): an utterance's centred
first-order statistics ``F_k = sum_t g_tk (x_t - m_k)`` are explained by a low-rank offset
``T_k w`` of the UBM means, ``w ~ N(0, I_R)``. The i-vector is the posterior mean

    L = I + sum_k N_k T_k' S_k^-1 T_k,    w = L^-1 sum_k T_k' S_k^-1 F_k.

The E-step is batched: ``P_k = T_k' S_k^-1 T_k`` is computed once per iteration and kept as
packed upper triangles ``(K, R(R+1)/2)``, so the precisions of ``b`` utterances are ONE matrix
product ``N (b, K) @ P``. Each ``L`` is Cholesky-factored (LAPACK potrf); the M-step needs
``L^-1`` itself, which potri gives from the factor. The M-step accumulators are float64:
``C_k = sum_u N_uk (L_u^-1 + w_u w_u')`` (packed, again one product) and
``A = sum_u F_u w_u'``; then ``T_k = A_k C_k^-1`` per component. The optional
minimum-divergence step re-scales ``T`` by the Cholesky factor of the mean ``E[w w']``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np
import scipy.linalg
from scipy.linalg import lapack
from threadpoolctl import threadpool_info

from .atomic import atomic_path
from .config import to_dict
from .engine import Engine, LocalEngine, map_reduce
from .errors import DataError, ModelFormatError, ModelMismatchError
from .featstore import FeatureStore, config_differences
from .frames import as_frames
from .gmm import DiagGMM
from .h5io import from_json, open_checked, to_json, write_header
from .speakermodels import ubm_fingerprint
from .threads import blas_threads

log = logging.getLogger(__name__)

STATS_FORMAT = "gmmspeech.UtteranceStats"
TV_FORMAT = "gmmspeech.TotalVariability"
FORMAT_VERSION = 1
_FRAME_BLOCK = 4096


# ============================================================================ statistics
@dataclass
class UtteranceStats:
    """Zeroth and centred first-order Baum-Welch statistics of one utterance.

    Attributes
    ----------
    zeroth : ndarray, shape (K,), float64
        ``N_k = sum_t g_tk``.
    first : ndarray, shape (K, D), float64
        ``F_k = sum_t g_tk (x_t - m_k)``, centred on the UBM means.
    ubm : DiagGMM
        The UBM whose posteriors ``g_tk`` produced them.
    n_frames : int
    """

    zeroth: np.ndarray
    first: np.ndarray
    ubm: DiagGMM = field(repr=False)
    n_frames: int = 0


def _stats_arrays(ubm: DiagGMM, X: Any, top_n: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    x = as_frames(X, ubm.n_features)
    k = ubm.n_components
    if top_n is not None and not 1 <= int(top_n) <= k:
        raise DataError(f"top_n: must be between 1 and n_components={k}, got {top_n}")
    n = np.zeros(k)
    xs = np.zeros((k, ubm.n_features))
    for s in range(0, x.shape[0], _FRAME_BLOCK):
        block = x[s : s + _FRAME_BLOCK]
        if top_n is None or int(top_n) == k:
            g = ubm.posteriors(block)
        else:
            # keep each frame's top-N components and renormalise their posteriors to sum to 1
            r = ubm.component_log_likelihoods(block).astype(np.float64)
            idx = np.argpartition(-r, int(top_n) - 1, axis=1)[:, : int(top_n)]
            v = np.take_along_axis(r, idx, axis=1)
            v = np.exp(v - v.max(axis=1, keepdims=True))
            v /= v.sum(axis=1, keepdims=True)
            g = np.zeros_like(r)
            np.put_along_axis(g, idx, v, axis=1)
        n += g.sum(axis=0)
        xs += g.T @ block.astype(np.float64)
    return n, xs - n[:, None] * ubm.means, int(x.shape[0])


def utterance_stats(ubm: DiagGMM, X: Any, *, top_n: int | None = None) -> UtteranceStats:
    """Baum-Welch statistics of one utterance, in float64.

    Parameters
    ----------
    ubm : DiagGMM
        K components, D features.
    X : array-like, shape (n_frames, D)
    top_n : int, optional
        Keep only each frame's ``top_n`` most likely components, their posteriors
        renormalised to sum to 1 (default: all K components, exact posteriors).

    Returns
    -------
    UtteranceStats
        ``zeroth`` (K,) and ``first`` (K, D) centred on ``ubm.means``.
    """
    n, f, t = _stats_arrays(ubm, X, top_n)
    return UtteranceStats(n, f, ubm, t)


def _stats_task(item: Any, shared: tuple[DiagGMM, int | None]) -> tuple[np.ndarray, np.ndarray]:
    """Map task: stats of a batch; ``item`` is (store path, ids) or a list of arrays."""
    ubm, top_n = shared
    if isinstance(item, tuple):
        path, ids = item
        with FeatureStore(path) as store:
            arrays = [store[u] for u in ids]
    else:
        arrays = item
    out = [_stats_arrays(ubm, x, top_n)[:2] for x in arrays]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


class StatsSource(Protocol):
    """What :class:`TotalVariability` reads: statistics of many utterances, in batches."""

    ubm: DiagGMM
    feature_config: dict[str, Any] | None

    def __len__(self) -> int: ...

    def tasks(self, batch_size: int) -> list[Any]:
        """Plain-data work items; :func:`load_task` turns one into ``(N (b, K), F (b, K, D))``."""
        ...


@dataclass
class StatsFileSlice:
    """Utterances ``start:stop`` of a stats file (opened by whoever loads it)."""

    path: str
    start: int
    stop: int

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        with h5py.File(self.path, "r") as f:
            return f["zeroth"][self.start : self.stop], f["first"][self.start : self.stop]


class StatsFile:
    """Statistics in a file written by :meth:`StatsSet.save`, read batch by batch.

    Memory does not grow with the number of utterances: each task reads its own slice.
    """

    def __init__(self, path: str | os.PathLike[str], ubm: DiagGMM | None = None) -> None:
        self.path = str(path)
        with open_checked(path, STATS_FORMAT, FORMAT_VERSION) as f:
            self.ubm, self.feature_config = _read_ubm(f, path, ubm)
            self._n = int(f["zeroth"].shape[0])

    def __len__(self) -> int:
        return self._n

    def tasks(self, batch_size: int) -> list[Any]:
        return [
            StatsFileSlice(self.path, s, min(s + batch_size, self._n))
            for s in range(0, self._n, batch_size)
        ]


def load_task(task: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(N, F)`` of a work item: a pair of arrays, or anything with ``load()``."""
    if isinstance(task, tuple):
        return task[0], task[1]
    n, f = task.load()
    return np.asarray(n, dtype=np.float64), np.asarray(f, dtype=np.float64)


@dataclass
class StatsSet:
    """Statistics of many utterances under one UBM, in memory.

    Attributes
    ----------
    zeroth : ndarray, shape (n, K), float64
    first : ndarray, shape (n, K, D), float64
    ubm : DiagGMM
    utt_ids : list of str
    feature_config : dict or None
        The feature configuration of the frames (the UBM's, or the store's).
    """

    zeroth: np.ndarray
    first: np.ndarray
    ubm: DiagGMM = field(repr=False)
    utt_ids: list[str] = field(default_factory=list)
    feature_config: dict[str, Any] | None = None

    def __len__(self) -> int:
        return int(self.zeroth.shape[0])

    def tasks(self, batch_size: int) -> list[Any]:
        n = len(self)
        return [
            (self.zeroth[s : s + batch_size], self.first[s : s + batch_size])
            for s in range(0, n, batch_size)
        ]

    @classmethod
    def from_list(cls, stats: Sequence[UtteranceStats]) -> StatsSet:
        """Stack what :func:`utterance_stats` returned (all under the same UBM)."""
        if len(stats) == 0:
            raise DataError("stats: no utterances")
        ubm = stats[0].ubm
        key = ubm_fingerprint(ubm)
        for i, s in enumerate(stats):
            if s.ubm is not ubm and ubm_fingerprint(s.ubm) != key:
                raise ModelMismatchError(
                    f"stats[{i}]: computed with another UBM than stats[0]; recompute it"
                )
        return cls(
            np.stack([s.zeroth for s in stats]),
            np.stack([s.first for s in stats]),
            ubm,
            [str(i) for i in range(len(stats))],
            ubm.feature_config,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write to HDF5 atomically, with the UBM (and its SHA-256) and the feature config."""
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            write_header(f, STATS_FORMAT, FORMAT_VERSION)
            _write_ubm(f, self.ubm, self.feature_config)
            f.create_dataset("zeroth", data=self.zeroth)
            f.create_dataset("first", data=self.first)
            f.create_dataset(
                "utt_ids", data=np.array(self.utt_ids, dtype=object), dtype=h5py.string_dtype()
            )

    @classmethod
    def load(cls, path: str | os.PathLike[str], ubm: DiagGMM | None = None) -> StatsSet:
        """Read a file written by :meth:`save`; with ``ubm``, refuse stats of another UBM."""
        with open_checked(path, STATS_FORMAT, FORMAT_VERSION) as f:
            file_ubm, fc = _read_ubm(f, path, ubm)
            ids = [s.decode() if isinstance(s, bytes) else str(s) for s in f["utt_ids"][()]]
            return cls(f["zeroth"][()], f["first"][()], file_ubm, ids, fc)


def _write_ubm(f: h5py.File, ubm: DiagGMM, feature_config: dict[str, Any] | None) -> None:
    f.attrs["ubm_sha256"] = ubm_fingerprint(ubm)
    f.attrs["feature_config"] = to_json(feature_config)
    g = f.create_group("ubm")
    for name in ("weights", "means", "variances"):
        g.create_dataset(name, data=getattr(ubm, name))


def _read_ubm(
    f: h5py.File, path: Any, ubm: DiagGMM | None
) -> tuple[DiagGMM, dict[str, Any] | None]:
    try:
        g = f["ubm"]
        stored = DiagGMM(g["weights"][()], g["means"][()], g["variances"][()])
        key = str(f.attrs["ubm_sha256"])
    except (KeyError, DataError) as exc:
        raise ModelFormatError(f"{path}: missing or invalid UBM record ({exc})") from None
    fc = from_json(f.attrs.get("feature_config"))
    if ubm is not None:
        got = ubm_fingerprint(ubm)
        if got != key:
            raise ModelMismatchError(
                f"{path}: made with the UBM of SHA-256 {key[:12]}..., but the UBM given has "
                f"{got[:12]}... (K={ubm.n_components}, D={ubm.n_features} vs "
                f"K={stored.n_components}, D={stored.n_features}); use the matching UBM"
            )
        stored = ubm
    stored.feature_config = stored.feature_config or fc
    return stored, fc


def compute_stats(
    ubm: DiagGMM,
    features: FeatureStore | str | os.PathLike[str] | Sequence[Any] | Mapping[str, Any],
    *,
    top_n: int | None = None,
    engine: Engine | None = None,
    batch_size: int = 32,
) -> StatsSet:
    """Statistics of many utterances, computed on an engine (same numbers on every engine).

    Parameters
    ----------
    ubm : DiagGMM
    features : FeatureStore, path to one, list of arrays or mapping ``utt_id -> array``
        A store's feature config must match ``ubm.feature_config`` when both are known.
    top_n : int, optional
        See :func:`utterance_stats`.
    engine : Engine, optional
        Where the batches run (default: in this process). Workers open the store themselves.
    batch_size : int
        Utterances per task.

    Returns
    -------
    StatsSet
        In the order of the store (sorted ids), the mapping or the list.
    """
    items: list[Any]
    fc = ubm.feature_config
    if isinstance(features, (str, os.PathLike, FeatureStore)):
        store = features if isinstance(features, FeatureStore) else FeatureStore(features)
        try:
            ids = list(store)
            store_fc = to_dict(store.config)
            path = str(store.path)
        finally:
            if store is not features:
                store.close()
        if fc and store_fc != fc:
            raise ModelMismatchError(
                f"{path}: features differ from the UBM's: "
                + "; ".join(config_differences(store_fc, fc))
                + "; extract them with the UBM's feature config"
            )
        fc = fc or store_fc
        items = [(path, ids[s : s + batch_size]) for s in range(0, len(ids), batch_size)]
    else:
        if isinstance(features, Mapping):
            ids, arrays = list(features), list(features.values())
        else:
            arrays = list(features)
            ids = [str(i) for i in range(len(arrays))]
        items = [arrays[s : s + batch_size] for s in range(0, len(arrays), batch_size)]
    if not ids:
        raise DataError("features: no utterances")
    parts = (engine or LocalEngine()).map(_stats_task, items, (ubm, top_n))
    zeroth = np.concatenate([p[0] for p in parts])
    first = np.concatenate([p[1] for p in parts])
    return StatsSet(zeroth, first, ubm, ids, fc)


def _as_source(stats: StatsSource | Sequence[UtteranceStats]) -> StatsSource:
    if isinstance(stats, Sequence):
        return StatsSet.from_list(stats)
    return stats


# ============================================================================ TV model
@dataclass
class Precomputed:
    """Per-iteration quantities shared by every E-step task."""

    ts: np.ndarray  # (K*D, R): S^-1 T, stacked
    packed: np.ndarray  # (K, R(R+1)/2): upper triangles of T_k' S_k^-1 T_k
    rank: int


@dataclass
class _Acc:
    """E-step accumulators (float64); they add, so engines can reduce them."""

    n: int
    c: np.ndarray  # (K, Rp): sum_u N_uk (L_u^-1 + w_u w_u'), packed
    a: np.ndarray  # (K*D, R): sum_u F_u w_u'
    m: np.ndarray  # (Rp,): sum_u (L_u^-1 + w_u w_u'), packed
    aux: float  # sum_u 0.5 (b_u' w_u - log det L_u)

    def __add__(self, o: _Acc) -> _Acc:
        return _Acc(self.n + o.n, self.c + o.c, self.a + o.a, self.m + o.m, self.aux + o.aux)


def precompute(t: np.ndarray, var: np.ndarray, block: int = 32) -> Precomputed:
    k, d, r = t.shape
    ts = t / var[:, :, None]
    iu = np.triu_indices(r)
    packed = np.empty((k, iu[0].size))
    for s in range(0, k, block):  # blocks of components bound the (b, R, R) temporary
        full = np.matmul(t[s : s + block].transpose(0, 2, 1), ts[s : s + block])
        packed[s : s + block] = full[:, iu[0], iu[1]]
    return Precomputed(ts.reshape(k * d, r), packed, r)


def build_precisions(n: np.ndarray, pre: Precomputed) -> np.ndarray:
    """``L_u = I + sum_k N_uk P_k`` for a batch, shape (b, R, R), upper triangles only.

    One product ``N (b, K) @ P (K, R(R+1)/2)``; the values go into the lower triangle of
    each C-ordered matrix, so that its transpose is a Fortran-ordered matrix whose upper
    triangle LAPACK reads without a copy.
    """
    r = pre.rank
    lp = n @ pre.packed
    iu0, iu1 = np.triu_indices(r)
    big = np.zeros((n.shape[0], r, r))
    big[:, iu1, iu0] = lp
    big[:, np.arange(r), np.arange(r)] += 1.0
    return big


def solve_precisions(
    big: np.ndarray, lin: np.ndarray, want_cov: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Cholesky solves of a batch (``big`` is overwritten).

    Returns
    -------
    w : ndarray, shape (b, R)
        Posterior means ``L^-1 lin``.
    cov : ndarray, shape (b, R(R+1)/2), or None
        Packed upper triangles of ``L^-1`` (LAPACK potri from the factor).
    aux : ndarray, shape (b,)
        ``0.5 (lin' w - log det L)``, each utterance's log-likelihood up to a constant.
    """
    bsz, r = lin.shape
    iu0, iu1 = np.triu_indices(r)
    w = np.empty((bsz, r))
    cov = np.empty((bsz, iu0.size)) if want_cov else None
    aux = np.empty(bsz)

    def one(u: int) -> None:
        c, info = lapack.dpotrf(big[u].T, lower=0, overwrite_a=1)
        if info != 0:
            raise DataError(f"utterance {u} of a batch: precision not positive definite")
        w[u] = lapack.dpotrs(c, lin[u], lower=0)[0]
        aux[u] = 0.5 * (lin[u] @ w[u]) - np.log(np.diag(c)).sum()
        if cov is not None:
            cov[u] = lapack.dpotri(c, lower=0, overwrite_c=1)[0][iu0, iu1]

    _parallel(one, bsz)
    return w, cov, aux


def _parallel(fn: Callable[[int], None], n: int) -> None:
    """``fn(i)`` for i < n on as many threads as BLAS may use, each with one BLAS thread.

    R x R factorisations are too small for OpenBLAS's own threads (on a busy 2-core machine
    a 400 x 400 potrf + potri took 44 ms with 2 BLAS threads and 3.8 ms with 1), so the
    utterances (or components) are spread over threads instead; LAPACK releases the GIL.
    """
    n_threads = max(
        [int(i.get("num_threads", 1)) for i in threadpool_info() if i.get("user_api") == "blas"]
        or [1]
    )
    with blas_threads(1):
        if n_threads <= 1:
            for i in range(n):
                fn(i)
        else:
            with ThreadPoolExecutor(n_threads) as pool:
                list(pool.map(fn, range(n)))


def linear_terms(f: np.ndarray, pre: Precomputed) -> np.ndarray:
    """``sum_k T_k' S_k^-1 F_uk`` for a batch: (b, K, D) -> (b, R)."""
    return f.reshape(f.shape[0], -1) @ pre.ts


def accumulate_batch(
    n: np.ndarray, f: np.ndarray, w: np.ndarray, cov: np.ndarray, aux: np.ndarray
) -> _Acc:
    """M-step accumulators of a batch; ``cov`` (packed ``L^-1``) becomes ``E[w w']``."""
    iu0, iu1 = np.triu_indices(w.shape[1])
    cov += w[:, iu0] * w[:, iu1]
    return _Acc(
        n.shape[0], n.T @ cov, f.reshape(n.shape[0], -1).T @ w, cov.sum(axis=0), float(aux.sum())
    )


def _estep_task(task: Any, pre: Precomputed) -> _Acc:
    """Map task: E-step accumulators of one batch of utterances."""
    n, f = load_task(task)
    w, cov, aux = solve_precisions(build_precisions(n, pre), linear_terms(f, pre), True)
    assert cov is not None
    return accumulate_batch(n, f, w, cov, aux)


def _unpack(p: np.ndarray, r: int) -> np.ndarray:
    out = np.zeros((r, r))
    iu0, iu1 = np.triu_indices(r)
    out[iu0, iu1] = p
    out[iu1, iu0] = p
    return out


def m_step(acc: _Acc, shape: tuple[int, int, int], min_divergence: bool) -> np.ndarray:
    """New ``T`` (K, D, R) from the accumulators: ``T_k = A_k C_k^-1`` per component."""
    k, d, r = shape
    a = acc.a.reshape(k, d, r)
    t = np.empty(shape)

    def one(j: int) -> None:
        cf = scipy.linalg.cho_factor(_unpack(acc.c[j], r), lower=False, check_finite=False)
        t[j] = scipy.linalg.cho_solve(cf, a[j].T, check_finite=False).T

    _parallel(one, k)
    if min_divergence:
        g = np.linalg.cholesky(_unpack(acc.m, r) / acc.n)
        t = (t.reshape(k * d, r) @ g).reshape(shape)
    return t


class TotalVariability:
    """Total-variability subspace (i-vector extractor) on a UBM's statistics.

    Parameters
    ----------
    rank : int
        i-vector dimension R.
    n_iter : int
        EM iterations.
    min_divergence : bool
        After each M-step, re-scale ``T`` so that the mean posterior ``E[w w']`` is ``I``.
    random_state : int
        Seed of the random initial ``T``.
    batch_size : int
        Utterances per E-step task (memory is O(batch_size x R^2) plus the model).

    Attributes
    ----------
    T_ : ndarray, shape (K, D, R), float64
    ubm_ : DiagGMM
    feature_config_ : dict or None
    history_ : list of dict
        Per iteration, ``auxiliary``: the log-likelihood of the statistics under the model
        entering the iteration, up to a constant that does not depend on ``T``
        (``sum_u 0.5 (b_u' w_u - log det L_u)``); EM never decreases it.
    """

    def __init__(
        self,
        rank: int = 400,
        n_iter: int = 10,
        min_divergence: bool = True,
        random_state: int = 0,
        batch_size: int = 100,
    ) -> None:
        for name, v in (("rank", rank), ("n_iter", n_iter), ("batch_size", batch_size)):
            if int(v) < (0 if name == "n_iter" else 1):
                raise DataError(f"{name}: must be >= 1, got {v}")
        self.rank = int(rank)
        self.n_iter = int(n_iter)
        self.min_divergence = bool(min_divergence)
        self.random_state = random_state
        self.batch_size = int(batch_size)
        self.history_: list[dict[str, float]] = []

    def _init(self, ubm: DiagGMM) -> np.ndarray:
        rng = np.random.default_rng(self.random_state)
        k, d = ubm.n_components, ubm.n_features
        noise = rng.standard_normal((k, d, self.rank))
        return np.sqrt(ubm.variances)[:, :, None] * noise / np.sqrt(self.rank)

    def fit(
        self, stats: StatsSource | Sequence[UtteranceStats], *, engine: Engine | None = None
    ) -> TotalVariability:
        """Train ``T_`` by EM on the statistics (streamed in batches; E-step on ``engine``)."""
        src = _as_source(stats)
        self.ubm_ = src.ubm
        self.feature_config_ = src.feature_config
        if self.rank > self.ubm_.n_components * self.ubm_.n_features:
            raise DataError(f"rank: must be <= K*D, got {self.rank}")
        self.T_ = self._init(self.ubm_)
        self.history_ = []
        for it in range(self.n_iter):
            self.T_, aux = self.iterate(src, engine=engine)
            self.history_.append({"iteration": it, "auxiliary": aux})
            log.info("TV iteration %d: auxiliary %.6g", it, aux)
        return self

    def iterate(
        self, stats: StatsSource, *, engine: Engine | None = None
    ) -> tuple[np.ndarray, float]:
        """One EM iteration from ``T_``: the new ``T`` and the auxiliary of the old one."""
        pre = precompute(self.T_, self.ubm_.variances)
        acc: _Acc = map_reduce(
            engine or LocalEngine(), _estep_task, stats.tasks(self.batch_size), pre
        )
        return m_step(acc, self.T_.shape, self.min_divergence), acc.aux

    def _check(self, src: StatsSource) -> None:
        if not hasattr(self, "T_"):
            raise ModelFormatError("TotalVariability: not fitted; call fit() or load() first")
        got, want = ubm_fingerprint(src.ubm), ubm_fingerprint(self.ubm_)
        if got != want:
            raise ModelMismatchError(
                f"statistics computed with UBM {got[:12]}... but the TV model was trained on "
                f"UBM {want[:12]}...; recompute the statistics with the model's UBM"
            )
        a, b = src.feature_config, self.feature_config_
        if a and b and a != b:
            raise ModelMismatchError(
                "statistics and TV model have different feature configs: "
                + "; ".join(config_differences(a, b))
            )

    def transform(
        self, stats: StatsSource | Sequence[UtteranceStats], *, engine: Engine | None = None
    ) -> np.ndarray:
        """i-vectors (posterior means), shape (n, rank), float64."""
        src = _as_source(stats)
        self._check(src)
        pre = precompute(self.T_, self.ubm_.variances)
        parts = (engine or LocalEngine()).map(_transform_task, src.tasks(self.batch_size), pre)
        return np.concatenate(parts)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``T_``, the UBM (with its SHA-256) and the feature config to HDF5."""
        cfg = {
            "rank": self.rank,
            "n_iter": self.n_iter,
            "min_divergence": self.min_divergence,
            "random_state": self.random_state,
        }
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            write_header(f, TV_FORMAT, FORMAT_VERSION, cfg)
            _write_ubm(f, self.ubm_, self.feature_config_)
            f.attrs["history"] = to_json(self.history_)
            f.create_dataset("T", data=self.T_)

    @classmethod
    def load(cls, path: str | os.PathLike[str], ubm: DiagGMM | None = None) -> TotalVariability:
        """Read a model; with ``ubm``, refuse a model trained on another UBM."""
        with open_checked(path, TV_FORMAT, FORMAT_VERSION) as f:
            cfg = from_json(f.attrs.get("config"), {})
            tv = cls(
                **{
                    k: cfg[k]
                    for k in ("rank", "n_iter", "min_divergence", "random_state")
                    if k in cfg
                }
            )
            tv.ubm_, tv.feature_config_ = _read_ubm(f, path, ubm)
            tv.history_ = from_json(f.attrs.get("history"), [])
            tv.T_ = f["T"][()]
        want = (tv.ubm_.n_components, tv.ubm_.n_features, tv.rank)
        if tv.T_.shape != want:
            raise ModelFormatError(f"{Path(path)}: T has shape {tv.T_.shape}, expected {want}")
        return tv


def _transform_task(task: Any, pre: Precomputed) -> np.ndarray:
    n, f = load_task(task)
    return solve_precisions(build_precisions(n, pre), linear_terms(f, pre), False)[0]


def iter_batches(src: StatsSource, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(N, F)`` batches of a statistics source, in order."""
    for task in src.tasks(batch_size):
        yield load_task(task)


__all__ = [
    "StatsFile",
    "StatsFileSlice",
    "StatsSet",
    "StatsSource",
    "TotalVariability",
    "UtteranceStats",
    "compute_stats",
    "iter_batches",
    "load_task",
    "utterance_stats",
]
