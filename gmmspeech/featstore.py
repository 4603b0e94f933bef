"""HDF5 feature archive: one float32 dataset per utterance plus one index table.

Layout of a store ``OUT.h5`` (``format_version`` 2):

* root attributes: the standard ones (``format = "gmmspeech.FeatureStore"``,
  ``format_version``, ``gmmspeech_version``, ``config`` = the :class:`FeatureConfig` as
  JSON), plus ``config_hash`` and ``n_features``;
* group ``utts``: one dataset ``(n_frames, n_features)`` float32 per utterance, named by its
  id (percent-encoded where it holds ``%``, ``/`` or a leading ``.``), with no attributes;
* group ``index``: 1-D datasets of one row per utterance, in sorted id order: ``utt_id``
  (UTF-8 strings), ``n_frames`` (int64, after the VAD), ``n_frames_total`` (int64, before
  the VAD), ``duration`` (float64, seconds of audio) and ``source`` (the audio path).

Per-utterance facts live in the index rather than in attributes of each dataset because an
HDF5 attribute costs as much to write and read as a small dataset: opening a store of 5000
utterances reads 5 datasets instead of 20000 objects. Stores of ``format_version`` 1 (the
facts as attributes of each dataset, no index) are still read.

Datasets are written and read through h5py's low-level API (``h5d``), which is about twice
as fast per utterance as ``group[name]``; it matters for stores of many short clips.

Writing a store is :func:`write_store` (ready-made arrays) or
:func:`gmmspeech.extract_to_store` (audio of a data dir; resumable, see
:mod:`gmmspeech.extraction`).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import h5py
import numpy as np

from .config import FeatureConfig, config_hash, to_dict
from .errors import ConfigError, DataError
from .h5io import from_json, open_checked, write_header

FORMAT = "gmmspeech.FeatureStore"
FORMAT_VERSION = 2
GROUP = "utts"
INDEX = "index"


class UttInfo(NamedTuple):
    """One row of a store's index."""

    name: str  #: dataset name in the ``utts`` group (the encoded id)
    n_frames: int
    n_frames_total: int
    duration: float
    source: str


def encode_id(utt_id: str) -> str:
    """Dataset name of an utterance id (``%``, ``/`` and a leading ``.`` percent-encoded)."""
    name = utt_id.replace("%", "%25").replace("/", "%2F")
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name


def decode_id(name: str) -> str:
    """Inverse of :func:`encode_id`."""
    return urllib.parse.unquote(name)


