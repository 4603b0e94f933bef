"""The :class:`Engine` protocol, the in-process engine and the ordered map-reduce."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

#: A unit of work: ``fn(item, shared) -> result``.
Task = Callable[[Any, Any], Any]


class Engine(Protocol):
    """What the training, extraction and scoring loops need from an engine."""

    name: str

    @property
    def parallelism(self) -> int:
        """How many tasks run at once (sizes the windows of work in flight)."""
        ...

    def map(self, fn: Task, items: Sequence[Any], shared: Any = None) -> list[Any]:
        """Return ``[fn(item, shared) for item in items]``, computed wherever the engine runs."""
        ...

    def imap(
        self, fn: Task, items: Iterable[Any], shared: Any = None, window: int = 8
    ) -> Iterator[Any]:
        """Like :meth:`map`, but yields results in order as they are ready, with at most
        ``window`` items in flight (bounded memory for long streams of work)."""
        ...

    def close(self) -> None:
        """Release workers and connections (idempotent)."""
        ...


def map_reduce(engine: Engine, fn: Task, items: Sequence[Any], shared: Any = None) -> Any:
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


class LocalEngine:
    """Runs everything in this process (the default; no services, no pickling)."""

    name = "local"
    parallelism = 1

    def map(self, fn: Task, items: Sequence[Any], shared: Any = None) -> list[Any]:
        return [fn(item, shared) for item in items]

    def imap(
        self, fn: Task, items: Iterable[Any], shared: Any = None, window: int = 8
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
