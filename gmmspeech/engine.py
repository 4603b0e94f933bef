"""Where map-reduce work runs: in this process, in a local process pool, or on Dask.

Every engine offers ``map(fn, items, shared=None)``: ``fn(item, shared)`` for each item, the
results returned in the order of ``items``; and ``map_reduce``, which adds those results left
to right, so the reduction order is the same on every engine. ``shared`` is sent to workers
once per call (scattered on Dask) rather than once per item. Worker processes limit their
BLAS threads (``threads_per_worker``) so that workers do not oversubscribe the cores.

Functions and items sent to process or Dask workers must be importable module-level
functions and plain data (arrays, paths, dataclasses); workers open HDF5 files themselves.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from .config import BACKENDS
from .configio import did_you_mean
from .errors import ConfigError, short_repr

log = logging.getLogger(__name__)

ENGINE_NAMES = BACKENDS


class Engine(Protocol):
    """What the training, extraction and scoring loops need from an engine."""

    name: str

    def map(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any = None
    ) -> list[Any]:
        """Return ``[fn(item, shared) for item in items]``, computed wherever the engine runs."""
        ...

    def imap(
        self,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
        shared: Any = None,
        window: int = 8,
    ) -> Iterator[Any]:
        """Like :meth:`map`, but yields results in order as they are ready, with at most
        ``window`` items in flight (bounded memory for long streams of work)."""
        ...

    def close(self) -> None:
        """Release workers and connections (idempotent)."""
        ...


def map_reduce(
    engine: Engine, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any = None
) -> Any:
    """``sum(fn(item, shared) for item in items)`` added strictly in the order of ``items``.

    Results are added as they arrive (a window of a few tasks per worker in flight), so the
    driver holds a bounded number of partial results however many items there are.
    """
    window = 4 * max(1, int(getattr(engine, "parallelism", 1)))
    total: Any = None
    for r in engine.imap(fn, items, shared, window=window):
        total = r if total is None else total + r
    if total is None:
        raise ValueError("map_reduce: no items")
    return total


def _limited_call(fn: Callable[[Any, Any], Any], threads: int, item: Any, shared: Any) -> Any:
    """Run ``fn(item, shared)`` with at most ``threads`` BLAS/OpenMP threads."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return fn(item, shared)


class LocalEngine:
    """Runs everything in this process (the default; no services, no pickling)."""

    name = "local"
    parallelism = 1

    def map(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any = None
    ) -> list[Any]:
        return [fn(item, shared) for item in items]

    def imap(
        self,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
        shared: Any = None,
        window: int = 8,
    ) -> Iterator[Any]:
        for item in items:
            yield fn(item, shared)

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "LocalEngine()"


class ProcessEngine:
    """A pool of local worker processes (spawned, so no HDF5 handle crosses a fork).

    Parameters
    ----------
    n_workers : int, optional
        Number of processes (default: the number of CPU cores).
    threads_per_worker : int
        BLAS threads per process (default 1).
    """

    name = "processes"

    def __init__(self, n_workers: int | None = None, threads_per_worker: int = 1) -> None:
        n = n_workers if n_workers is not None else (os.cpu_count() or 1)
        if int(n) < 1:
            raise ConfigError(f"compute.n_workers: must be >= 1, got {n_workers}")
        if int(threads_per_worker) < 1:
            raise ConfigError(f"compute.threads_per_worker: must be >= 1, got {threads_per_worker}")
        self.n_workers = int(n)
        self.threads_per_worker = int(threads_per_worker)
        self._pool: Any = None

    @property
    def parallelism(self) -> int:
        """How many tasks run at once."""
        return self.n_workers

    def _executor(self) -> Any:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                max_workers=self.n_workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def map(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any = None
    ) -> list[Any]:
        call = functools.partial(_limited_call, fn, self.threads_per_worker)
        pool = self._executor()
        futures = [pool.submit(call, item, shared) for item in items]
        return [f.result() for f in futures]

    def imap(
        self,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
        shared: Any = None,
        window: int = 8,
    ) -> Iterator[Any]:
        call = functools.partial(_limited_call, fn, self.threads_per_worker)
        pool = self._executor()
        return _windowed(lambda item: pool.submit(call, item, shared), items, window)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ProcessEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ProcessEngine(n_workers={self.n_workers}, threads_per_worker={self.threads_per_worker})"