def config_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two feature-config dicts (``key: a vs b``)."""
    out = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key, "<absent>"), wanted.get(key, "<absent>")
        if a != b:
            out.append(f"{key}: {a!r} in the store vs {b!r} requested")
    return out


# ============================================================================ low level
def small_metadata_cache(f: h5py.File, size: int = 1 << 20) -> h5py.File:
    """Cap HDF5's adaptive metadata cache of ``f`` (default up to 32 MiB per open file).

    Extraction, merging and training touch every utterance's object header once; with the
    default cache the memory of a pass would grow with the number of utterances.
    """
    config = f.id.get_mdc_config()
    config.set_initial_size = True
    config.initial_size = size
    config.min_size = size // 2
    config.max_size = size
    f.id.set_mdc_config(config)
    return f


_DCPL: Any = None


def _dataset_create_plist() -> Any:
    """Contiguous layout, no timestamps: the bytes of a store depend on its content only."""
    global _DCPL
    if _DCPL is None:
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_obj_track_times(False)
        _DCPL = plist
    return _DCPL


def write_frames(group: h5py.Group, name: str, frames: np.ndarray) -> None:
    """Create dataset ``name`` in ``group`` holding ``frames`` as float32."""
    x = np.ascontiguousarray(frames, dtype=np.float32)
    space = h5py.h5s.create_simple(x.shape)
    dset = h5py.h5d.create(
        group.id, name.encode(), h5py.h5t.IEEE_F32LE, space, dcpl=_dataset_create_plist()
    )
    try:
        if x.size:
            dset.write(h5py.h5s.ALL, h5py.h5s.ALL, x)
    finally:
        dset.close()


def read_frames(group: h5py.Group, name: str) -> np.ndarray:
    """Dataset ``name`` of ``group`` as a new float32 array."""
    dset = h5py.h5d.open(group.id, name.encode())
    try:
        out = np.empty(dset.shape, dtype=np.float32)
        if out.size:
            dset.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    finally:
        dset.close()
    return out


def write_store_header(f: h5py.File, cfg: dict[str, Any], n_features: int) -> h5py.Group:
    """The root attributes of a store; returns its new, empty ``utts`` group."""
    write_header(f, FORMAT, FORMAT_VERSION, cfg)
    f.attrs["config_hash"] = config_hash(cfg)
    f.attrs["n_features"] = int(n_features)
    return f.create_group(GROUP, track_order=False)


def write_index(f: h5py.File, rows: Mapping[str, UttInfo]) -> None:
    """Write the ``index`` group of a store from ``utt_id -> UttInfo`` (sorted by id here)."""
    ids = sorted(rows)
    text = h5py.string_dtype("utf-8")
    g = f.create_group(INDEX, track_order=False)
    columns: dict[str, tuple[Any, Any]] = {
        "utt_id": (np.array(ids, dtype=object), text),
        "n_frames": (np.array([rows[u].n_frames for u in ids], dtype=np.int64), np.int64),
        "n_frames_total": (
            np.array([rows[u].n_frames_total for u in ids], dtype=np.int64),
            np.int64,
        ),
        "duration": (np.array([rows[u].duration for u in ids], dtype=np.float64), np.float64),
        "source": (np.array([rows[u].source for u in ids], dtype=object), text),
    }
    for key, (values, dtype) in columns.items():
        g.create_dataset(key, data=values, dtype=dtype, track_times=False)


def read_index(f: h5py.File, where: str | os.PathLike[str]) -> dict[str, UttInfo]:
    """``utt_id -> UttInfo`` of an open store (or part file), of either format version."""
    group = f.get(GROUP)
    if not isinstance(group, h5py.Group):
        raise DataError(f"{where}: no {GROUP!r} group; not a complete feature store")
    index = f.get(INDEX)
    if not isinstance(index, h5py.Group):
        return _read_index_v1(group)
    try:
        ids = [str(u) for u in index["utt_id"].asstr()[()]]
        n_frames = index["n_frames"][()]
        n_total = index["n_frames_total"][()]
        duration = index["duration"][()]
        source = index["source"].asstr()[()]
    except (KeyError, OSError, ValueError, TypeError) as exc:
        raise DataError(f"{where}: unreadable {INDEX!r} table ({exc}); re-extract it") from None
    if not len(ids) == len(n_frames) == len(n_total) == len(duration) == len(source):
        raise DataError(f"{where}: the columns of the {INDEX!r} table differ in length")
    if len(ids) != len(group):
        raise DataError(
            f"{where}: the index lists {len(ids)} utterances but {GROUP!r} holds {len(group)}"
        )
    return {
        u: UttInfo(encode_id(u), int(n), int(t), float(d), str(s))
        for u, n, t, d, s in zip(ids, n_frames, n_total, duration, source, strict=True)
    }


def _read_index_v1(group: h5py.Group) -> dict[str, UttInfo]:
    """Format 1: the facts are attributes of each utterance's dataset."""
    out = {}
    for name in group.keys():
        ds = group[name]
        attrs = ds.attrs
        source = attrs.get("source", "")
        out[decode_id(name)] = UttInfo(
            name,
            int(ds.shape[0]),
            int(attrs.get("n_frames_total", ds.shape[0])),
            float(attrs.get("duration", 0.0)),
            source.decode() if isinstance(source, bytes) else str(source),
        )
    return out


