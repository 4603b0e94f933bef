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

The features are computed on an engine (this process, worker processes, or Dask) and come
back as arrays; only this process writes. The store's format and writers live in
:mod:`gmmspeech.features.store`; this module is the job: work list, failures, resume, lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

if sys.platform == "win32":  # pragma: no cover - tested on POSIX only
    import msvcrt
else:
    import fcntl

from ..config.sections import ExtractConfig, FeatureConfig, config_hash, to_dict
from ..corpus.datadir import DataDir
from ..engine import DaskEngine, Engine, LocalEngine, blas_threads
from ..errors import ConfigError, DataError, ModelFormatError
from ..storage.atomic import atomic_path, replace_into
from ..storage.provenance import file_fingerprint
from .extraction_worker import UttResult, check_config, extract_batch
from .spill import SpilledFrames
from .store import (
    PartWriter,
    SortedStore,
    UttInfo,
    check_store_config,
    merge_stores,
    open_store_file,
    read_index,
)

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
    tasks: list[tuple[str, str]], cfg: FeatureConfig, engine: Engine, spill_dir: Path
) -> Iterator[UttResult]:
    """Features of every task, in submission order, computed on ``engine``.

    Long files' features come back spilled to files in ``spill_dir`` (the parts folder, so
    the next run removes them if this one is killed), except from Dask workers, which may
    not see this machine's files: theirs come back in memory.

    Batches of a few utterances amortise the per-task overhead of process and Dask workers;
    a window of a few batches per worker keeps them busy while memory stays bounded.
    """
    workers = max(1, int(engine.parallelism))
    per_batch = max(1, min(16, len(tasks) // (workers * 8)))
    spill = None if isinstance(engine, DaskEngine) else str(spill_dir)
    batches = [
        [(u, p, spill) for u, p in tasks[i : i + per_batch]]
        for i in range(0, len(tasks), per_batch)
    ]
    with blas_threads(1):  # in-process work (LocalEngine): small matrices
        for res in engine.imap(extract_batch, batches, cfg, window=4 * workers):
            yield from res


# ---------------------------------------------------------------------- the job
def _try_lock(fd: int) -> bool:
    """Take an exclusive, non-blocking lock on an open file; False if another holds it.

    The OS releases it when the process dies (``flock`` on POSIX, ``msvcrt.locking`` on
    Windows), so a killed run never leaves a stale lock.
    """
    if sys.platform == "win32":  # pragma: no cover - tested on POSIX only
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
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


def _scan_existing(
    out: Path, parts: Path, cfg_dict: dict[str, Any]
) -> tuple[dict[str, UttInfo], list[Path], dict[str, UttInfo]]:
    """Index rows of the store, the valid part files, and the rows of the store and those
    parts together (a part's row replacing the store's, as the merge does)."""
    in_store: dict[str, UttInfo] = {}
    if out.exists():
        try:
            with open_store_file(out) as f:
                check_store_config(out, f, cfg_dict, "the existing store")
                in_store = read_index(f, out)
        except DataError as exc:
            raise DataError(
                f"{exc}; it will not be overwritten: move or delete it, or choose another "
                f"output path"
            ) from None
    part_files: list[Path] = []
    known = dict(in_store)
    if parts.is_dir():
        for stray in parts.glob(".part-*"):
            log.info("removing %s (left by an interrupted run)", stray)
            stray.unlink()
        for p in sorted(parts.glob("part-*.h5")):
            try:
                f = open_store_file(p, ModelFormatError)
            except ModelFormatError as exc:  # cannot happen with atomic renames; be safe
                log.warning("dropping unreadable part file %s (%s)", p, exc)
                p.unlink()
                continue
            with f:
                check_store_config(p, f, cfg_dict, "an interrupted extraction into this store")
                rows = read_index(f, p)
            if all(u in in_store and in_store[u].source_fp == r.source_fp for u, r in rows.items()):
                p.unlink()  # already merged by a run killed before its clean-up
                continue
            part_files.append(p)
            known.update(rows)
    return in_store, part_files, known


def _is_stale(row: UttInfo | None, path: str) -> bool:
    """Whether an utterance must be (re-)extracted: absent, or its audio changed since.

    Rows of format-3 stores have no fingerprint and are kept as they are.
    """
    return row is None or bool(row.source_fp) and row.source_fp != file_fingerprint(path)


def _remove_stray_temps(out: Path) -> None:
    for stray in out.parent.glob(f".{out.name}.*.tmp"):
        log.info("removing %s (left by an interrupted run)", stray)
        with contextlib.suppress(OSError):
            stray.unlink()


def _write_log(report: ExtractReport, cfg: dict[str, Any], engine: Engine) -> None:
    lines = [
        f"# gmmspeech extract -> {report.store}",
        f"# config_hash {config_hash(cfg)}; engine {engine!r}",
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
    engine: Engine | None = None,
    max_failed_fraction: float | None = None,
    batch_size: int | None = None,
    progress: bool = False,
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
    engine : Engine, optional
        Where the features are computed (default: a :class:`~gmmspeech.LocalEngine`, in this
        process); e.g. ``make_engine(ComputeConfig("processes", n_workers=2))``, or a Dask
        engine whose workers see the audio paths. Results come back here and only this
        process writes; the store is identical whichever engine computes it. The caller
        closes the engine.
    max_failed_fraction : float, optional
        The run fails (no store written; finished work kept for a rerun) when more than this
        fraction of the data directory's utterances failed, or when none succeeded. Default
        :class:`~gmmspeech.config.sections.ExtractConfig`'s.
    batch_size : int, optional
        Utterances per part file: a kill loses at most this many utterances of work.
        Default :class:`~gmmspeech.config.sections.ExtractConfig`'s.
    progress : bool
        Show a tqdm progress bar (on stderr).

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
        store (or one of the earlier front end), another run holds the lock, or too many
        utterances failed (see the log).
    """
    t0 = time.perf_counter()
    cfg = FeatureConfig() if config is None else config
    if not isinstance(cfg, FeatureConfig):
        raise ConfigError(f"config: expected a FeatureConfig, got {type(cfg).__name__}")
    opts = _options(max_failed_fraction, batch_size)
    run_on = LocalEngine() if engine is None else engine
    run_on.map(check_config, [cfg])  # a bad window name fails here, not once per utterance
    dd = data if isinstance(data, DataDir) else DataDir.read(data, check_audio=False)
    out_path = Path(out)
    _check_output_folder(out_path)
    report = ExtractReport(store=out_path, log=log_path_for(out_path), n_utterances=len(dd))
    with _Lock(_lock_path(out_path)):
        _job(dd, cfg, opts, run_on, report, progress, t0)
    _log_summary(report, cfg)
    return report


def _job(
    dd: DataDir,
    cfg: FeatureConfig,
    opts: ExtractConfig,
    engine: Engine,
    report: ExtractReport,
    progress: bool,
    t0: float,
) -> None:
    """The work under the lock: what is left to do, extracting it, the store put in place."""
    out, parts, cfg_dict = report.store, _parts_dir(report.store), to_dict(cfg)
    _remove_stray_temps(out)
    in_store, part_files, known = _scan_existing(out, parts, cfg_dict)
    todo = [(u, str(dd.audio_path(u))) for u in dd.utt_ids]
    todo = [(u, p) for u, p in todo if _is_stale(known.get(u), p)]
    changed = [u for u, _ in todo if u in known]
    if changed:
        log.warning(
            "%s: %d utterance(s) whose audio changed since extraction will be re-extracted "
            "(e.g. %s)",
            out,
            len(changed),
            changed[0],
        )
    report.n_existing = len(dd) - len(todo)
    todo = _drop_missing_audio(todo, dd, report, opts.max_failed_fraction)
    if report.n_existing:
        log.info(
            "%s: %d of %d utterances already extracted; %d to do",
            out,
            report.n_existing,
            len(dd),
            len(todo),
        )
    final: SortedStore | None = None
    if todo:
        _make_parts_dir(parts)
        ids = [u for u, _ in todo]
        # A fresh run writes the store as it goes; a resumed one merges old and new.
        if not in_store and not part_files and ids == sorted(ids):
            final = SortedStore(out, ids, cfg_dict, cfg.n_features)
        try:
            _run(todo, cfg, opts.batch_size, parts, report, progress, engine, final)
        except BaseException:
            if final is not None:
                final.abort()
            raise
        part_files = sorted(parts.glob("part-*.h5"))
    report.seconds = time.perf_counter() - t0
    _check_failures(report, opts.max_failed_fraction, final, cfg_dict, engine)
    _finish_store(out, parts, part_files, final, cfg_dict, cfg.n_features, report)
    report.seconds = time.perf_counter() - t0
    _write_log(report, cfg_dict, engine)


def _options(max_failed_fraction: float | None, batch_size: int | None) -> ExtractConfig:
    """:class:`ExtractConfig` defaults with the given overrides (validated there)."""
    opts = ExtractConfig()
    if max_failed_fraction is not None:
        opts = dataclasses.replace(opts, max_failed_fraction=max_failed_fraction)
    if batch_size is not None:
        opts = dataclasses.replace(opts, batch_size=batch_size)
    return opts


def _make_parts_dir(parts: Path) -> None:
    try:
        parts.mkdir(exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"{parts}: cannot create the work folder ({exc.strerror or exc}); choose "
            f"a writable output path"
        ) from None


def _check_failures(
    report: ExtractReport,
    max_failed: float,
    final: SortedStore | None,
    cfg_dict: dict[str, Any],
    engine: Engine,
) -> None:
    """Fail the run (log written, finished parts kept) if too many utterances failed."""
    n = report.n_utterances
    n_ok = report.n_existing + report.n_extracted
    if n_ok > 0 and report.n_failed / max(n, 1) <= max_failed:
        return
    if final is not None:
        final.abort()
    _write_log(report, cfg_dict, engine)
    example = f" (e.g. {report.failures[0][1]})" if report.failures else ""
    raise DataError(
        f"{report.store}: {report.n_failed} of {n} utterances failed{example}; more than "
        f"max_failed_fraction={max_failed:g}, so the store was not written. Causes are "
        f"listed in {report.log}; fix or remove those utterances (or raise --max-failed) "
        f"and rerun: finished utterances are kept"
    )


def _finish_store(
    out: Path,
    parts: Path,
    part_files: list[Path],
    final: SortedStore | None,
    cfg_dict: dict[str, Any],
    n_features: int,
    report: ExtractReport,
) -> None:
    """Put the store in place (the sorted one, or the merge of old store and parts)."""
    if final is not None:
        replace_into(final.finish(), out)
        log.info("%s: wrote %d utterances", out, report.n_extracted)
    elif part_files:
        n = merge_stores(out, part_files, cfg_dict, n_features)
        log.info("%s: wrote %d utterances", out, n)
    for p in part_files:
        p.unlink()
    if parts.is_dir():
        with contextlib.suppress(OSError):
            parts.rmdir()


def _log_summary(report: ExtractReport, cfg: FeatureConfig) -> None:
    if report.n_failed:
        log.warning(
            "%d of %d utterances failed and are not in the store; causes in %s",
            report.n_failed,
            report.n_utterances,
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
    batch_size: int,
    parts: Path,
    report: ExtractReport,
    progress: bool,
    engine: Engine,
    final: SortedStore | None = None,
) -> None:
    """Extract ``todo`` into part files (and into ``final`` when given)."""
    cfg_dict = to_dict(cfg)
    writer = PartWriter(parts, cfg_dict, cfg.n_features, batch_size)
    bar = tqdm(total=len(todo), desc="extract", unit="utt", disable=not progress, leave=False)
    # fingerprints taken before reading: audio rewritten during the run is redone next time
    sources = {u: (p, file_fingerprint(p)) for u, p in todo}
    try:
        for r in _results(todo, cfg, engine, parts):
            if r.features is None:
                report.failures.append((r.utt_id, r.error))
                log.debug("utterance %s failed: %s", r.utt_id, r.error)
                if final is not None:
                    final.add(r.utt_id, None)
            else:
                item = (r.features, r.n_frames_total, r.duration, *sources[r.utt_id])
                writer.add(r.utt_id, *item)
                if final is not None:
                    final.add(r.utt_id, item)
                report.n_extracted += 1
                report.audio_seconds += r.duration
                report.frames += int(r.features.shape[0])
                if final is None and isinstance(r.features, SpilledFrames):
                    r.features.remove()  # else the sorted store removes it once written
                if r.orig_rate and r.orig_rate != cfg.sample_rate:
                    report.resampled[r.orig_rate] = report.resampled.get(r.orig_rate, 0) + 1
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
