"""BLAS thread limits.

Per-utterance work (features, MAP statistics, scoring) multiplies small matrices, where
OpenBLAS's threads cost more in synchronisation than they save, and on a busy machine far
more (seen here: scoring 11,520 short trials took 6.8 s with 2 BLAS threads, 1.4 s with 1).
Such loops run with one BLAS thread; parallelism comes from the engines' worker processes.
Large blocks (the UBM E-step) keep the default.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """Limit BLAS/OpenMP thread pools to ``n`` threads inside the block."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n):
        yield
