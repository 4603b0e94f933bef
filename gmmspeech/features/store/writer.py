"""Writing feature stores: whole stores, part files of a resumable run, merges.

Every writer goes through :class:`StoreWriter` (datasets + index) inside a file written
under a temporary name (:class:`TempStore`) and renamed into place when complete, so a
killed writer never leaves a half-written store under its final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...config.sections import FeatureConfig, to_dict
from ...errors import DataError, GmmSpeechError
from ...storage.atomic import atomic_path, current_umask
from ..frames import as_frames
from ..spill import SpilledFrames
from .format import (
    UttInfo,
    encode_id,
    small_metadata_cache,
    write_frames,
    write_index,
    write_store_header,
)
from .reader import OpenFiles


class StoreWriter:
    """Adds utterances to a store (or part file) open for writing; :meth:`finish` writes
    the index. Create one per file, add, finish, close the file."""

    def __init__(self, f: h5py.File, cfg: Mapping[str, Any], n_features: int) -> None:
        self.file = f
        self.group = write_store_header(f, cfg, n_features)
        self.rows: dict[str, UttInfo] = {}

    def add(
        self,
        utt_id: str,
        frames: np.ndarray | SpilledFrames,
        n_frames_total: int,
        duration: float,
        source: str,
        source_fp: str = "",
    ) -> None:
        if utt_id in self.rows:
            raise DataError(f"{self.file.filename}: duplicate utterance id {utt_id!r}")
        name = encode_id(utt_id)
        write_frames(self.group, name, frames)
        self.rows[utt_id] = UttInfo(
            name,
            int(frames.shape[0]),
            int(n_frames_total),
            float(duration),
            str(source),
            str(source_fp),
        )

    def finish(self) -> None:
        write_index(self.file, self.rows)


class TempStore:
    """A store (or part file) written under a temporary name.

    Add utterances through :attr:`writer`, then :meth:`finish` (index, close, fsync; the
    caller renames the file into place) or :meth:`abort` (close and delete).
    """

    def __init__(self, tmp: Path, cfg: dict[str, Any], n_features: int) -> None:
        self.tmp = tmp
        self._f: h5py.File | None = None
        try:
            self._f = small_metadata_cache(h5py.File(tmp, "w"))
            self.writer = StoreWriter(self._f, cfg, n_features)
        except BaseException:  # e.g. SIGTERM while the file is being set up
            self.abort()
            raise

    def finish(self) -> Path:
        if self._f is None:
            raise GmmSpeechError(f"{self.tmp}: the feature store was already finished")
        self.writer.finish()
        self._f.close()
        self._f = None
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        return self.tmp

    def abort(self) -> None:
        if self._f is not None:
            with contextlib.suppress(Exception):
                self._f.close()
            self._f = None
        with contextlib.suppress(OSError):
            self.tmp.unlink()


class PartWriter:
    """Writes results into part files of ``batch_size`` utterances, renamed when full."""

    def __init__(self, parts: Path, cfg: dict[str, Any], n_features: int, batch: int) -> None:
        self.parts = parts
        self.cfg = cfg
        self.n_features = n_features
        self.batch = batch
        existing = [int(p.stem.split("-")[1]) for p in parts.glob("part-*.h5")]
        self.next_index = max(existing, default=-1) + 1
        self._part: TempStore | None = None

    def add(
        self,
        utt: str,
        feats: np.ndarray | SpilledFrames,
        n_total: int,
        dur: float,
        source: str,
        fp: str = "",
    ) -> None:
        if self._part is None:
            tmp = self.parts / f".part-{self.next_index:06d}.h5.tmp"
            self._part = TempStore(tmp, self.cfg, self.n_features)
        self._part.writer.add(utt, feats, n_total, dur, source, fp)
        if len(self._part.writer.rows) >= self.batch:
            self.finish_part()

    def finish_part(self) -> None:
        if self._part is None:
            return
        os.replace(self._part.finish(), self.parts / f"part-{self.next_index:06d}.h5")
        self._part = None
        self.next_index += 1

    def abort(self) -> None:
        if self._part is not None:
            self._part.abort()
            self._part = None


class SortedStore:
    """The final store, written while extracting, in sorted id order (fresh runs only).

    Results arrive in completion order, close to the (sorted) order of submission; each is
    held until every utterance before it has arrived or failed, then written. So the bytes
    are those the merge of part files would write, the merge's second pass over the data
    is saved, and with worker processes the writing overlaps their computing. At most the
    results in flight wait here. The file is a temporary one next to the store (removed by
    the next run if this one is killed) until :meth:`finish` returns it for renaming.
    """

    def __init__(self, out: Path, order: list[str], cfg: dict[str, Any], n_features: int) -> None:
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        try:
            os.fchmod(fd, 0o666 & ~current_umask())  # a store, not a private temp file
        finally:
            os.close(fd)
        self.tmp = Path(name)
        self.order = order
        self.pos = 0
        self.waiting: dict[str, tuple[np.ndarray | SpilledFrames, int, float, str, str] | None] = {}
        self._store = TempStore(self.tmp, cfg, n_features)

    def add(
        self, utt: str, item: tuple[np.ndarray | SpilledFrames, int, float, str, str] | None
    ) -> None:
        """One result: (features, n_frames_total, duration, source, source_fp), or None if
        it failed."""
        self.waiting[utt] = item
        while self.pos < len(self.order) and self.order[self.pos] in self.waiting:
            head = self.order[self.pos]
            got = self.waiting.pop(head)
            self.pos += 1
            if got is not None:
                self._store.writer.add(head, *got)
                if isinstance(got[0], SpilledFrames):
                    got[0].remove()  # written twice now: in a part file and here

    def finish(self) -> Path:
        """Write the index and close; the complete file, to be renamed onto the store."""
        if self.pos != len(self.order):
            raise RuntimeError("SortedStore.finish: results are missing")  # a bug if seen
        return self._store.finish()

    def abort(self) -> None:
        self._store.abort()


def merge_stores(out: Path, parts: list[Path], cfg: dict[str, Any], n_features: int) -> int:
    """Write the old store plus the parts, in sorted id order, atomically onto ``out``.

    An utterance in several files is taken from the last: parts are newer than the store,
    and later parts newer than earlier ones (an utterance re-extracted because its audio
    changed replaces its old frames).
    """
    paths = ([out] if out.exists() else []) + list(parts)
    files = OpenFiles(paths)
    try:
        # Index rows only (names, not h5py objects), so memory stays small per utterance.
        where: dict[str, tuple[int, UttInfo]] = {}
        for i in range(len(paths)):
            for utt, row in files.index(i).items():
                where[utt] = (i, row)
        with atomic_path(out) as tmp:
            merged = TempStore(tmp, cfg, n_features)
            try:
                # Rewritten (not copied object by object) in sorted order, so the file's
                # bytes do not depend on how the utterances were spread over part files.
                for utt in sorted(where):
                    i, row = where[utt]
                    frames = files.frames(i, row, n_features)
                    merged.writer.add(
                        utt, frames, row.n_frames_total, row.duration, row.source, row.source_fp
                    )
                merged.finish()
            except BaseException:
                merged.abort()
                raise
        return len(where)
    finally:
        files.close()


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
