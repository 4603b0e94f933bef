"""Where map-reduce work runs: in this process, in a local process pool, or on Dask.

Every engine offers ``map(fn, items, shared=None)``: ``fn(item, shared)`` for each item, the
results returned in the order of ``items``; and ``map_reduce``, which adds those results left
to right, so the reduction order is the same on every engine. ``shared`` is sent to workers
once per call (scattered on Dask) rather than once per item. Worker processes limit their
BLAS threads (``threads_per_worker``) so that workers do not oversubscribe the cores.

Functions and items sent to process or Dask workers must be importable module-level
functions and plain data (arrays, paths, dataclasses); workers open HDF5 files themselves.

BLAS threads are limited here and nowhere else: :func:`blas_threads` for loops in this
process, the worker initialiser for process workers, a per-task limit on Dask.

Process workers start from a *forkserver* that has imported numpy, h5py and librosa's
spectral stack (about 1.3 s), once per run; they live until :meth:`ProcessEngine.close`
and die with the process that made them: each watches a pipe whose only writing end that
process holds (``PR_SET_PDEATHSIG`` would not do: a worker's parent is the forkserver). The
forkserver itself ends with that process, during its imports too (:mod:`gmmspeech.forkguard`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import logging
import multiprocessing
import os
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any, Protocol

from threadpoolctl import threadpool_limits

from .config.build import did_you_mean
from .config.sections import BACKENDS, ComputeConfig
from .errors import ConfigError, GmmSpeechError, short_repr
from .forkguard import WORKER_PRELOAD

log = logging.getLogger(__name__)

ENGINE_NAMES = BACKENDS

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class WorkerDiedError(GmmSpeechError):
    """A worker process died (killed, or out of memory) while running a task."""


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
_USER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


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
    if any(env.get(v) for v in _USER_THREAD_VARIABLES):
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


def _exit_when_closed(owner: Connection) -> None:
    """Block until the owner's end of the pipe closes, then end this worker at once."""
    try:
        owner.recv()  # nothing is ever sent: this returns by EOF, when the owner is gone
    except (EOFError, OSError):
        pass
    os._exit(1)


def _init_worker(threads: int, owner: Connection) -> None:
    """Process-worker start-up: BLAS threads limited once for the worker's life; a thread
    that ends the worker when the process owning the engine goes away."""
    for k in _THREAD_VARS:  # for BLAS libraries loaded later in this process
        os.environ[k] = str(threads)
    threadpool_limits(limits=threads)  # those already loaded (numpy's)
    threading.Thread(target=_exit_when_closed, args=(owner,), daemon=True).start()


def _mp_context() -> BaseContext:
    """A forkserver preloading :data:`WORKER_PRELOAD` where there is one, else spawn.

    Never plain fork: a forked child would inherit this process's open HDF5 handles.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(WORKER_PRELOAD))
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - Windows


class Engine(Protocol):
    """What the training, extraction and scoring loops need from an engine."""

    name: str

    @property
    def parallelism(self) -> int:
        """How many tasks run at once (sizes the windows of work in flight)."""
        ...

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
    window = 4 * max(1, int(engine.parallelism))
    total: Any = None
    for r in engine.imap(fn, items, shared, window=window):
        total = r if total is None else total + r
    if total is None:
        raise ValueError("map_reduce: no items")
    return total


def _limited_call(fn: Callable[[Any, Any], Any], threads: int, item: Any, shared: Any) -> Any:
    """Run ``fn(item, shared)`` with at most ``threads`` BLAS/OpenMP threads (Dask tasks)."""
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
    """A pool of local worker processes, kept alive until :meth:`close`.

    Workers are forked from a forkserver (spawned where there is none), so no HDF5 handle
    crosses a fork and the imports are paid once; each worker limits its BLAS threads once
    at start-up and dies with its parent.

    Parameters
    ----------
    n_workers : int, optional
        Number of processes (default: the number of CPU cores; more is capped to it, with
        a warning).
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
        self.n_workers = cap_workers(int(n))
        self.threads_per_worker = int(threads_per_worker)
        self._pool: ProcessPoolExecutor | None = None
        self._lifeline: tuple[Connection, Connection] | None = None

    @property
    def parallelism(self) -> int:
        """How many tasks run at once."""
        return self.n_workers

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = _mp_context()
            # workers get the reading end; only this process ever holds the writing end
            self._lifeline = ctx.Pipe(duplex=False)
            self._pool = ProcessPoolExecutor(
                max_workers=self.n_workers,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(self.threads_per_worker, self._lifeline[0]),
            )
        return self._pool

    def start(self) -> None:
        """Start the workers now (otherwise at the first task); for timing start-up apart."""
        pool = self._executor()
        for f in [pool.submit(os.getpid) for _ in range(self.n_workers)]:
            _result(f)

    def map(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any = None
    ) -> list[Any]:
        pool = self._executor()
        futures = [pool.submit(fn, item, shared) for item in items]
        return [_result(f) for f in futures]

    def imap(
        self,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
        shared: Any = None,
        window: int = 8,
    ) -> Iterator[Any]:
        pool = self._executor()
        return _windowed(lambda item: pool.submit(fn, item, shared), items, window)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._lifeline is not None:
            for end in self._lifeline:
                end.close()
            self._lifeline = None

    def __enter__(self) -> ProcessEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ProcessEngine(n_workers={self.n_workers}, threads_per_worker={self.threads_per_worker})"


def _result(future: Future[Any]) -> Any:
    try:
        return future.result()
    except BrokenProcessPool:
        raise WorkerDiedError(
            "a worker process died (out of memory or killed); rerun (finished work is kept "
            "where the command resumes), or use fewer workers"
        ) from None


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
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
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


def extraction_compute(compute: ComputeConfig, processes: int | None) -> ComputeConfig:
    """Where a pipeline's feature extraction runs: worker processes whatever the backend.

    Extraction is per-utterance work that splits perfectly, so with the ``local`` backend it
    still runs on ``processes`` worker processes (None: ``min(CPUs, 4)``; 0: this process);
    the ``processes`` and ``dask`` backends use their own workers.
    """
    if compute.backend != "local":
        return compute
    n = min(os.cpu_count() or 1, 4) if processes is None else processes
    if n == 0:
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
