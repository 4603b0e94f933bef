"""The total-variability model and i-vectors, on the statistics of :mod:`uttstats`.

Model (Dehak et al. 2011, with the UBM covariances ``S`` kept fixed): an utterance's centred
first-order statistics ``F_k = sum_t g_tk (x_t - m_k)`` are explained by a low-rank offset
``T_k w`` of the UBM means, ``w ~ N(0, I_R)``. The i-vector is the posterior mean

    L = I + sum_k N_k T_k' S_k^-1 T_k,    w = L^-1 sum_k T_k' S_k^-1 F_k.

The E-step is batched: ``P_k = T_k' S_k^-1 T_k`` is computed once per iteration and kept in
LAPACK's rectangular full packed storage (:mod:`.rfp`, ``(K, R(R+1)/2)``), so the precisions
of ``b`` utterances are ONE matrix product ``N (b, K) @ P`` whose rows LAPACK factors in place
(pftrf), on threads that run in parallel. The M-step needs ``L^-1`` itself, which pftri gives
from the factor, in the same storage. The M-step accumulators are float64:
``C_k = sum_u N_uk (L_u^-1 + w_u w_u')`` (again one product) and ``A = sum_u F_u w_u'``; then
``T_k = A_k C_k^-1`` per component. The optional minimum-divergence step re-scales ``T`` by the
Cholesky factor of the mean ``E[w w']``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from scipy.linalg import blas
from threadpoolctl import threadpool_info

from ..engine import Engine, LocalEngine, blas_threads, map_reduce
from ..errors import DataError, GmmSpeechError, ModelFormatError, ModelMismatchError
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import ubm_fingerprint
from ..storage.atomic import atomic_path
from ..storage.h5io import from_json, open_checked, read_array, to_json, write_header
from ..storage.provenance import check_feature_config
from .rfp import RfpLayout, pftrf, pftri, pftrs, rfp_layout, sfrk
from .stats import (
    StatsSource,
    UtteranceStats,
    as_source,
    load_task,
    read_ubm_record,
    write_ubm_record,
)

log = logging.getLogger(__name__)

TV_FORMAT = "gmmspeech.TotalVariability"
FORMAT_VERSION = 1
_PARAMS = ("rank", "n_iter", "min_divergence", "random_state", "batch_size")


# ============================================================================ TV model
@dataclass
class Precomputed:
    """Per-iteration quantities shared by every E-step task."""

    ts: np.ndarray  # (K*D, R): S^-1 T, stacked
    packed: np.ndarray  # (K, Rp): T_k' S_k^-1 T_k in RFP storage, Rp = R(R+1)/2
    layout: RfpLayout

    @property
    def rank(self) -> int:
        return self.layout.rank


@dataclass
class Accumulators:
    """E-step accumulators (float64, in layouts BLAS adds into in place).

    ``c`` (K, Rp), C-ordered: ``sum_u N_uk E[w w']_u`` in RFP storage, a contiguous row per
    component for the M-step; ``a`` (K*D, R), Fortran-ordered: ``sum_u F_u w_u'``;
    ``m`` (Rp,): ``sum_u E[w w']_u`` (RFP); ``aux``: ``sum_u 0.5 (b_u' w_u - log det L_u)``.
    """

    n: int
    c: np.ndarray
    a: np.ndarray
    m: np.ndarray
    aux: float

    @classmethod
    def zeros(cls, kd: int, k: int, r: int) -> Accumulators:
        rp = r * (r + 1) // 2
        return cls(0, np.zeros((k, rp)), np.zeros((kd, r), order="F"), np.zeros(rp), 0.0)

    def __add__(self, o: Accumulators) -> Accumulators:
        return Accumulators(
            self.n + o.n, self.c + o.c, self.a + o.a, self.m + o.m, self.aux + o.aux
        )

    def add_batch(
        self, n: np.ndarray, f: np.ndarray, w: np.ndarray, second: np.ndarray, aux: np.ndarray
    ) -> None:
        """Add a batch in place: two GEMMs with beta = 1 (no (K, Rp) temporary)."""
        f2 = f.reshape(f.shape[0], -1)
        # C-ordered (b, x) arrays are Fortran (x, b) ones: pass them transposed, no copies;
        # c (K, Rp) C-ordered is c' (Rp, K) Fortran-ordered = second' n
        self.c = blas.dgemm(1.0, second.T, n.T, beta=1.0, c=self.c.T, trans_b=1, overwrite_c=1).T
        self.a = blas.dgemm(1.0, f2.T, w.T, beta=1.0, c=self.a, trans_b=1, overwrite_c=1)
        self.m += second.sum(axis=0)
        self.aux += float(aux.sum())
        self.n += n.shape[0]


def precompute(t: np.ndarray, var: np.ndarray) -> Precomputed:
    """``S^-1 T`` and the RFP-stored ``T_k' S_k^-1 T_k`` of a model ``T`` (K, D, R)."""
    k, d, r = t.shape
    layout = rfp_layout(r)
    scaled = t / np.sqrt(var)[:, :, None]  # P_k = X_k' X_k with X_k = S_k^-1/2 T_k
    packed = np.empty((k, layout.size))

    def one(j: int) -> None:
        # scaled[j] (D, R) C-ordered is X_k' (R, D) Fortran-ordered: sfrk's A A'
        sfrk(packed[j], r, scaled[j].T, beta=0.0)

    _parallel(one, k)
    ts = scaled / np.sqrt(var)[:, :, None]
    return Precomputed(ts.reshape(k * d, r), packed, layout)


def build_precisions(n: np.ndarray, pre: Precomputed, out: np.ndarray | None = None) -> np.ndarray:
    """``L_u = I + sum_k N_uk P_k`` of a batch in RFP storage, (b, Rp), as ONE product ``N @ P``.

    ``out``: a reusable (at least b, Rp) buffer; a fresh 100 MB array per batch costs its
    page faults again.
    """
    lp = np.matmul(n, pre.packed, out=None if out is None else out[: n.shape[0]])
    lp[:, pre.layout.diag] += 1.0
    return lp


def linear_terms(f: np.ndarray, pre: Precomputed) -> np.ndarray:
    """``sum_k T_k' S_k^-1 F_uk`` of a batch: (b, K, D) -> (b, R), C-ordered.

    Written as ``(S^-1 T)' F'``: OpenBLAS ran ``F @ (S^-1 T)`` (a short, very deep product)
    4x slower than this orientation of the same product.
    """
    return np.ascontiguousarray((pre.ts.T @ f.reshape(f.shape[0], -1).T).T)


def solve_precisions(
    lp: np.ndarray, lin: np.ndarray, layout: RfpLayout, want_second: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Cholesky solves of a batch of RFP precisions ``lp`` (b, Rp), overwritten.

    Returns ``w`` (b, R), the posterior means ``L^-1 lin``; ``second``, which is ``lp`` now
    holding the RFP ``E[w w'] = L^-1 + w w'`` (``L^-1`` by LAPACK pftri from the factor), or
    None; ``aux`` (b,), ``0.5 (lin' w - log det L)``, the log-likelihoods up to a constant.
    """
    r = layout.rank
    w = lin.copy()
    logdet = np.empty(lin.shape[0])

    def one(u: int) -> None:
        if pftrf(lp[u], r) != 0:
            raise DataError(f"utterance {u} of a batch: precision not positive definite")
        pftrs(lp[u], r, w[u])
        logdet[u] = layout.log_det_factor(lp[u])
        if want_second:
            pftri(lp[u], r)
            sfrk(lp[u], r, w[u])

    _parallel(one, lin.shape[0])
    aux = 0.5 * np.einsum("ur,ur->u", lin, w) - 0.5 * logdet
    return w, (lp if want_second else None), aux


def _parallel(fn: Callable[[int], None], n: int) -> None:
    """``fn(i)`` for i < n on as many threads as BLAS may use, each with one BLAS thread.

    R x R factorisations are too small for OpenBLAS's threads (on a busy 2-core machine a
    400 x 400 potrf + potri took 44 ms with 2 BLAS threads, 3.8 ms with 1); the routines of
    :mod:`.rfp` release the GIL, so utterances (or components) go to Python threads instead.
    """
    info = [i.get("num_threads", 1) for i in threadpool_info() if i.get("user_api") == "blas"]
    n_threads = int(max(info or [1]))
    with blas_threads(1):
        if n_threads <= 1:
            for i in range(n):
                fn(i)
        else:
            with ThreadPoolExecutor(n_threads) as pool:
                list(pool.map(fn, range(n)))


def estep_batch(
    n: np.ndarray,
    f: np.ndarray,
    pre: Precomputed,
    want_second: bool,
    buf: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``w``, the RFP ``E[w w']`` (or None; a view of ``buf`` when given) and ``aux`` of a
    batch: see :func:`solve_precisions`."""
    lin = linear_terms(f, pre)
    return solve_precisions(build_precisions(n, pre, buf), lin, pre.layout, want_second)


def _buffer(buf: np.ndarray | None, b: int, pre: Precomputed) -> np.ndarray:
    """``buf``, or a larger one when a batch of ``b`` does not fit."""
    return buf if buf is not None and buf.shape[0] >= b else np.empty((b, pre.layout.size))


def _estep_task(shard: list[Any], pre: Precomputed) -> Accumulators:
    """Map task: E-step accumulators of a shard (a list of batches of utterances)."""
    kd, r = pre.ts.shape
    acc = Accumulators.zeros(kd, pre.packed.shape[0], r)
    buf: np.ndarray | None = None
    for task in shard:
        n, f = load_task(task)
        buf = _buffer(buf, n.shape[0], pre)
        w, second, aux = estep_batch(n, f, pre, True, buf)
        if second is None:  # asked for above: never None
            raise GmmSpeechError("estep_batch gave no second-order statistics")
        acc.add_batch(n, f, w, second, aux)
    return acc


def _transform_task(shard: list[Any], pre: Precomputed) -> np.ndarray:
    out = []
    buf: np.ndarray | None = None
    for task in shard:
        n, f = load_task(task)
        buf = _buffer(buf, n.shape[0], pre)
        out.append(estep_batch(n, f, pre, False, buf)[0])
    return np.concatenate(out)


def _shards(tasks: list[Any], engine: Engine) -> list[list[Any]]:
    """Contiguous groups of tasks, two per worker (one in this process)."""
    par = int(getattr(engine, "parallelism", 1))
    n = max(1, min(len(tasks), 1 if par <= 1 else 2 * par))
    return [[tasks[i] for i in g] for g in np.array_split(np.arange(len(tasks)), n)]


def m_step(acc: Accumulators, old: np.ndarray, min_divergence: bool) -> np.ndarray:
    """New ``T`` (K, D, R) from the accumulators: ``T_k = A_k C_k^-1`` per component.

    A component no utterance visits (``C_k`` not positive definite) keeps its old ``T_k``.
    """
    k, d, r = old.shape
    layout = rfp_layout(r)
    t = old.copy()
    kept: list[int] = []

    def one(j: int) -> None:
        cj = acc.c[j].copy()
        if pftrf(cj, r) != 0:
            kept.append(j)
            return
        # A_k (D, R) C-ordered is A_k' (R, D) Fortran-ordered: solve C_k X = A_k' in place
        x = np.ascontiguousarray(acc.a[j * d : (j + 1) * d])
        pftrs(cj, r, x.T)
        t[j] = x

    _parallel(one, k)
    if kept:
        log.warning("TV M-step: %d component(s) without data kept their T_k", len(kept))
    if min_divergence:
        with blas_threads(1):  # one R x R factor: OpenBLAS's threads took 0.57 s on it
            g = np.linalg.cholesky(layout.full(acc.m) / acc.n)
        t = (t.reshape(k * d, r) @ g).reshape(old.shape)
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
        Utterances per batch (memory is O(batch_size x R^2) plus the model).

    Attributes
    ----------
    T_ : ndarray, shape (K, D, R), float64
    ubm_ : DiagGMM
    feature_config_ : dict or None
    history_ : list of dict
        ``auxiliary`` per iteration: ``sum_u 0.5 (b_u' w_u - log det L_u)``, the statistics'
        log-likelihood under the model entering it, up to a constant; it never decreases.
    """

    def __init__(
        self,
        rank: int = 400,
        n_iter: int = 10,
        min_divergence: bool = True,
        random_state: int = 0,
        batch_size: int = 100,
    ) -> None:
        checks = (("rank", rank, 1), ("n_iter", n_iter, 0), ("batch_size", batch_size, 1))
        for name, v, low in checks:
            if int(v) < low:
                raise DataError(f"{name}: must be >= {low}, got {v}")
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
        src = as_source(stats)
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
        eng = engine or LocalEngine()
        acc: Accumulators = map_reduce(
            eng, _estep_task, _shards(stats.tasks(self.batch_size), eng), pre
        )
        if not np.isfinite(acc.aux):
            raise DataError("statistics: the TV E-step gave a non-finite likelihood")
        return m_step(acc, self.T_, self.min_divergence), acc.aux

    def _check(self, src: StatsSource) -> None:
        if not hasattr(self, "T_"):
            raise ModelFormatError("TotalVariability: not fitted; call fit() or load() first")
        got, want = ubm_fingerprint(src.ubm), ubm_fingerprint(self.ubm_)
        if got != want:
            raise ModelMismatchError(
                f"statistics computed with UBM {got[:12]}... but the TV model was trained on "
                f"UBM {want[:12]}...; recompute the statistics with the model's UBM"
            )
        check_feature_config(
            src.feature_config,
            self.feature_config_,
            what="the statistics' frames",
            expected_by="the TV model",
        )

    def transform(
        self, stats: StatsSource | Sequence[UtteranceStats], *, engine: Engine | None = None
    ) -> np.ndarray:
        """i-vectors (posterior means), shape (n, rank), float64."""
        src = as_source(stats)
        self._check(src)
        pre = precompute(self.T_, self.ubm_.variances)
        eng = engine or LocalEngine()
        parts = eng.map(_transform_task, _shards(src.tasks(self.batch_size), eng), pre)
        return np.concatenate(parts)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of ``T_`` and of its UBM: what i-vectors and back ends record of it."""
        h = hashlib.sha256(np.ascontiguousarray(self.T_, dtype=np.float64).tobytes())
        h.update(ubm_fingerprint(self.ubm_).encode())
        return h.hexdigest()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``T_``, the UBM (with its SHA-256) and the feature config to HDF5."""
        cfg = {k: getattr(self, k) for k in _PARAMS}
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            write_header(f, TV_FORMAT, FORMAT_VERSION, cfg)
            write_ubm_record(f, self.ubm_, self.feature_config_)
            f.attrs["history"] = to_json(self.history_)
            f.create_dataset("T", data=self.T_)

    @classmethod
    def load(cls, path: str | os.PathLike[str], ubm: DiagGMM | None = None) -> TotalVariability:
        """Read a model; with ``ubm``, refuse a model trained on another UBM."""
        with open_checked(path, TV_FORMAT, FORMAT_VERSION) as f:
            cfg = from_json(f.attrs.get("config"), {})
            tv = cls(**{k: cfg[k] for k in _PARAMS if k in cfg})
            tv.ubm_, tv.feature_config_ = read_ubm_record(f, path, ubm)
            tv.history_ = from_json(f.attrs.get("history"), [])
            want = (tv.ubm_.n_components, tv.ubm_.n_features, tv.rank)
            tv.T_ = read_array(f, "T", want, where=Path(path), kinds="f", finite=True)
        return tv


IVECTORS_FORMAT = "gmmspeech.IVectors"


@dataclass
class IVectorSet:
    """i-vectors of utterances: ``vectors`` (n, R) float64 in the order of ``utt_ids``;
    ``tv``: the :attr:`TotalVariability.fingerprint` of the model that extracted them."""

    utt_ids: list[str]
    vectors: np.ndarray
    tv: str | None = None

    def as_dict(self) -> dict[str, np.ndarray]:
        """Utterance id -> its i-vector (R,)."""
        return dict(zip(self.utt_ids, self.vectors, strict=True))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write to HDF5 atomically."""
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            write_header(f, IVECTORS_FORMAT, FORMAT_VERSION)
            ids = np.array(self.utt_ids, dtype=object)
            f.create_dataset("utt_ids", data=ids, dtype=h5py.string_dtype())
            f.create_dataset("vectors", data=self.vectors)
            if self.tv:
                f.attrs["tv_fingerprint"] = self.tv

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IVectorSet:
        """Read a file written by :meth:`save`."""
        with open_checked(path, IVECTORS_FORMAT, FORMAT_VERSION) as f:
            raw = read_array(f, "utt_ids", (None,), where=Path(path), kinds="O")
            ids = [x.decode() if isinstance(x, bytes) else str(x) for x in raw]
            vectors = read_array(
                f,
                "vectors",
                (len(ids), None),
                where=Path(path),
                kinds="f",
                finite=True,
                row_names=ids,
            )
            tv = f.attrs.get("tv_fingerprint")
        return cls(ids, np.asarray(vectors, dtype=np.float64), str(tv) if tv else None)


def check_same_tv(named: Mapping[Any, str | None]) -> str | None:
    """Refuse i-vectors and back ends of different TV models: ``named`` maps a file to the
    TV fingerprint it records (None: written before fingerprints, not checked). Returns the
    fingerprint they share (None: none records one)."""
    known = {path: fp for path, fp in named.items() if fp}
    if len(set(known.values())) > 1:
        parts = ", ".join(f"{path} (TV {fp[:12]})" for path, fp in known.items())
        raise ModelMismatchError(
            f"these files come from different total-variability models: {parts}; extract "
            f"every i-vector with the TV model the back end was trained on"
        )
    return next(iter(known.values()), None)
