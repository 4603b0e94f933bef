"""Where map-reduce work runs: in this process, in a local process pool, or on Dask.

Every engine offers ``map(fn, items, shared=None)`` (results in the order of ``items``) and
``imap``; :func:`map_reduce` adds results left to right, so the reduction order is the same
on every engine. Functions and items sent to workers are importable module-level functions
and plain data; workers open HDF5 files themselves.

May import: :mod:`gmmspeech.errors` and :mod:`gmmspeech.config`.
"""

from __future__ import annotations

import dataclasses
import os

from ..config.build import did_you_mean
from ..config.sections import BACKENDS, ComputeConfig
from ..errors import ConfigError, short_repr
from .core import Engine, LocalEngine, map_reduce
from .dask_engine import DaskEngine
from .processes import WORKER_PRELOAD, ProcessEngine, WorkerDiedError
from .threads import blas_thread_budget, blas_threads, busy_cores, cap_workers, procs_running

ENGINE_NAMES = BACKENDS


#: Work lists of at most this many files are extracted in the run's own process when
#: ``extract.processes`` is left to choose: starting a pool costs about 2 s of imports per
#: worker, more than a 2-worker pool saves on ~100 short files (the demo's 84 files, one
#: run under load: extract 4.1-5.1 s in-process against 6.7-7.9 s on the pool).
IN_PROCESS_FILES = 100


def extraction_compute(
    compute: ComputeConfig, processes: int | None, n_files: int | None = None
) -> ComputeConfig:
    """Where a pipeline's feature extraction runs: worker processes whatever the backend.

    Extraction is per-utterance work that splits perfectly, so with the ``local`` backend it
    still runs on ``processes`` worker processes (None: ``min(CPUs, 4)``, or this process
    when the work list has at most :data:`IN_PROCESS_FILES` files ``n_files``; 0: this
    process); the ``processes`` and ``dask`` backends use their own workers.
    """
    if compute.backend != "local":
        return compute
    small = processes is None and n_files is not None and n_files <= IN_PROCESS_FILES
    n = min(os.cpu_count() or 1, 4) if processes is None else processes
    if n == 0 or small:
        return compute
    return dataclasses.replace(compute, backend="processes", n_workers=n)


def make_engine(compute: ComputeConfig | None = None) -> LocalEngine | ProcessEngine | DaskEngine:
    """The engine of a ``compute`` config section (default: :class:`LocalEngine`).

    The one constructor the CLI and the pipeline use. ``processes`` and a local Dask
    cluster cap ``n_workers`` at the number of CPUs (with a warning).
    """
    c = ComputeConfig() if compute is None else compute
    if not isinstance(c, ComputeConfig):
        raise ConfigError(f"compute: expected a ComputeConfig, got {type(c).__name__}")
    if c.backend == "local":
        return LocalEngine()
    if c.backend == "processes":
        return ProcessEngine(n_workers=c.n_workers, threads_per_worker=c.threads_per_worker)
    if c.backend == "dask":
        n = c.n_workers
        if n is not None and c.scheduler_address is None:
            n = cap_workers(n)
        return DaskEngine(
            address=c.scheduler_address, n_workers=n, threads_per_worker=c.threads_per_worker
        )
    hint = did_you_mean(c.backend, ENGINE_NAMES, otherwise="")
    raise ConfigError(
        f"compute.backend: unknown engine {short_repr(c.backend)}; "
        + (f"{hint} " if hint else "")
        + f"choose one of {', '.join(ENGINE_NAMES)}"
    )


__all__ = [
    "ENGINE_NAMES",
    "WORKER_PRELOAD",
    "DaskEngine",
    "Engine",
    "LocalEngine",
    "ProcessEngine",
    "WorkerDiedError",
    "blas_thread_budget",
    "blas_threads",
    "busy_cores",
    "cap_workers",
    "extraction_compute",
    "make_engine",
    "map_reduce",
    "procs_running",
]
