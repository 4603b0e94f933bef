"""Per-utterance Baum-Welch statistics on a UBM, for total-variability modelling.

``utterance_stats`` gives one utterance's zeroth order ``N_k = sum_t g_tk`` and first order
``F_k = sum_t g_tk (x_t - m_k)`` centred on the UBM means, in float64. ``compute_stats`` runs
it over a feature store (or arrays) on an engine, in memory (:class:`StatsSet`) or streamed
into an HDF5 file (:class:`StatsFile`). Both record the UBM (parameters and SHA-256) and
the feature config, and both are *statistics sources*: ``tasks(batch_size)`` gives plain
work items that :func:`load_task` turns into ``(N (b, K), F (b, K, D))`` batches.
With ``min_post`` a file of a feature store's statistics holds the pruned posteriors
(:mod:`.posteriors`) and forms the statistics from them and the store's frames when read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

import h5py
import numpy as np

from ..config.sections import to_dict
from ..engine import Engine, LocalEngine
from ..errors import DataError, ModelFormatError, ModelMismatchError
from ..features.frames import as_frames
from ..features.store import FeatureStore, read_utterances
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import ubm_fingerprint
from ..storage.atomic import atomic_path
from ..storage.h5io import from_json, open_checked, read_array, to_json, write_header
from ..storage.provenance import check_feature_config
from .posteriors import (
    LAYOUT,
    POSTERIORS_FORMAT_VERSION,
    PosteriorWriter,
    check_layout,
    check_min_post,
    features_of,
    frame_posteriors,
    posteriors_task,
    read_stats,
)

STATS_FORMAT = "gmmspeech.UtteranceStats"
FORMAT_VERSION = 1
#: files with pruned posteriors store only the components with N_k > 0 (``layout: sparse``)
SPARSE_FORMAT_VERSION = 2
_FRAME_BLOCK = 4096


@dataclass
class UtteranceStats:
    """Baum-Welch statistics of one utterance, float64: ``zeroth`` (K,) ``N_k = sum_t g_tk``
    and ``first`` (K, D) ``F_k = sum_t g_tk (x_t - m_k)``, centred on the means of ``ubm``
    (whose posteriors ``g_tk`` they are)."""

    zeroth: np.ndarray
    first: np.ndarray
    ubm: DiagGMM = field(repr=False)
    n_frames: int = 0


def _stats_arrays(
    ubm: DiagGMM, X: Any, top_n: int | None, min_post: float | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    x = as_frames(X, ubm.n_features)
    k = ubm.n_components
    if top_n is not None and not 1 <= int(top_n) <= k:
        raise DataError(f"top_n: must be between 1 and n_components={k}, got {top_n}")
    min_post = check_min_post(min_post)
    n = np.zeros(k)
    xs = np.zeros((k, ubm.n_features))
    for s in range(0, x.shape[0], _FRAME_BLOCK):
        block = x[s : s + _FRAME_BLOCK]
        g = frame_posteriors(ubm, block, top_n, min_post)
        n += g.sum(axis=0)
        xs += g.T @ block.astype(np.float64)
    return n, xs - n[:, None] * ubm.means, int(x.shape[0])


def utterance_stats(
    ubm: DiagGMM, X: Any, *, top_n: int | None = None, min_post: float | None = None
) -> UtteranceStats:
    """Baum-Welch statistics of one utterance, in float64.

    Parameters
    ----------
    ubm : DiagGMM
        K components, D features.
    X : array-like, shape (n_frames, D)
    top_n : int, optional
        Keep only each frame's ``top_n`` most likely components, their posteriors
        renormalised to sum to 1 (default: all K components, exact posteriors).
    min_post : float, optional
        Then drop posteriors below this (Kaldi's ``min_post``, e.g. 0.025; each frame keeps
        at least its best component) and renormalise each frame's to sum to 1. Components
        no frame reaches get ``N_k = 0`` exactly, which :func:`compute_stats` stores sparse.

    Returns
    -------
    UtteranceStats
        ``zeroth`` (K,) and ``first`` (K, D) centred on ``ubm.means``.
    """
    n, f, t = _stats_arrays(ubm, X, top_n, min_post)
    return UtteranceStats(n, f, ubm, t)


def _stats_task(
    item: Any, shared: tuple[DiagGMM, int | None, float | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Map task: stats of a batch; ``item`` is (store path, ids) or a list of arrays."""
    ubm, top_n, min_post = shared
    if isinstance(item, tuple):
        path, ids = item
        # only this batch's datasets: opening a FeatureStore reads the index of every
        # utterance, which per task made the stage quadratic in the store's size
        arrays = list(read_utterances(path, ids))
    else:
        arrays = item
    out = [_stats_arrays(ubm, x, top_n, min_post)[:2] for x in arrays]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


