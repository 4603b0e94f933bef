"""Re-iterable sources of feature frames for training.

A source yields float32 blocks of about ``chunk_size`` frames each time :meth:`chunks` is
called, in a fixed order (so that sums, and hence models, are reproducible). In-memory arrays
and lists of per-utterance arrays are supported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import numpy as np

from .errors import DataError
from .frames import COMPUTE_DTYPE, as_frames


class FrameSource(Protocol):
    """Anything that can stream its frames, block by block, more than once.

    ``shards`` splits the source into independent pieces (plain, picklable objects that
    have the same ``chunks`` method) for map-reduce engines; the split depends only on the
    data and ``shard_frames``, never on the number of workers, so every engine sums the same
    partial statistics in the same order.
    """

    n_frames: int
    n_features: int

    def chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        """Yield float32 blocks of shape (<= chunk_size, n_features), always in one order."""
        ...

    def shards(self, shard_frames: int) -> list[Any]:
        """Split into pieces of about ``shard_frames`` frames, each with ``chunks()``."""
        ...


class ArraySource:
    """Frames held in one (N, D) array."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.n_frames = int(x.shape[0])
        self.n_features = int(x.shape[1])

    def chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        for start in range(0, self.n_frames, chunk_size):
            yield self.x[start : start + chunk_size]

    def shards(self, shard_frames: int) -> list[Any]:
        step = max(1, int(shard_frames))
        return [ArraySource(self.x[s : s + step]) for s in range(0, self.n_frames, step)]


class ListSource:
    """Frames held as a list of per-utterance (n_i, D) arrays, packed into full blocks."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = arrays
        self.n_frames = int(sum(a.shape[0] for a in arrays))
        self.n_features = int(arrays[0].shape[1])

    def chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        buf = np.empty((chunk_size, self.n_features), dtype=COMPUTE_DTYPE)
        fill = 0
        for a in self.arrays:
            pos = 0
            while pos < a.shape[0]:
                take = min(chunk_size - fill, a.shape[0] - pos)
                if fill == 0 and take == chunk_size:  # a whole block: no copy needed
                    yield a[pos : pos + take]
                else:
                    buf[fill : fill + take] = a[pos : pos + take]
                    fill += take
                    if fill == chunk_size:
                        yield buf
                        fill = 0
                pos += take
        if fill:
            yield buf[:fill]

    def shards(self, shard_frames: int) -> list[Any]:
        out: list[Any] = []
        group: list[np.ndarray] = []
        size = 0
        for a in self.arrays:
            group.append(a)
            size += a.shape[0]
            if size >= shard_frames:
                out.append(ListSource(group))
                group, size = [], 0
        if group:
            out.append(ListSource(group))
        return out


def as_source(
    X: Any, *, max_frames: int | None = None, random_state: int = 0
) -> ArraySource | ListSource:
    """Validate training data and wrap it as a frame source.

    Parameters
    ----------
    X : array-like (N, D), or an iterable of (n_i, D) arrays
        One array of frames, or per-utterance arrays (a one-shot iterator is read once into
        memory).
    max_frames : int, optional
        Keep a seeded random subset of this many frames (in their original order).
    random_state : int
        Seed of that subset.
    """
    if isinstance(X, np.ndarray) or (
        isinstance(X, (list, tuple)) and len(X) > 0 and np.isscalar(X[0])
    ):
        arrays = [as_frames(X, name="X")]
    elif isinstance(X, Iterable) and not isinstance(X, (str, bytes)):
        arrays = []
        for i, a in enumerate(X):
            arr = as_frames(a, name=f"X[{i}]")
            if arrays and arr.shape[1] != arrays[0].shape[1]:
                raise DataError(
                    f"X[{i}]: has {arr.shape[1]} features but X[0] has "
                    f"{arrays[0].shape[1]}; every utterance must use the same feature config"
                )
            if arr.shape[0]:
                arrays.append(arr)
        if not arrays:
            raise DataError("X: no frames (empty input or only empty utterances)")
    else:
        arrays = [as_frames(X, name="X")]
    n_total = sum(a.shape[0] for a in arrays)
    if n_total == 0:
        raise DataError("X: no frames to train on")
    if max_frames is not None and n_total > max_frames:
        rng = np.random.default_rng(random_state)
        keep = np.sort(rng.choice(n_total, size=int(max_frames), replace=False))
        full = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        return ArraySource(np.ascontiguousarray(full[keep]))
    if len(arrays) == 1:
        return ArraySource(arrays[0])
    return ListSource(arrays)


def global_moments(source: FrameSource, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of every frame of a source, in float64 (Chan's pairwise merge).

    Returns
    -------
    mean : ndarray, shape (D,)
    var : ndarray, shape (D,)
    """
    n = 0
    mean = np.zeros(source.n_features)
    m2 = np.zeros(source.n_features)
    for block in source.chunks(chunk_size):
        b = block.astype(np.float64)
        nb = b.shape[0]
        if nb == 0:
            continue
        mb = b.mean(axis=0)
        m2b = ((b - mb) ** 2).sum(axis=0)
        delta = mb - mean
        tot = n + nb
        mean = mean + delta * (nb / tot)
        m2 = m2 + m2b + delta**2 * (n * nb / tot)
        n = tot
    return mean, m2 / max(n, 1)
