"""Re-iterable sources of feature frames for training.

A source yields float32 blocks of about ``chunk_size`` frames each time :meth:`chunks` is
called, in a fixed order (so that sums, and hence models, are reproducible). In-memory arrays
and lists of per-utterance arrays are supported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config.sections import to_dict
from ..errors import DataError
from ..storage.provenance import config_differences
from .frames import as_frames
from .store import FeatureStore, pack_blocks, read_utterances


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
        return pack_blocks(self.arrays, chunk_size, self.n_features)

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


def _is_store(obj: object) -> bool:
    return isinstance(obj, FeatureStore)


def as_source(
    X: Any,
    *,
    max_frames: int | None = None,
    random_state: int = 0,
    subsample_every: int = 1,
    subsample_fraction: float | None = None,
) -> ArraySource | ListSource | StoreSource:
    """Validate training data and wrap it as a frame source.

    Parameters
    ----------
    X : array-like (N, D), or an iterable of (n_i, D) arrays
        One array of frames, or per-utterance arrays (a one-shot iterator is read once into
        memory).
        A :class:`~gmmspeech.FeatureStore`, or a list of them, is streamed from disk at
        every pass instead.
    max_frames : int, optional
        Keep a seeded random subset of this many frames (in their original order); in-memory
        data only.
    random_state : int
        Seed of that subset and of ``subsample_fraction``.
    subsample_every : int
        Keep every k-th frame of each utterance (1: all).
    subsample_fraction : float, optional
        Keep a seeded random fraction of each utterance's frames.
    """
    if _is_store(X) or (
        isinstance(X, (list, tuple)) and len(X) > 0 and all(_is_store(s) for s in X)
    ):
        stores = [X] if _is_store(X) else list(X)
        if max_frames is not None:
            raise DataError(
                "max_frames: not available when streaming from a feature store; use "
                "subsample_every or subsample_fraction"
            )
        return StoreSource(stores, subsample_every, subsample_fraction, random_state)
    if subsample_every > 1 or subsample_fraction is not None:
        X = _subsample_in_memory(X, subsample_every, subsample_fraction, random_state)
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


def _subsample_in_memory(X: Any, every: int, fraction: float | None, seed: int) -> list[np.ndarray]:
    """Apply per-utterance subsampling to in-memory data (utterance ids are list indices)."""
    arrays = [X] if isinstance(X, np.ndarray) else list(X)
    out = []
    for i, a in enumerate(arrays):
        arr = as_frames(a, name=f"X[{i}]")
        out.append(arr[_subsample_mask(str(i), arr.shape[0], every, fraction, seed)])
    return out


class Moments:
    """Count, mean and sum of squared deviations of frames (float64); adds with ``+``.

    ``+`` is Chan's pairwise merge, so moments of shards computed anywhere combine exactly
    as a map-reduce (``var = m2 / n``).
    """

    def __init__(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        self.n, self.mean, self.m2 = n, mean, m2

    @classmethod
    def of(cls, block: np.ndarray) -> Moments:
        """Moments of one (n, D) block."""
        b = block.astype(np.float64)
        mean = b.mean(axis=0) if b.shape[0] else np.zeros(b.shape[1])
        return cls(int(b.shape[0]), mean, ((b - mean) ** 2).sum(axis=0))

    def __add__(self, other: Moments) -> Moments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        tot = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / tot)
        m2 = self.m2 + other.m2 + delta**2 * (self.n * other.n / tot)
        return Moments(tot, mean, m2)

    @property
    def var(self) -> np.ndarray:
        """Population variance, shape (D,)."""
        return self.m2 / max(self.n, 1)


def shard_moments(shard: Any, chunk_size: int) -> Moments:
    """Moments of every frame of a source or shard (anything with ``chunks``); a map task."""
    total: Moments | None = None
    for block in shard.chunks(chunk_size):
        m = Moments.of(block)
        total = m if total is None else total + m
    if total is None:
        raise DataError("no frames in a shard")
    return total


def _subsample_mask(utt_id: str, n: int, every: int, fraction: float | None, seed: int) -> Any:
    """Which of an utterance's ``n`` frames to keep: a slice or a boolean mask.

    The random choice depends only on (seed, utterance id), never on the shard or worker
    that reads the utterance, so every engine trains on the same frames.
    """
    if fraction is not None:
        digest = int.from_bytes(hashlib.sha256(utt_id.encode()).digest()[:8], "little")
        rng = np.random.default_rng([int(seed), digest])
        return rng.random(n) < fraction
    return slice(None, None, every)


class StoreShard:
    """Some utterances of an HDF5 feature store; opens the file itself when read.

    Plain data (a path and ids), so it can be sent to worker processes and Dask workers
    that see the same storage.
    """

    def __init__(
        self,
        path: str,
        utt_ids: list[str],
        n_frames: int,
        n_features: int,
        every: int = 1,
        fraction: float | None = None,
        seed: int = 0,
    ) -> None:
        self.path = path
        self.utt_ids = utt_ids
        self.n_frames = n_frames
        self.n_features = n_features
        self.every = every
        self.fraction = fraction
        self.seed = seed

    def arrays(self) -> Iterator[np.ndarray]:
        """Each utterance's (subsampled) frames, in order (read by
        :func:`~gmmspeech.features.store.read_utterances`: only this shard's datasets)."""
        for utt, a in zip(self.utt_ids, read_utterances(self.path, self.utt_ids), strict=True):
            keep = _subsample_mask(utt, a.shape[0], self.every, self.fraction, self.seed)
            yield np.ascontiguousarray(a[keep])

    def chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        return pack_blocks(self.arrays(), chunk_size, self.n_features)


