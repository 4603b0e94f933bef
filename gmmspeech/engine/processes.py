"""A pool of local worker processes started from a forkserver, dying with their owner.

Workers fork from a forkserver that has imported :data:`WORKER_PRELOAD` once per run, so no
HDF5 handle crosses a fork; each watches a pipe whose only writing end the owning process
holds, and exits when it closes (``PR_SET_PDEATHSIG`` would not do: a worker's parent is the
forkserver). The forkserver ends with it during its imports too (:mod:`gmmspeech.forkguard`).

A large ``shared`` argument (a model bank, a TV model) goes to each worker once, through a
temporary file, not with every task: a pool pickles a task's arguments each time, which
for a 200 MiB argument and 40 tasks cost 39 s against 1.6 s (measured in the commit that
made the change).
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import pickle
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any

from threadpoolctl import threadpool_limits

from ..errors import ConfigError, GmmSpeechError
from ..forkguard import WORKER_PRELOAD
from .core import Task
from .threads import THREAD_VARS, cap_workers


class WorkerDiedError(GmmSpeechError):
    """A worker process died (killed, or out of memory) while running a task."""


#: A ``shared`` argument whose pickle is larger than this reaches each worker once, through
#: a file; a smaller one travels with every task, as the pool would send it anyway.
SHARED_INLINE_BYTES = 1 << 20


@dataclass(frozen=True)
class SharedFile:
    """Where a worker finds a large ``shared`` argument: a pickle this run wrote moments ago.

    Not a model file: the same bytes the pool would otherwise have sent through its pipe,
    written once by the owning process to a private (0600) temporary file.
    """

    path: str
    token: str


# per worker process: the latest shared argument, by token (one at a time: a worker runs
# the tasks of one map or imap call after another)
_worker_shared: dict[str, Any] = {}


def call_task(fn: Task, item: Any, shared: Any) -> Any:
    """Run ``fn(item, shared)`` in a worker, loading a :class:`SharedFile` once per worker."""
    if isinstance(shared, SharedFile):
        obj = _worker_shared.get(shared.token)
        if obj is None:
            _worker_shared.clear()  # the previous call's, before this one is loaded
            with open(shared.path, "rb") as f:
                obj = pickle.load(f)
            _worker_shared[shared.token] = obj
        shared = obj
    return fn(item, shared)


@contextlib.contextmanager
def shipped(shared: Any) -> Iterator[Any]:
    """``shared`` as the tasks of one call should carry it; a temporary file, removed at
    the end of the call, when its pickle exceeds :data:`SHARED_INLINE_BYTES`."""
    if shared is None:
        yield None
        return
    data = pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) <= SHARED_INLINE_BYTES:
        yield shared
        return
    fd, path = tempfile.mkstemp(prefix=f".gmmspeech-shared-{os.getpid()}-", suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        del data
        yield SharedFile(path, uuid.uuid4().hex)
    finally:
        os.unlink(path)


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
    for k in THREAD_VARS:  # for BLAS libraries loaded later in this process
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
            result(f)

    def map(self, fn: Task, items: Sequence[Any], shared: Any = None) -> list[Any]:
        pool = self._executor()
        with shipped(shared) as s:
            futures = [pool.submit(call_task, fn, item, s) for item in items]
            return [result(f) for f in futures]

    def imap(
        self, fn: Task, items: Iterable[Any], shared: Any = None, window: int = 8
    ) -> Iterator[Any]:
        pool = self._executor()
        with shipped(shared) as s:
            yield from windowed(lambda item: pool.submit(call_task, fn, item, s), items, window)

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


def result(future: Future[Any]) -> Any:
    try:
        return future.result()
    except BrokenProcessPool:
        raise WorkerDiedError(
            "a worker process died (out of memory or killed); rerun (finished work is kept "
            "where the command resumes), or use fewer workers"
        ) from None


def windowed(submit: Callable[[Any], Any], items: Iterable[Any], window: int) -> Iterator[Any]:
    """Submit items with at most ``window`` futures pending; yield their results in order."""
    pending: collections.deque[Any] = collections.deque()
    it = iter(items)
    try:
        for item in it:
            pending.append(submit(item))
            if len(pending) >= max(1, window):
                yield result(pending.popleft())
        while pending:
            yield result(pending.popleft())
    finally:
        for f in pending:
            f.cancel()