class StoreWriter:
    """Adds utterances to a store (or part file) open for writing; :meth:`finish` writes
    the index. Create one per file, add, finish, close the file."""

    def __init__(self, f: h5py.File, cfg: dict[str, Any], n_features: int) -> None:
        self.file = f
        self.group = write_store_header(f, cfg, n_features)
        self.rows: dict[str, UttInfo] = {}

    def add(
        self, utt_id: str, frames: np.ndarray, n_frames_total: int, duration: float, source: str
    ) -> None:
        if utt_id in self.rows:
            raise DataError(f"{self.file.filename}: duplicate utterance id {utt_id!r}")
        name = encode_id(utt_id)
        write_frames(self.group, name, frames)
        self.rows[utt_id] = UttInfo(
            name, int(frames.shape[0]), int(n_frames_total), float(duration), str(source)
        )

    def finish(self) -> None:
        write_index(self.file, self.rows)


# ============================================================================== reading
class FeatureStore(Mapping[str, np.ndarray]):
    """Read-only view of a feature archive written by :func:`gmmspeech.extract_to_store`.

    A mapping ``utt_id -> ndarray (n_frames, n_features) float32``, iterated in sorted id
    order, and a frame source (:meth:`chunks`) for UBM training. Keep it out of forked
    processes (open it in the worker instead); close it, or use it as a context manager.

    Parameters
    ----------
    path : path-like
        The ``.h5`` store.
    utt_ids : iterable of str, optional
        Restrict the view to these utterances (each must be in the store).

    Attributes
    ----------
    path : Path
    config : FeatureConfig
        The feature configuration the store was extracted with.
    config_hash : str
    n_features : int
    n_frames : int
        Frames over the utterances of the view.
    """

    def __init__(self, path: str | os.PathLike[str], utt_ids: Iterable[str] | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists() and self.path.with_name(self.path.name + ".parts").is_dir():
            raise DataError(
                f"{self.path}: not finished: an extraction into it was interrupted; run "
                f"`gmmspeech extract` again with the same arguments to complete it"
            )
        self._f: h5py.File | None = small_metadata_cache(
            open_checked(self.path, FORMAT, FORMAT_VERSION, DataError)
        )
        self._owner = True
        try:
            f = self._f
            raw = from_json(f.attrs.get("config"), {})
            try:
                self.config = FeatureConfig(**raw)
            except (TypeError, ConfigError) as exc:
                raise DataError(
                    f"{self.path}: its feature config cannot be read by this gmmspeech ({exc})"
                ) from None
            self.config_hash = str(f.attrs.get("config_hash", config_hash(raw)))
            self.n_features = int(f.attrs.get("n_features", self.config.n_features))
            rows = read_index(f, self.path)
            self._group: h5py.Group = f[GROUP]
            self._set_rows(rows, utt_ids)
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> FeatureStore:
        """Open a store (same as ``FeatureStore(path)``)."""
        return cls(path)

    def _set_rows(self, rows: dict[str, UttInfo], utt_ids: Iterable[str] | None) -> None:
        if utt_ids is None:
            self._rows = dict(sorted(rows.items()))
        else:
            wanted = list(dict.fromkeys(utt_ids))
            missing = [u for u in wanted if u not in rows]
            if missing:
                raise DataError(
                    f"{self.path}: {len(missing)} utterance(s) not in the store, e.g. "
                    f"{missing[:3]}; extract them first"
                )
            self._rows = {u: rows[u] for u in sorted(wanted)}
        self.n_frames = int(sum(r.n_frames for r in self._rows.values()))

    def _row(self, utt_id: str) -> UttInfo:
        row = self._rows.get(utt_id)
        if row is None:
            raise KeyError(utt_id)
        return row

    # ---------------------------------------------------------------- mapping
    def __getitem__(self, utt_id: str) -> np.ndarray:
        row = self._row(utt_id)
        if self._f is None:
            raise DataError(f"{self.path}: the store is closed")
        return read_frames(self._group, row.name)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return (
            f"FeatureStore({str(self.path)!r}, {len(self)} utterances, {self.n_frames} frames "
            f"x {self.n_features} features, config_hash={self.config_hash})"
        )

    def num_frames(self, utt_id: str) -> int:
        """Frames of one utterance (without reading them)."""
        return self._row(utt_id).n_frames

    def info(self, utt_id: str) -> dict[str, Any]:
        """``n_frames``, ``n_frames_total`` (before VAD), ``duration`` (s) and ``source``."""
        row = self._row(utt_id)
        return {
            "n_frames": row.n_frames,
            "n_frames_total": row.n_frames_total,
            "duration": row.duration,
            "source": row.source,
        }

    def select(self, utt_ids: Iterable[str]) -> FeatureStore:
        """A view of some utterances (shares this store's file; closing it is a no-op)."""
        if self._f is None:
            raise DataError(f"{self.path}: the store is closed")
        view = object.__new__(FeatureStore)
        view.path = self.path
        view._f = self._f
        view._owner = False
        view.config, view.config_hash, view.n_features = (
            self.config,
            self.config_hash,
            self.n_features,
        )
        view._group = self._group
        view._set_rows(self._rows, utt_ids)
        return view

    # ------------------------------------------------------------ frame source
    def chunks(self, chunk_size: int = 8192) -> Iterator[np.ndarray]:
        """Yield the frames of every utterance, in sorted id order, in float32 blocks.

        Parameters
        ----------
        chunk_size : int
            Frames per block; every block but the last holds exactly this many.

        Yields
        ------
        ndarray, shape (<= chunk_size, n_features), float32
            The buffer is reused: copy a block to keep it.
        """
        if chunk_size < 1:
            raise ConfigError(f"chunk_size: must be >= 1, got {chunk_size!r}")
        from .framesource import pack_blocks

        yield from pack_blocks((self[u] for u in self._rows), chunk_size, self.n_features)

    # ---------------------------------------------------------------- closing
    def close(self) -> None:
        """Close the file (views leave it open for their parent)."""
        if self._f is not None and self._owner:
            self._f.close()
        self._f = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ============================================================================== writing
def write_store(
    path: str | os.PathLike[str],
    features: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]],
    config: FeatureConfig | None = None,
) -> int:
    """Write ready-made feature arrays as a feature store (atomically).

    For features computed elsewhere, or synthetic ones (tests, benchmarks). Arrays are
    written one at a time, so an iterator of ``(utt_id, array)`` pairs can be larger than
    memory.

    Parameters
    ----------
    path : path-like
        The ``.h5`` file to create (replaced if it exists).
    features : mapping or iterable of (str, ndarray (n_frames, n_features))
        Utterance ids and their frames.
    config : FeatureConfig, optional
        The configuration recorded in the store (default ``FeatureConfig()``); its
        ``n_features`` need not match the arrays, whose width is recorded separately.

    Returns
    -------
    int
        Number of utterances written.
    """
    from .atomic import atomic_path
    from .frames import as_frames

    cfg = to_dict(config if config is not None else FeatureConfig())
    items = features.items() if isinstance(features, Mapping) else features
    n_features: int | None = None
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            writer: StoreWriter | None = None
            for utt_id, arr in items:
                x = as_frames(arr, n_features, name=f"utterance {utt_id!r}")
                if writer is None:
                    n_features = x.shape[1]
                    writer = StoreWriter(f, cfg, n_features)
                elif utt_id in writer.rows:
                    raise DataError(f"{path}: duplicate utterance id {utt_id!r}")
                writer.add(utt_id, x, x.shape[0], 0.0, "array")
            if writer is None:
                raise DataError(f"{path}: no utterances to write")
            writer.finish()
            n = len(writer.rows)
    return n


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "FeatureStore",
    "StoreWriter",
    "UttInfo",
    "config_differences",
    "read_frames",
    "read_index",
    "write_frames",
    "write_store",
]