class StatsSource(Protocol):
    """Statistics of many utterances as work items: ``tasks(batch_size)`` returns plain
    data that :func:`load_task` turns into ``(N (b, K), F (b, K, D))``, in order."""

    ubm: DiagGMM
    feature_config: dict[str, Any] | None

    def __len__(self) -> int: ...
    def tasks(self, batch_size: int) -> list[Any]: ...


@dataclass
class StatsFileSlice:
    """Utterances ``start:stop`` of a stats file (opened by whoever loads it); ``features``:
    the feature store of a posteriors file (``layout: posteriors``)."""

    path: str
    start: int
    stop: int
    features: str | None = None

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        return _load_rows(self.path, list(range(self.start, self.stop)), self.features)


@dataclass
class StatsFileRows:
    """Rows ``rows`` (increasing) of a stats file (opened by whoever loads it)."""

    path: str
    rows: list[int]
    features: str | None = None

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        return _load_rows(self.path, self.rows, self.features)


def _load_rows(path: str, rows: list[int], features: str | None) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        layout = _layout(f)
        if layout == LAYOUT:
            return read_stats(f, rows, features_of(f, path, features))
        if layout == "sparse":
            return _read_sparse(f, rows)
        if rows and rows == list(range(rows[0], rows[-1] + 1)):
            return f["zeroth"][rows[0] : rows[-1] + 1], f["first"][rows[0] : rows[-1] + 1]
        return f["zeroth"][rows], f["first"][rows]


def _layout(f: h5py.File) -> str:
    return str(f.attrs.get("layout", "dense"))