class DaskEngine:
    """Dask distributed: a client you pass, a scheduler address, or a LocalCluster it starts.

    Parameters
    ----------
    client : dask.distributed.Client, optional
        Use this client (not closed by :meth:`close`).
    address : str, optional
        Scheduler address, e.g. ``"tcp://10.0.0.5:8786"``; connection times out after
        ``timeout`` seconds with a :class:`~gmmspeech.ConfigError`.
    n_workers : int, optional
        Workers of the LocalCluster started when neither ``client`` nor ``address`` is given
        (default: the number of CPU cores).
    threads_per_worker : int
        Threads per worker, and the BLAS thread limit inside each task (default 1).
    timeout : float
        Seconds to wait for the scheduler.
    retries : int
        How often a failed task is retried (a task lost with a killed worker is rescheduled
        by Dask in any case).
    """

    name = "dask"

    def __init__(
        self,
        client: Any = None,
        address: str | None = None,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        timeout: float = 10.0,
        retries: int = 2,
    ) -> None:
        if n_workers is not None and int(n_workers) < 1:
            raise ConfigError(f"compute.n_workers: must be >= 1, got {n_workers}")
        if int(threads_per_worker) < 1:
            raise ConfigError(f"compute.threads_per_worker: must be >= 1, got {threads_per_worker}")
        self.address = address
        self.n_workers = n_workers
        self.threads_per_worker = int(threads_per_worker)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self._client = client
        self._owns_client = client is None
        self._cluster: Any = None
        self._distributed = _import_distributed()

    @property
    def client(self) -> Any:
        """The ``dask.distributed.Client`` (created on first use)."""
        if self._client is None:
            dd = self._distributed
            if self.address:
                try:
                    self._client = dd.Client(self.address, timeout=self.timeout)
                except (OSError, TimeoutError) as exc:
                    raise ConfigError(
                        f"compute.scheduler_address: cannot reach a Dask scheduler at "
                        f"{self.address!r} within {self.timeout:g} s ({type(exc).__name__}); "
                        f"start one with `dask scheduler` and `dask worker {self.address}`, "
                        f"or use compute.backend: local"
                    ) from None
            else:
                n = self.n_workers or os.cpu_count() or 1
                self._cluster = dd.LocalCluster(
                    n_workers=n,
                    threads_per_worker=self.threads_per_worker,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.ERROR,
                )
                self._client = dd.Client(self._cluster)
            log.info("Dask engine: %s", self._client)
        return self._client

    @property
    def parallelism(self) -> int:
        """How many tasks run at once (worker threads of the cluster)."""
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def map(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any = None
    ) -> list[Any]:
        client = self.client
        shared_ref = None
        if shared is not None:  # wrapped in a list: scatter() would split a tuple or dict
            shared_ref = client.scatter([shared], broadcast=True, hash=False)[0]
        call = functools.partial(_limited_call, fn, self.threads_per_worker)
        futures = client.map(call, list(items), shared=shared_ref, pure=False, retries=self.retries)
        try:
            return list(client.gather(futures))
        finally:
            for f in futures:
                f.release()

    def imap(
        self,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
        shared: Any = None,
        window: int = 8,
    ) -> Iterator[Any]:
        client = self.client
        shared_ref = None
        if shared is not None:
            shared_ref = client.scatter([shared], broadcast=True, hash=False)[0]
        call = functools.partial(_limited_call, fn, self.threads_per_worker)

        def submit(item: Any) -> Any:
            return client.submit(call, item, shared=shared_ref, pure=False, retries=self.retries)

        return _windowed(submit, items, window)

    def close(self) -> None:
        # workers and scheduler log their own shutdown chatter (closed comms) at ERROR level
        # while a cluster we started goes down; keep that out of the user's terminal
        quiet = [logging.getLogger(n) for n in ("distributed", "tornado")]
        levels = [q.level for q in quiet]
        try:
            for q in quiet:
                q.setLevel(logging.CRITICAL)
            if self._client is not None and self._owns_client:
                self._client.close()
            self._client = None
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None
        finally:
            for q, level in zip(quiet, levels, strict=True):
                q.setLevel(level)

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.address or f"LocalCluster(n_workers={self.n_workers})"
        return f"DaskEngine({where})"


def _windowed(submit: Callable[[Any], Any], items: Iterable[Any], window: int) -> Iterator[Any]:
    """Submit items with at most ``window`` futures pending; yield their results in order."""
    pending: collections.deque[Any] = collections.deque()
    it = iter(items)
    try:
        for item in it:
            pending.append(submit(item))
            if len(pending) >= max(1, window):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()


def _import_distributed() -> Any:
    try:
        import dask.distributed as dd
    except ImportError:
        raise ConfigError(
            "compute.backend: dask needs the dask extra: pip install 'gmmspeech[dask]'"
        ) from None
    return dd


def make_engine(
    backend: str = "local",
    *,
    n_workers: int | None = None,
    scheduler_address: str | None = None,
    threads_per_worker: int = 1,
) -> LocalEngine | ProcessEngine | DaskEngine:
    """Build an engine from configuration values (``compute.backend`` and friends)."""
    if backend == "local":
        return LocalEngine()
    if backend == "processes":
        return ProcessEngine(n_workers=n_workers, threads_per_worker=threads_per_worker)
    if backend == "dask":
        return DaskEngine(
            address=scheduler_address, n_workers=n_workers, threads_per_worker=threads_per_worker
        )
    hint = did_you_mean(backend, ENGINE_NAMES, otherwise="")
    raise ConfigError(
        f"compute.backend: unknown engine {short_repr(backend)}; "
        + (f"{hint} " if hint else "")
        + f"choose one of {', '.join(ENGINE_NAMES)}"
    )
