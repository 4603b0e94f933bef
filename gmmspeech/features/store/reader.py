"""Reading feature stores: :class:`FeatureStore`, streaming reads for workers, foreign files.

Everything that reads a feature store goes through this module: the mapping view
(:class:`FeatureStore`), :func:`read_utterances` (a worker's shard, opened per call),
:class:`OpenFiles` (a few files open at once for merging part files), and
:func:`open_features` (what the commands call: a store, or any HDF5 file of one dataset
per utterance written by another tool).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...config.sections import FeatureConfig, config_hash
from ...errors import ConfigError, DataError
from ...storage.h5io import from_json
from ..frames import COMPUTE_DTYPE
from .format import (
    FORMAT,
    GROUP,
    UttInfo,
    encode_id,
    open_store_file,
    read_frames,
    read_index,
    small_metadata_cache,
)


def pack_blocks(
    arrays: Iterable[np.ndarray], chunk_size: int, n_features: int
) -> Iterator[np.ndarray]:
    """Repack a stream of (n_i, D) arrays into blocks of exactly ``chunk_size`` frames.

    Every block but the last is full, whatever the utterance lengths, so the matrix
    products stay efficient on short utterances. Blocks may be views of a reused buffer:
    copy one to keep it.

    Yields
    ------
    ndarray, shape (<= chunk_size, n_features), float32
    """
    buf = np.empty((chunk_size, n_features), dtype=COMPUTE_DTYPE)
    fill = 0
    for a in arrays:
        pos = 0
        while pos < a.shape[0]:
            take = min(chunk_size - fill, a.shape[0] - pos)
            if fill == 0 and take == chunk_size and a.dtype == COMPUTE_DTYPE:
                yield a[pos : pos + take]  # a whole block: no copy needed
            else:
                buf[fill : fill + take] = a[pos : pos + take]
                fill += take
                if fill == chunk_size:
                    yield buf
                    fill = 0
            pos += take
    if fill:
        yield buf[:fill]


def read_utterances(path: str | os.PathLike[str], utt_ids: Iterable[str]) -> Iterator[np.ndarray]:
    """The frames of some utterances of a store, in the order given, opening it per call.

    For workers: it reads only the datasets asked for (not the index of every utterance,
    as :class:`FeatureStore` does), with a small metadata cache, so a worker's memory and
    time depend on its share of the work, not on the size of the store.
    """
    with small_metadata_cache(h5py.File(path, "r")) as f:
        group = f[GROUP]
        for utt in utt_ids:
            yield read_frames(group, encode_id(utt))


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
        self._f: h5py.File | None = open_store_file(self.path)
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
        return read_frames(self._group, row.name, (row.n_frames, self.n_features))

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
        """``n_frames``, ``n_frames_total`` (before VAD), ``duration`` (s), ``source`` and
        ``source_fp`` (``"SIZE:MTIME_NS"`` of the audio when extracted, "" if unknown)."""
        row = self._row(utt_id)
        return {
            "n_frames": row.n_frames,
            "n_frames_total": row.n_frames_total,
            "duration": row.duration,
            "source": row.source,
            "source_fp": row.source_fp,
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
        yield from pack_blocks((self[u] for u in self._rows), chunk_size, self.n_features)

    # ---------------------------------------------------------------- closing
    def close(self) -> None:
        """Close the file (views leave it open for their parent)."""
        if self._f is not None and self._owner:
            self._f.close()
        self._f = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OpenFiles:
    """At most ``limit`` stores open for reading at once, least recently used closed.

    Merging reads utterances in sorted id order; part files hold mostly consecutive ids
    (batches are submitted in data-dir order), so a few open files suffice however many
    part files a large extraction made, and neither memory (each open file has its own
    metadata cache) nor file descriptors grow with the number of utterances.
    """

    def __init__(self, paths: list[Path], limit: int = 8) -> None:
        self.paths = paths
        self.limit = limit
        self.open: collections.OrderedDict[int, tuple[h5py.File, h5py.Group]] = (
            collections.OrderedDict()
        )

    def __getitem__(self, i: int) -> h5py.Group:
        """The ``utts`` group of file ``i``."""
        entry = self.open.pop(i, None)
        if entry is None:
            if len(self.open) >= self.limit:
                _, (oldest, _) = self.open.popitem(last=False)
                oldest.close()
            f = small_metadata_cache(h5py.File(self.paths[i], "r"))
            entry = (f, f[GROUP])
        self.open[i] = entry
        return entry[1]

    def index(self, i: int) -> dict[str, UttInfo]:
        """The index of file ``i``."""
        self[i]
        return read_index(self.open[i][0], self.paths[i])

    def frames(self, i: int, row: UttInfo, n_features: int) -> np.ndarray:
        """One utterance of file ``i`` (its shape checked against the index)."""
        return read_frames(self[i], row.name, (row.n_frames, n_features))

    def close(self) -> None:
        for f, _ in self.open.values():
            f.close()
        self.open.clear()


class ForeignFeatures(Mapping[str, np.ndarray]):
    """Read-only mapping over an HDF5 file of per-utterance datasets written by another tool.

    The datasets sit at the root or under a ``features``, ``utterances`` or ``utts`` group,
    named by utterance id, each ``(n_frames, n_features)``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as exc:
            raise DataError(f"{self.path}: not a readable HDF5 feature archive ({exc})") from None
        self._group: h5py.Group = self._f
        for name in ("features", "utterances", "utts"):
            if name in self._f and isinstance(self._f[name], h5py.Group):
                self._group = self._f[name]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._group

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._group:
            raise KeyError(key)
        return np.asarray(self._group[key][()])

    def __iter__(self) -> Iterator[str]:
        return iter(self._group.keys())

    def __len__(self) -> int:
        return len(self._group)

    def close(self) -> None:
        self._f.close()


def open_features(path: str | os.PathLike[str]) -> FeatureStore | ForeignFeatures:
    """Open a feature file for reading as a mapping ``utt_id -> (n_frames, D) array``.

    A ``gmmspeech.FeatureStore`` file (``gmmspeech extract``) opens as a
    :class:`FeatureStore`; any other HDF5 file as :class:`ForeignFeatures`. Close it after
    use.
    """
    p = str(path)
    if not os.path.isfile(p):
        raise DataError(f"{p}: no such feature archive")
    try:
        with h5py.File(p, "r") as f:
            fmt = f.attrs.get("format")
    except OSError as exc:
        raise DataError(f"{p}: not a readable HDF5 feature archive ({exc})") from None
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if fmt == FORMAT:
        return FeatureStore(p)
    return ForeignFeatures(p)
