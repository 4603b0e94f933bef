"""BLAS thread limits.

Per-utterance work (features, MAP statistics, scoring) multiplies small matrices, where
OpenBLAS's threads cost more in synchronisation than they save, and on a busy machine far
more (seen here: scoring 11,520 short trials took 6.8 s with 2 BLAS threads, 1.4 s with 1).
Such loops run with one BLAS thread; parallelism comes from the engines' worker processes.
Large blocks (the UBM E-step) keep the default.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

#: Variables through which a user sets the BLAS threads; when one is set, it is obeyed.
_USER_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def blas_thread_budget(
    cpus: int | None = None,
    load: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> int | None:
    """BLAS threads for a run's large blocks: the cores the machine has free, at least one.

    Two runs that each start one BLAS thread per core on a machine with that many cores
    oversubscribe it, and OpenBLAS's spinning threads then slow both by an order of
    magnitude (two UBM runs took 349 s each instead of 29 s). So a run takes only the
    cores not already busy: ``max(1, cpus - round(1-minute load average))``.

    Parameters
    ----------
    cpus : int, optional
        Cores (default ``os.cpu_count()``).
    load : float, optional
        Busy cores (default: the 1-minute load average; 0 where unknown).
    environ : mapping, optional
        The environment (default ``os.environ``).

    Returns
    -------
    int or None
        The thread count, or None when the user set ``OMP_NUM_THREADS``,
        ``OPENBLAS_NUM_THREADS`` or ``MKL_NUM_THREADS`` (their choice stands).
    """
    env = os.environ if environ is None else environ
    if any(env.get(v) for v in _USER_VARIABLES):
        return None
    n = cpus if cpus is not None else (os.cpu_count() or 1)
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):  # pragma: no cover - no load average (Windows)
            load = 0.0
    return max(1, min(n, n - round(load)))


@contextlib.contextmanager
def blas_threads(n: int | None = 1) -> Iterator[None]:
    """Limit BLAS/OpenMP thread pools to ``n`` threads inside the block (None: no limit)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n):
        yield