def _read_sparse(f: h5py.File, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Dense ``(N (b, K), F (b, K, D))`` of some rows of a sparse stats file: row ``i`` holds
    entries ``offsets[i]:offsets[i+1]`` of ``components``, ``zeroth_nz`` and ``first_nz``."""
    k, d = f["ubm/means"].shape
    offsets = f["offsets"][()]
    n = np.zeros((len(rows), k))
    first = np.zeros((len(rows), k, d))
    if not rows:
        return n, first
    lo, hi = int(offsets[rows[0]]), int(offsets[rows[-1] + 1])
    comps = f["components"][lo:hi]
    zn = f["zeroth_nz"][lo:hi]
    fn = f["first_nz"][lo:hi]
    for j, r in enumerate(rows):
        a, b = int(offsets[r]) - lo, int(offsets[r + 1]) - lo
        n[j, comps[a:b]] = zn[a:b]
        first[j, comps[a:b]] = fn[a:b]
    return n, first


class StatsFileSubset:
    """Some utterances of a :class:`StatsFile`, read batch by batch in the file's order.

    Parameters
    ----------
    src : StatsFile
    rows : sequence of int
        Row positions in the file (sorted here; duplicates dropped).
    """

    def __init__(self, src: StatsFile, rows: Sequence[int]) -> None:
        self.path, self.ubm, self.feature_config = src.path, src.ubm, src.feature_config
        self.features = src.features
        self.rows = sorted(set(int(r) for r in rows))

    def __len__(self) -> int:
        return len(self.rows)

    def tasks(self, batch_size: int) -> list[Any]:
        r = self.rows
        return [
            StatsFileRows(self.path, r[s : s + batch_size], self.features)
            for s in range(0, len(r), batch_size)
        ]


class StatsFile:
    """Statistics in a file written by :meth:`StatsSet.save`, read batch by batch.

    Memory does not grow with the number of utterances: each task reads its own slice.
    ``utt_ids`` are the utterances in the file's order; :meth:`select` keeps some of them.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        ubm: DiagGMM | None = None,
        features: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = str(path)
        with open_checked(path, STATS_FORMAT, POSTERIORS_FORMAT_VERSION) as f:
            self.ubm, self.feature_config = read_ubm_record(f, path, ubm)
            #: "dense", "sparse" (statistics of the touched components) or "posteriors"
            self.layout = _layout(f)
            self.sparse = self.layout != "dense"
            if self.sparse:
                self._n = int(read_array(f, "offsets", (None,), where=path).shape[0]) - 1
            else:
                self._n = int(f["zeroth"].shape[0])
            raw = read_array(f, "utt_ids", (self._n,), where=path, kinds="O")
            self.utt_ids = [x.decode() if isinstance(x, bytes) else str(x) for x in raw]
            #: the feature store a posteriors file forms its statistics from (else None)
            self.features: str | None = None
            if self.layout == LAYOUT:
                check_layout(f, path, self._n)
                self.features = features_of(f, path, features)
                return
            k, d = self.ubm.n_components, self.ubm.n_features
            nnz = int(f["components"].shape[0]) if self.sparse else 0
            shapes = (
                (("zeroth_nz", (nnz,)), ("first_nz", (nnz, d)))
                if self.sparse
                else (("zeroth", (self._n, k)), ("first", (self._n, k, d)))
            )
            for name, shape in shapes:
                got = tuple(f[name].shape)
                if got != shape:
                    raise ModelFormatError(
                        f"{path}: dataset {name!r} has shape {got}, expected {shape}"
                    )

    def __len__(self) -> int:
        return self._n

    def check_utterances(self, ids: Sequence[str], where: str) -> None:
        """Refuse statistics of other utterances than ``ids`` (e.g. those of a feature
        store ``where``), or in another order: a copied or stale stats file."""
        if list(ids) == self.utt_ids:
            return
        mine, theirs = set(self.utt_ids), set(ids)
        if mine == theirs:
            what = "the same utterances in another order"
        else:
            extra, lack = sorted(mine - theirs), sorted(theirs - mine)
            what = f"{len(extra)} utterance(s) not in it (e.g. {extra[:1]}), {len(lack)} of "
            what += f"its missing (e.g. {lack[:1]})"
        raise DataError(
            f"{self.path}: these statistics do not belong to {where}: {what}; compute "
            f"them again from it"
        )

    def select(self, ids: Sequence[str]) -> StatsFileSubset:
        """The utterances ``ids`` of this file (in the file's order); a :class:`DataError`
        names the first one it lacks."""
        pos = {u: i for i, u in enumerate(self.utt_ids)}
        missing = [u for u in ids if u not in pos]
        if missing:
            raise DataError(f"{self.path}: no statistics of utterance {missing[0]!r}")
        return StatsFileSubset(self, [pos[u] for u in ids])

    def tasks(self, batch_size: int) -> list[Any]:
        return [
            StatsFileSlice(self.path, s, min(s + batch_size, self._n), self.features)
            for s in range(0, self._n, batch_size)
        ]


def load_task(task: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(N, F)`` of a work item: a pair of arrays, or anything with ``load()``."""
    n, f = (task[0], task[1]) if isinstance(task, tuple) else task.load()
    n, f = np.asarray(n, dtype=np.float64), np.asarray(f, dtype=np.float64)
    bad = ~np.isfinite(n).all(axis=1) | ~np.isfinite(f.reshape(len(f), -1)).all(axis=1)
    if bad.any():
        raise DataError(
            f"{_bad_row(task, int(np.argmax(bad)))}: NaN or infinite values; recompute them"
        )
    return n, f


def _bad_row(task: Any, r: int) -> str:
    """Where row ``r`` of a work item comes from: the stats file and the utterance."""
    rows = getattr(task, "rows", None)
    row = rows[r] if rows is not None else getattr(task, "start", 0) + r
    path = getattr(task, "path", None)
    if path is None:
        return f"statistics (row {r})"
    try:
        with h5py.File(path, "r") as h:
            utt = h["utt_ids"][row]
        name = utt.decode() if isinstance(utt, bytes) else str(utt)
    except (OSError, KeyError, ValueError, IndexError):
        return f"{path}: statistics row {row}"
    return f"{path}: statistics of utterance {name!r}"


@dataclass
class StatsSet:
    """Statistics of many utterances under one UBM, in memory: ``zeroth`` (n, K) and
    ``first`` (n, K, D) float64, ``utt_ids`` and the ``feature_config`` of the frames."""

    zeroth: np.ndarray
    first: np.ndarray
    ubm: DiagGMM = field(repr=False)
    utt_ids: list[str] = field(default_factory=list)
    feature_config: dict[str, Any] | None = None

    def __len__(self) -> int:
        return int(self.zeroth.shape[0])

    def tasks(self, batch_size: int) -> list[Any]:
        b = batch_size
        return [(self.zeroth[s : s + b], self.first[s : s + b]) for s in range(0, len(self), b)]

    @classmethod
    def from_list(cls, stats: Sequence[UtteranceStats]) -> StatsSet:
        """Stack what :func:`utterance_stats` returned (all under the same UBM)."""
        if len(stats) == 0:
            raise DataError("stats: no utterances")
        ubm, key = stats[0].ubm, ubm_fingerprint(stats[0].ubm)
        bad = [i for i, x in enumerate(stats) if x.ubm is not ubm and ubm_fingerprint(x.ubm) != key]
        if bad:
            raise ModelMismatchError(f"stats[{bad[0]}]: made with another UBM than stats[0]")
        n, f = np.stack([x.zeroth for x in stats]), np.stack([x.first for x in stats])
        return cls(n, f, ubm, [str(i) for i in range(len(stats))], ubm.feature_config)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write to HDF5 atomically, with the UBM (and its SHA-256) and the feature config."""
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            _write_header(f, self.ubm, self.feature_config, self.utt_ids)
            f.create_dataset("zeroth", data=self.zeroth)
            f.create_dataset("first", data=self.first)

    @classmethod
    def load(cls, path: str | os.PathLike[str], ubm: DiagGMM | None = None) -> StatsSet:
        """Read a file written by :meth:`save`; with ``ubm``, refuse stats of another UBM."""
        with open_checked(path, STATS_FORMAT, FORMAT_VERSION) as f:
            file_ubm, fc = read_ubm_record(f, path, ubm)
            k, d = file_ubm.n_components, file_ubm.n_features
            raw = read_array(f, "utt_ids", (None,), where=path, kinds="O")
            ids = [s.decode() if isinstance(s, bytes) else str(s) for s in raw]
            n = read_array(f, "zeroth", (len(ids), k), where=path, kinds="f")
            first = read_array(f, "first", (len(ids), k, d), where=path, kinds="f")
            return cls(n, first, file_ubm, ids, fc)


def _write_header(
    f: h5py.File,
    ubm: DiagGMM,
    feature_config: dict[str, Any] | None,
    ids: list[str],
    version: int = FORMAT_VERSION,
) -> None:
    write_header(f, STATS_FORMAT, version)
    write_ubm_record(f, ubm, feature_config)
    f.create_dataset("utt_ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())


def write_ubm_record(f: h5py.File, ubm: DiagGMM, feature_config: dict[str, Any] | None) -> None:
    f.attrs["ubm_sha256"] = ubm_fingerprint(ubm)
    f.attrs["feature_config"] = to_json(feature_config)
    g = f.create_group("ubm")
    for name in ("weights", "means", "variances"):
        g.create_dataset(name, data=getattr(ubm, name))


def read_ubm_record(
    f: h5py.File, path: Any, ubm: DiagGMM | None
) -> tuple[DiagGMM, dict[str, Any] | None]:
    try:
        g = f["ubm"]
        shape = getattr(g.get("means"), "shape", None)
        k, d = shape if shape is not None and len(shape) == 2 else (None, None)
        w = read_array(g, "weights", (k,), where=path, kinds="f")
        mu = read_array(g, "means", (k, d), where=path, kinds="f")
        stored = DiagGMM(w, mu, read_array(g, "variances", (k, d), where=path, kinds="f"))
        key = str(f.attrs["ubm_sha256"])
    except (KeyError, DataError) as exc:
        raise ModelFormatError(f"{path}: missing or invalid UBM record ({exc})") from None
    fc = from_json(f.attrs.get("feature_config"))
    if ubm is not None:
        got = ubm_fingerprint(ubm)
        if got != key:
            raise ModelMismatchError(
                f"{path}: made with the UBM of SHA-256 {key[:12]}... (K={stored.n_components}), "
                f"not the one given ({got[:12]}..., K={ubm.n_components}); use the matching UBM"
            )
        return ubm, fc
    stored.feature_config = fc
    return stored, fc


def _stats_items(
    ubm: DiagGMM, features: Any, batch_size: int
) -> tuple[list[Any], list[str], dict[str, Any] | None]:
    """Work items, utterance ids and feature config of ``compute_stats``'s input."""
    fc = ubm.feature_config
    if isinstance(features, (str, os.PathLike, FeatureStore)):
        store = features if isinstance(features, FeatureStore) else FeatureStore(features)
        try:
            ids, store_fc, path = list(store), to_dict(store.config), str(store.path)
        finally:
            if store is not features:
                store.close()
        check_feature_config(store_fc, fc, what=f"{path}: the features", expected_by="the UBM")
        return (
            [(path, ids[s : s + batch_size]) for s in range(0, len(ids), batch_size)],
            ids,
            (fc or store_fc),
        )
    if isinstance(features, Mapping):
        ids, arrays = list(features), list(features.values())
    else:
        arrays = list(features)
        ids = [str(i) for i in range(len(arrays))]
    return [arrays[s : s + batch_size] for s in range(0, len(arrays), batch_size)], ids, fc


@overload
def compute_stats(
    ubm: DiagGMM,
    features: FeatureStore | str | os.PathLike[str] | Sequence[Any] | Mapping[str, Any],
    *,
    top_n: int | None = None,
    min_post: float | None = None,
    engine: Engine | None = None,
    batch_size: int = 32,
    out: None = None,
) -> StatsSet: ...


@overload
def compute_stats(
    ubm: DiagGMM,
    features: FeatureStore | str | os.PathLike[str] | Sequence[Any] | Mapping[str, Any],
    *,
    top_n: int | None = None,
    min_post: float | None = None,
    engine: Engine | None = None,
    batch_size: int = 32,
    out: str | os.PathLike[str],
) -> StatsFile: ...


def compute_stats(
    ubm: DiagGMM,
    features: FeatureStore | str | os.PathLike[str] | Sequence[Any] | Mapping[str, Any],
    *,
    top_n: int | None = None,
    min_post: float | None = None,
    engine: Engine | None = None,
    batch_size: int = 32,
    out: str | os.PathLike[str] | None = None,
) -> StatsSet | StatsFile:
    """Statistics of many utterances, computed on an engine (same numbers on every engine).

    Parameters
    ----------
    ubm : DiagGMM
    features : FeatureStore, path to one, list of arrays or mapping ``utt_id -> array``
        A store's feature config must match ``ubm.feature_config`` when both are known;
        workers open the store themselves.
    top_n, min_post : int, float, optional
        See :func:`utterance_stats`. With ``min_post``, a file ``out`` of a feature store's
        statistics stores the pruned posteriors instead (:mod:`.posteriors`, ``layout:
        posteriors``, format version 3; about 1/25 of the dense size at K=512, D=60):
        reading it forms the statistics again from them and the store's frames, so the
        store must stay. Of arrays, it stores per utterance only the components with
        ``N_k > 0`` (``layout: sparse``, format version 2).
    engine : Engine, optional
        Where the batches of ``batch_size`` utterances run (default: in this process).
    out : path-like, optional
        Stream the statistics into this HDF5 file (written atomically) as batches finish,
        so memory does not grow with the number of utterances, and return a :class:`StatsFile`.

    Returns
    -------
    StatsSet or StatsFile
        In the order of the store (sorted ids), the mapping or the list.
    """
    items, ids, fc = _stats_items(ubm, features, batch_size)
    if not ids:
        raise DataError("features: no utterances")
    eng = engine or LocalEngine()
    shared = (ubm, top_n, check_min_post(min_post))
    if out is None:
        parts = eng.map(_stats_task, items, shared)
        n, f = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return StatsSet(n, f, ubm, ids, fc)
    k, d = ubm.n_components, ubm.n_features
    if shared[2] is not None and isinstance(items[0], tuple):
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as h:
            _write_header(h, ubm, fc, ids, POSTERIORS_FORMAT_VERSION)
            writer = PosteriorWriter(h, out, items[0][0], ubm, shared[2])
            for batch in eng.imap(posteriors_task, items, shared):
                for p in batch:
                    writer.add(p)
            writer.close()
        return StatsFile(out, ubm)
    if shared[2] is not None:
        _write_sparse(out, eng, items, shared, ids, fc)
        return StatsFile(out, ubm)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h:
        _write_header(h, ubm, fc, ids)
        dn = h.create_dataset("zeroth", (len(ids), k), "f8", chunks=(1, k))
        df = h.create_dataset("first", (len(ids), k, d), "f8", chunks=(1, k, d))
        start = 0
        for n, f in eng.imap(_stats_task, items, shared):
            dn[start : start + len(n)], df[start : start + len(n)] = n, f
            start += len(n)
    return StatsFile(out, ubm)


def _write_sparse(
    out: str | os.PathLike[str],
    eng: Engine,
    items: list[Any],
    shared: tuple[DiagGMM, int | None, float | None],
    ids: list[str],
    fc: dict[str, Any] | None,
) -> None:
    """Stream pruned statistics into ``out``: per utterance only the components with
    ``N_k > 0``, as CSR rows (``offsets``, ``components``, ``zeroth_nz``, ``first_nz``)."""
    ubm = shared[0]
    d = ubm.n_features
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h:
        _write_header(h, ubm, fc, ids, SPARSE_FORMAT_VERSION)
        h.attrs["layout"] = "sparse"
        h.attrs["min_post"] = float(shared[2] or 0.0)
        dc = h.create_dataset("components", (0,), "i4", maxshape=(None,), chunks=(4096,))
        dn = h.create_dataset("zeroth_nz", (0,), "f8", maxshape=(None,), chunks=(4096,))
        df = h.create_dataset("first_nz", (0, d), "f8", maxshape=(None, d), chunks=(256, d))
        offsets = [0]
        for n, f in eng.imap(_stats_task, items, shared):
            for row in range(n.shape[0]):
                nz = np.flatnonzero(n[row] > 0)
                a, b = offsets[-1], offsets[-1] + nz.size
                for ds in (dc, dn, df):
                    ds.resize(b, axis=0)
                dc[a:b], dn[a:b], df[a:b] = nz, n[row, nz], f[row, nz]
                offsets.append(b)
        h.create_dataset("offsets", data=np.asarray(offsets, dtype=np.int64))


def as_source(stats: StatsSource | Sequence[UtteranceStats]) -> StatsSource:
    if isinstance(stats, Sequence):
        return StatsSet.from_list(stats)
    return stats
