"""``extract_to_store``: features of a data directory into a store, resumably and safely.

Crash safety. HDF5 is not journalled: a process killed while an HDF5 file is open for
writing can leave it unreadable. So no file is ever written in place under its final name:

* finished utterances go into *part files* ``OUT.h5.parts/part-NNNNNN.h5`` (each a small
  store of its own), written under a temporary name and renamed when complete (every
  ``batch_size`` utterances);
* when all utterances are done, the old store (if any) and the parts are merged, in sorted
  id order, into a temporary file that is renamed onto ``OUT.h5``; then the parts are
  deleted.

A run killed at any moment (``kill -9`` included) leaves the previous ``OUT.h5`` (or none),
complete part files, and at most a stray temporary file, which the next run deletes. The
next run skips every utterance already in the store or a part file and finishes the job;
the merged store is the same, byte for byte, as that of an uninterrupted run. A lock file
stops two runs from writing one store at once.

Workers (processes of a pool, or an engine's) compute features and return arrays; only
this process writes.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .config import ExtractConfig, FeatureConfig, config_hash, to_dict
from .datadir import DataDir
from .errors import ConfigError, DataError, ModelFormatError
from .extraction_worker import (
    _extract_batch,
    _extract_batch_on_engine,
    _extract_one,
    _init_worker,
    _one_blas_thread,
    _Result,
)
from .featstore import (
    FORMAT,
    FORMAT_VERSION,
    GROUP,
    StoreWriter,
    UttInfo,
    config_differences,
    read_frames,
    read_index,
    small_metadata_cache,
)
from .h5io import from_json, open_checked

log = logging.getLogger(__name__)


def _parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _lock_path(out: Path) -> Path:
    return out.with_name(out.name + ".lock")


def log_path_for(out: str | os.PathLike[str]) -> Path:
    """The extraction log written next to a store: ``OUT.h5.log``."""
    p = Path(out)
    return p.with_name(p.name + ".log")


@dataclasses.dataclass
class ExtractReport:
    """What :func:`extract_to_store` did.

    Attributes
    ----------
    store : Path
    log : Path
        The log file listing the failures with their causes.
    n_utterances : int
        Utterances of the data directory.
    n_existing : int
        Already in the store or in part files of an interrupted run (skipped).
    n_extracted : int
        Extracted by this run.
    failures : list of (utt_id, cause)
    seconds : float
        Wall time of the run.
    audio_seconds : float
        Seconds of audio extracted by this run.
    frames : int
        Frames written by this run (after VAD).
    resampled : dict of int to int
        Original rate -> number of utterances resampled from it.
    """

    store: Path
    log: Path
    n_utterances: int = 0
    n_existing: int = 0
    n_extracted: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    audio_seconds: float = 0.0
    frames: int = 0
    resampled: dict[int, int] = dataclasses.field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        """Utterances that failed in this run."""
        return len(self.failures)


def _results(
    tasks: list[tuple[str, str]], cfg: FeatureConfig, jobs: int, engine: Any = None
) -> Iterator[_Result]:
    """Features of every task, in completion order; in-process when ``jobs == 1``."""
    if engine is not None and getattr(engine, "name", "local") != "local":
        per_batch = max(1, min(16, len(tasks) // 64))
        batches = [tasks[i : i + per_batch] for i in range(0, len(tasks), per_batch)]
        window = 4 * max(1, int(getattr(engine, "n_workers", None) or 2))
        for res in engine.imap(_extract_batch_on_engine, batches, to_dict(cfg), window=window):
            yield from res
        return
    if jobs == 1:
        with _one_blas_thread():
            for utt, path in tasks:
                yield _extract_one(utt, path, cfg)
        return
    import multiprocessing

    per_batch = max(1, min(16, len(tasks) // (jobs * 8)))
    batches = [tasks[i : i + per_batch] for i in range(0, len(tasks), per_batch)]
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(to_dict(cfg),)
    )
    try:
        pending: set[Future[list[_Result]]] = set()
        it = iter(batches)
        max_pending = 4 * jobs  # bounded: memory does not grow with the data dir
        while True:
            while len(pending) < max_pending:
                b = next(it, None)
                if b is None:
                    break
                pending.add(pool.submit(_extract_batch, b))
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    yield from fut.result()
                except BrokenProcessPool:
                    raise DataError(
                        "a feature worker process died (out of memory or killed); rerun "
                        "`gmmspeech extract` (finished utterances are kept), or use fewer --jobs"
                    ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------- the job
def _try_lock(fd: int) -> bool:
    """Take an exclusive, non-blocking lock on an open file; False if another holds it.

    The OS releases it when the process dies (``flock`` on POSIX, ``msvcrt.locking`` on
    Windows), so a killed run never leaves a stale lock.
    """
    if sys.platform == "win32":  # pragma: no cover - tested on POSIX only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class _Lock:
    """An exclusive lock on ``OUT.h5.lock``: one writer per store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> _Lock:
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise DataError(
                    f"{self.path.parent}: cannot write into the output folder "
                    f"({exc.strerror or exc}); choose a writable output path"
                ) from None
            if not _try_lock(fd):
                os.close(fd)
                raise DataError(
                    f"{self.path}: another `gmmspeech extract` is writing this store; wait "
                    f"for it to finish"
                )
            try:  # the holder before us may have removed the file we opened: lock anew
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if same:
                self._fd = fd
                return self
            os.close(fd)
        raise DataError(f"{self.path}: could not take the lock; try again")

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            if sys.platform != "win32":  # an open file cannot be removed on Windows
                with contextlib.suppress(OSError):
                    self.path.unlink()
            os.close(self._fd)
            self._fd = None
            if sys.platform == "win32":  # pragma: no cover
                with contextlib.suppress(OSError):
                    self.path.unlink()


