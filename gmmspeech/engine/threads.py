"""BLAS thread limits: the one place they are set, for loops in this process and workers.

Small per-utterance products run fastest on one BLAS thread; large blocks take the cores
the machine has free (:func:`blas_thread_budget`), so that concurrent runs do not
oversubscribe it.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
import warnings
from collections.abc import Iterator, Mapping

from threadpoolctl import threadpool_limits

#: Variables through which BLAS libraries take their thread count.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def blas_threads(n: int | None = 1) -> Iterator[None]:
    """Limit BLAS/OpenMP thread pools to ``n`` threads inside the block (None: no limit).

    Per-utterance work (features, MAP statistics, scoring) multiplies small matrices, where
    OpenBLAS's threads cost more in synchronisation than they save, and on a busy machine
    far more (scoring 11,520 short trials took 6.8 s with 2 BLAS threads, 1.4 s with 1).
    Such loops run with one BLAS thread; parallelism comes from the engines' workers.
    """
    if n is None:
        yield
        return
    with threadpool_limits(limits=n):
        yield


#: Variables through which a user sets the BLAS threads; when one is set, it is obeyed.
USER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def blas_thread_budget(
    cpus: int | None = None,
    load: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> int | None:
    """BLAS threads for a run's large blocks: the cores the machine has free, at least one.

    Two runs that each start one BLAS thread per core on a machine with that many cores
    oversubscribe it, and OpenBLAS's spinning threads then slow both by an order of
    magnitude. So a run takes only the cores not already busy:
    ``max(1, cpus - round(busy))``, with ``busy`` from :func:`busy_cores`.

    Parameters
    ----------
    cpus : int, optional
        Cores (default ``os.cpu_count()``).
    load : float, optional
        Busy cores (default: :func:`busy_cores`).
    environ : mapping, optional
        The environment (default ``os.environ``).

    Returns
    -------
    int or None
        The thread count, or None when the user set ``OMP_NUM_THREADS``,
        ``OPENBLAS_NUM_THREADS`` or ``MKL_NUM_THREADS`` (their choice stands).
    """
    env = os.environ if environ is None else environ
    if any(env.get(v) for v in USER_THREAD_VARIABLES):
        return None
    n = cpus if cpus is not None else (os.cpu_count() or 1)
    if load is None:
        load = busy_cores()
    return max(1, min(n, n - round(load)))


def busy_cores(samples: int = 5, interval: float = 0.02) -> float:
    """Cores other work keeps busy: the lower of the 1-minute load average, which lags a
    minute (a run started just after another ended would take one thread throughout), and
    the running tasks now (:func:`procs_running` less this one; median of ``samples`` reads
    ``interval`` s apart), which is noisy alone. 0 where neither is known."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # no load average (Windows)
        return 0.0
    counts = []
    for i in range(samples):
        running = procs_running()
        if running is None:
            return load
        counts.append(max(0, running - 1))
        if i + 1 < samples:
            time.sleep(interval)
    return min(load, float(statistics.median(counts)))


def procs_running(stat: str = "/proc/stat") -> int | None:
    """Tasks running or runnable now (``procs_running`` of ``/proc/stat``), or None."""
    try:
        with open(stat, encoding="ascii") as f:
            for line in f:
                if line.startswith("procs_running "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cap_workers(n: int, what: str = "compute.n_workers") -> int:
    """``n`` capped at the number of CPUs (with a warning): more workers than cores only
    add memory and context switches."""
    cpus = os.cpu_count() or 1
    if n > cpus:
        warnings.warn(
            f"{what}={n} is more than the {cpus} CPU(s) of this machine; using {cpus}",
            stacklevel=3,
        )
        return cpus
    return n
