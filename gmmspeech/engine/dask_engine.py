"""Dask distributed: a client you pass, a scheduler address, or a LocalCluster it starts."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from threadpoolctl import threadpool_limits

from ..errors import ConfigError
from .core import Task
from .processes import windowed

log = logging.getLogger(__name__)


def _limited_call(fn: Task, threads: int, item: Any, shared: Any) -> Any:
    """Run ``fn(item, shared)`` with at most ``threads`` BLAS/OpenMP threads (Dask tasks)."""
    with threadpool_limits(limits=threads):
        return fn(item, shared)


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

    def map(self, fn: Task, items: Sequence[Any], shared: Any = None) -> list[Any]:
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
        self, fn: Task, items: Iterable[Any], shared: Any = None, window: int = 8
    ) -> Iterator[Any]:
        client = self.client
        shared_ref = None
        if shared is not None:
            shared_ref = client.scatter([shared], broadcast=True, hash=False)[0]
        call = functools.partial(_limited_call, fn, self.threads_per_worker)

        def submit(item: Any) -> Any:
            return client.submit(call, item, shared=shared_ref, pure=False, retries=self.retries)

        return windowed(submit, items, window)

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


def _import_distributed() -> Any:
    try:
        import dask.distributed as dd
    except ImportError:
        raise ConfigError(
            "compute.backend: dask needs the dask extra: pip install 'gmmspeech[dask]'"
        ) from None
    return dd