def _check_output_folder(out: Path) -> None:
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.exists():
        raise DataError(f"{out}: the output folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise DataError(f"{out}: {folder} is not a folder; choose another output path")
    if out.is_dir():
        raise DataError(f"{out}: is a folder; give the path of an .h5 file to write")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(
            f"{out}: the output folder {folder} is not writable; choose another output path "
            f"or fix its permissions"
        )


def _check_config(path: Path, f: h5py.File, cfg_dict: dict[str, Any], what: str) -> None:
    stored = from_json(f.attrs.get("config"), {})
    if config_hash(stored) != config_hash(cfg_dict):
        diff = config_differences(stored, cfg_dict)
        raise ConfigError(
            f"{path}: {what} was extracted with a different feature config ("
            + "; ".join(diff)
            + "); write to another output file, or delete it to re-extract everything"
        )


def _scan_existing(
    out: Path, parts: Path, cfg_dict: dict[str, Any]
) -> tuple[set[str], list[Path], set[str]]:
    """Ids in the store, the valid part files, and ids in those parts."""
    in_store: set[str] = set()
    if out.exists():
        try:
            with open_checked(out, FORMAT, FORMAT_VERSION, DataError) as f:
                _check_config(out, f, cfg_dict, "the existing store")
                in_store = set(read_index(f, out))
        except DataError as exc:
            raise DataError(
                f"{exc}; it will not be overwritten: move or delete it, or choose another "
                f"output path"
            ) from None
    part_files: list[Path] = []
    in_parts: set[str] = set()
    if parts.is_dir():
        for stray in parts.glob(".part-*"):
            log.info("removing %s (left by an interrupted run)", stray)
            stray.unlink()
        for p in sorted(parts.glob("part-*.h5")):
            try:
                f = open_checked(p, FORMAT, FORMAT_VERSION, ModelFormatError)
            except ModelFormatError as exc:  # cannot happen with atomic renames; be safe
                log.warning("dropping unreadable part file %s (%s)", p, exc)
                p.unlink()
                continue
            with f:
                _check_config(p, f, cfg_dict, "an interrupted extraction into this store")
                ids = set(read_index(f, p))
            if ids <= in_store:  # already merged by a run killed before its clean-up
                p.unlink()
                continue
            part_files.append(p)
            in_parts |= ids
    return in_store, part_files, in_parts


def _remove_stray_temps(out: Path) -> None:
    for stray in out.parent.glob(f".{out.name}.*.tmp"):
        log.info("removing %s (left by an interrupted run)", stray)
        with contextlib.suppress(OSError):
            stray.unlink()


class _TempStore:
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
        assert self._f is not None, "finished twice"
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


class _PartWriter:
    """Writes results into part files of ``batch_size`` utterances, renamed when full."""

    def __init__(self, parts: Path, cfg: dict[str, Any], n_features: int, batch: int) -> None:
        self.parts = parts
        self.cfg = cfg
        self.n_features = n_features
        self.batch = batch
        existing = [int(p.stem.split("-")[1]) for p in parts.glob("part-*.h5")]
        self.next_index = max(existing, default=-1) + 1
        self._part: _TempStore | None = None

    def add(self, utt: str, feats: np.ndarray, n_total: int, dur: float, source: str) -> None:
        if self._part is None:
            tmp = self.parts / f".part-{self.next_index:06d}.h5.tmp"
            self._part = _TempStore(tmp, self.cfg, self.n_features)
        self._part.writer.add(utt, feats, n_total, dur, source)
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


class _SortedStore:
    """The final store, written while extracting, in sorted id order (fresh runs only).

    Results arrive in completion order, close to the (sorted) order of submission; each is
    held until every utterance before it has arrived or failed, then written. So the bytes
    are those the merge of part files would write, the merge's second pass over the data
    is saved, and with worker processes the writing overlaps their computing. At most the
    results in flight wait here. The file is a temporary one next to the store (removed by
    the next run if this one is killed) until :meth:`finish` returns it for renaming.
    """

    def __init__(self, out: Path, order: list[str], cfg: dict[str, Any], n_features: int) -> None:
        import tempfile

        from .atomic import current_umask

        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        try:
            os.fchmod(fd, 0o666 & ~current_umask())  # a store, not a private temp file
        finally:
            os.close(fd)
        self.tmp = Path(name)
        self.order = order
        self.pos = 0
        self.waiting: dict[str, tuple[np.ndarray, int, float, str] | None] = {}
        self._store = _TempStore(self.tmp, cfg, n_features)

    def add(self, utt: str, item: tuple[np.ndarray, int, float, str] | None) -> None:
        """One result: (features, n_frames_total, duration, source), or None if it failed."""
        self.waiting[utt] = item
        while self.pos < len(self.order) and self.order[self.pos] in self.waiting:
            head = self.order[self.pos]
            got = self.waiting.pop(head)
            self.pos += 1
            if got is not None:
                self._store.writer.add(head, *got)

    def finish(self) -> Path:
        """Write the index and close; the complete file, to be renamed onto the store."""
        if self.pos != len(self.order):
            raise RuntimeError("_SortedStore.finish: results are missing")  # a bug if seen
        return self._store.finish()

    def abort(self) -> None:
        self._store.abort()


class _OpenFiles:
    """At most ``limit`` HDF5 files open for reading at once, least recently used closed.

    The merge reads utterances in sorted id order; part files hold mostly consecutive ids
    (batches are submitted in data-dir order), so a few open files suffice however many
    part files a large extraction made, and neither memory (each open file has its own
    metadata cache) nor file descriptors grow with the number of utterances. Indexing
    gives the ``utts`` group of a file.
    """

    def __init__(self, paths: list[Path], limit: int = 8) -> None:
        self.paths = paths
        self.limit = limit
        self.open: collections.OrderedDict[int, tuple[h5py.File, h5py.Group]] = (
            collections.OrderedDict()
        )

    def __getitem__(self, i: int) -> h5py.Group:
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

    def close(self) -> None:
        for f, _ in self.open.values():
            f.close()
        self.open.clear()


def _merge(out: Path, parts: list[Path], cfg: dict[str, Any], n_features: int) -> int:
    """Write the old store plus the parts, in sorted id order, atomically onto ``out``."""
    from .atomic import atomic_path

    paths = ([out] if out.exists() else []) + list(parts)
    files = _OpenFiles(paths)
    try:
        # Index rows only (names, not h5py objects), so memory stays small per utterance.
        where: dict[str, tuple[int, UttInfo]] = {}
        for i in range(len(paths)):
            for utt, row in files.index(i).items():
                where.setdefault(utt, (i, row))
        with atomic_path(out) as tmp:
            merged = _TempStore(tmp, cfg, n_features)
            try:
                # Rewritten (not copied object by object) in sorted order, so the file's
                # bytes do not depend on how the utterances were spread over part files.
                for utt in sorted(where):
                    i, row = where[utt]
                    frames = read_frames(files[i], row.name)
                    merged.writer.add(utt, frames, row.n_frames_total, row.duration, row.source)
                merged.finish()
            except BaseException:
                merged.abort()
                raise
        return len(where)
    finally:
        files.close()


def _write_log(report: ExtractReport, cfg: dict[str, Any], jobs: int) -> None:
    from .atomic import atomic_path

    lines = [
        f"# gmmspeech extract -> {report.store}",
        f"# config_hash {config_hash(cfg)}; jobs {jobs}",
        f"# utterances {report.n_utterances}; already done {report.n_existing}; extracted "
        f"{report.n_extracted}; failed {report.n_failed}",
        f"# audio {report.audio_seconds:.1f} s; frames {report.frames}; wall "
        f"{report.seconds:.1f} s",
        "# utt_id<TAB>cause",
    ]
    lines += [f"{u}\t{cause}" for u, cause in report.failures]
    try:
        with atomic_path(report.log) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        log.warning("%s: cannot write the extraction log (%s)", report.log, exc)


def extract_to_store(
    data: DataDir | str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: FeatureConfig | None = None,
    *,
    jobs: int = 1,
    max_failed_fraction: float | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    engine: Any = None,
) -> ExtractReport:
    """Extract features of every utterance of a data directory into a store, resumably.

    Parameters
    ----------
    data : DataDir or path-like
        The utterances (``wav.scp``); a path is read with :meth:`DataDir.read` (missing audio
        files then count as per-utterance failures).
    out : path-like
        The ``.h5`` store to create or complete.
    config : FeatureConfig, optional
        Defaults to ``FeatureConfig()``. Must equal the config of an existing store.
    jobs : int
        Worker processes (``spawn`` context; each returns arrays and only this process
        writes). 1 computes in this process.
    max_failed_fraction : float, optional
        The run fails (no store written; finished work kept for a rerun) when more than this
        fraction of the data directory's utterances failed, or when none succeeded. Default
        :class:`~gmmspeech.config.ExtractConfig`'s.
    batch_size : int, optional
        Utterances per part file: a kill loses at most this many utterances of work.
        Default :class:`~gmmspeech.config.ExtractConfig`'s.
    progress : bool
        Show a tqdm progress bar (on stderr).
    engine : Engine, optional
        Run the workers on a :class:`~gmmspeech.ProcessEngine` or
        :class:`~gmmspeech.DaskEngine` instead of a pool of ``jobs`` processes (the workers
        must see the audio paths); results still come back here and only this process
        writes. The store is identical whichever runs it.

    Returns
    -------
    ExtractReport

    Raises
    ------
    ConfigError
        The store (or an interrupted run into it) used another feature config (the message
        lists the differences), or an argument is invalid.
    DataError
        The output folder is missing or not writable, the existing file is not a feature
        store, another run holds the lock, or too many utterances failed (see the log).
    """
    t0 = time.perf_counter()
    cfg = FeatureConfig() if config is None else config
    if not isinstance(cfg, FeatureConfig):
        raise ConfigError(f"config: expected a FeatureConfig, got {type(cfg).__name__}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs: must be an integer >= 1, got {jobs!r}")
    opts = ExtractConfig()
    if max_failed_fraction is not None:
        opts = dataclasses.replace(opts, max_failed_fraction=max_failed_fraction)
    if batch_size is not None:
        opts = dataclasses.replace(opts, batch_size=batch_size)
    max_failed, batch = opts.max_failed_fraction, opts.batch_size
    from .spectral import window

    window(cfg.window, cfg.win_length)  # a bad window name fails here, not per utterance
    dd = data if isinstance(data, DataDir) else DataDir.read(data, check_audio=False)
    out_path = Path(out)
    _check_output_folder(out_path)
    cfg_dict = to_dict(cfg)
    report = ExtractReport(store=out_path, log=log_path_for(out_path), n_utterances=len(dd))
    parts = _parts_dir(out_path)

    with _Lock(_lock_path(out_path)):
        _remove_stray_temps(out_path)
        in_store, part_files, in_parts = _scan_existing(out_path, parts, cfg_dict)
        done = in_store | in_parts
        todo = [(u, str(dd.audio_path(u))) for u in dd.utt_ids if u not in done]
        report.n_existing = len(dd) - len(todo)
        todo = _drop_missing_audio(todo, dd, report, max_failed)
        if report.n_existing:
            log.info(
                "%s: %d of %d utterances already extracted; %d to do",
                out_path,
                report.n_existing,
                len(dd),
                len(todo),
            )
        final: _SortedStore | None = None
        if todo:
            try:
                parts.mkdir(exist_ok=True)
            except OSError as exc:
                raise DataError(
                    f"{parts}: cannot create the work folder ({exc.strerror or exc}); choose "
                    f"a writable output path"
                ) from None
            ids = [u for u, _ in todo]
            # A fresh run writes the store as it goes; a resumed one merges old and new.
            if not in_store and not part_files and ids == sorted(ids):
                final = _SortedStore(out_path, ids, cfg_dict, cfg.n_features)
            try:
                _run(todo, cfg, cfg_dict, jobs, batch, parts, report, progress, engine, final)
            except BaseException:
                if final is not None:
                    final.abort()
                raise
            part_files = sorted(parts.glob("part-*.h5"))
        n_ok = report.n_existing + report.n_extracted
        report.seconds = time.perf_counter() - t0
        failed_fraction = report.n_failed / max(len(dd), 1)
        if n_ok == 0 or failed_fraction > max_failed:
            if final is not None:
                final.abort()
            report.seconds = time.perf_counter() - t0
            _write_log(report, cfg_dict, jobs)
            example = f" (e.g. {report.failures[0][1]})" if report.failures else ""
            raise DataError(
                f"{out_path}: {report.n_failed} of {len(dd)} utterances failed"
                f"{example}; more than max_failed_fraction={max_failed:g}, so the "
                f"store was not written. Causes are listed in {report.log}; fix or remove "
                f"those utterances (or raise --max-failed) and rerun: finished utterances "
                f"are kept"
            )
        if final is not None:
            os.replace(final.finish(), out_path)
            log.info("%s: wrote %d utterances", out_path, report.n_extracted)
        elif part_files:
            n = _merge(out_path, part_files, cfg_dict, cfg.n_features)
            log.info("%s: wrote %d utterances", out_path, n)
        for p in part_files:
            p.unlink()
        if parts.is_dir():
            with contextlib.suppress(OSError):
                parts.rmdir()
        report.seconds = time.perf_counter() - t0
        _write_log(report, cfg_dict, jobs)
    if report.n_failed:
        log.warning(
            "%d of %d utterances failed and are not in the store; causes in %s",
            report.n_failed,
            len(dd),
            report.log,
        )
    for rate, count in sorted(report.resampled.items()):
        level = logging.WARNING if rate < cfg.sample_rate else logging.INFO
        log.log(
            level,
            "%d utterance(s) were resampled from %d Hz to the config's %d Hz%s",
            count,
            rate,
            cfg.sample_rate,
            " (no content above the original Nyquist frequency)" if rate < cfg.sample_rate else "",
        )
    return report


def _drop_missing_audio(
    todo: list[tuple[str, str]], dd: DataDir, report: ExtractReport, max_failed: float
) -> list[tuple[str, str]]:
    """Count audio files that do not exist as failures up front; fail at once if too many.

    A wrong path prefix in ``wav.scp`` is found in milliseconds instead of after a whole
    run of failing utterances.
    """
    missing = [(u, p) for u, p in todo if not os.path.isfile(p)]
    if not missing:
        return todo
    where = f"{dd.root / 'wav.scp'}" if dd.root is not None else "wav.scp"
    utt, path = missing[0]
    if len(missing) / max(len(dd), 1) > max_failed or len(missing) == len(dd):
        raise DataError(
            f"{where}: {len(missing)} of {len(dd)} audio files do not exist (e.g. {path!r} "
            f"of utterance {utt!r}); more than max_failed_fraction={max_failed:g}. Fix the "
            f"paths (relative ones are relative to the data directory), or rebuild the data "
            f"directory with `gmmspeech prepare`"
        )
    log.warning(
        "%s: %d audio file(s) do not exist (e.g. %r); those utterances are skipped and listed "
        "in %s",
        where,
        len(missing),
        path,
        report.log,
    )
    gone = {u for u, _ in missing}
    report.failures.extend((u, f"{p}: no such file; check the path") for u, p in missing)
    return [(u, p) for u, p in todo if u not in gone]


def _run(
    todo: list[tuple[str, str]],
    cfg: FeatureConfig,
    cfg_dict: dict[str, Any],
    jobs: int,
    batch_size: int,
    parts: Path,
    report: ExtractReport,
    progress: bool,
    engine: Any = None,
    final: _SortedStore | None = None,
) -> None:
    """Extract ``todo`` into part files (and into ``final`` when given)."""
    from tqdm.auto import tqdm

    writer = _PartWriter(parts, cfg_dict, cfg.n_features, batch_size)
    bar = tqdm(total=len(todo), desc="extract", unit="utt", disable=not progress, leave=False)
    sources = dict(todo)
    try:
        for utt, feats, n_total, dur, rate, err in _results(
            todo, cfg, min(jobs, len(todo)), engine
        ):
            if feats is None:
                report.failures.append((utt, err))
                log.debug("utterance %s failed: %s", utt, err)
                if final is not None:
                    final.add(utt, None)
            else:
                writer.add(utt, feats, n_total, dur, sources[utt])
                if final is not None:
                    final.add(utt, (feats, n_total, dur, sources[utt]))
                report.n_extracted += 1
                report.audio_seconds += dur
                report.frames += int(feats.shape[0])
                if rate and rate != cfg.sample_rate:
                    report.resampled[rate] = report.resampled.get(rate, 0) + 1
            bar.update(1)
        writer.finish_part()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    report.failures.sort()


__all__ = [
    "ExtractReport",
    "extract_to_store",
    "log_path_for",
]