class StoreSource:
    """Frames streamed from one or more feature stores, never all in memory.

    Parameters
    ----------
    stores : list of FeatureStore
        Open stores (or views of some utterances); only their paths and ids are kept.
    every : int
        Keep every ``every``-th frame of each utterance.
    fraction : float, optional
        Keep a seeded random fraction of each utterance's frames instead.
    seed : int
        Seed of that choice.
    """

    def __init__(
        self,
        stores: list[FeatureStore],
        every: int = 1,
        fraction: float | None = None,
        seed: int = 0,
    ) -> None:
        if every < 1:
            raise DataError(f"subsample_every: must be >= 1, got {every}")
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise DataError(f"subsample_fraction: must be in (0, 1], got {fraction}")
        dims = {int(s.n_features) for s in stores}
        if len(dims) != 1:
            raise DataError(
                "feature stores have different feature dimensions "
                f"({', '.join(f'{s.path}: {s.n_features}' for s in stores)}); train on stores "
                "extracted with one feature config"
            )
        self.n_features = dims.pop()
        for s in stores[1:]:
            if str(s.config_hash) != str(stores[0].config_hash):
                diff = config_differences(
                    to_dict(s.config), to_dict(stores[0].config), ("here", f"in {stores[0].path}")
                )
                raise DataError(
                    f"feature stores were extracted with different feature configs ({s.path}: "
                    + "; ".join(diff)
                    + "); train on stores extracted with one feature config"
                )
        self.feature_config: dict[str, Any] = to_dict(stores[0].config)
        self.every, self.fraction, self.seed = every, fraction, seed
        self.entries: list[tuple[str, str, int]] = []  # (path, utt_id, frames kept)
        for s in stores:
            path = str(Path(s.path).resolve())
            for utt in s:
                n = s.num_frames(utt)
                keep = _subsample_mask(utt, n, every, fraction, seed)
                kept = int(np.count_nonzero(keep)) if fraction is not None else len(range(n)[keep])
                if kept:
                    self.entries.append((path, utt, kept))
        self.n_frames = int(sum(e[2] for e in self.entries))
        if self.n_frames == 0:
            raise DataError(
                "the feature store(s) hold no frames"
                + (" after subsampling" if every > 1 or fraction is not None else "")
            )

    def shards(self, shard_frames: int) -> list[Any]:
        out: list[Any] = []
        group: list[tuple[str, str, int]] = []
        size = 0

        def flush() -> None:
            # one shard reads one file: split the group where the path changes
            start = 0
            for i in range(1, len(group) + 1):
                if i == len(group) or group[i][0] != group[start][0]:
                    part = group[start:i]
                    out.append(
                        StoreShard(
                            part[0][0],
                            [e[1] for e in part],
                            sum(e[2] for e in part),
                            self.n_features,
                            self.every,
                            self.fraction,
                            self.seed,
                        )
                    )
                    start = i

        for entry in self.entries:
            group.append(entry)
            size += entry[2]
            if size >= shard_frames:
                flush()
                group, size = [], 0
        if group:
            flush()
        return out

    def chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        for shard in self.shards(2**62):
            yield from shard.chunks(chunk_size)
