"""A feature matrix kept in a raw float32 file instead of memory (a long file's features).

A 60-minute utterance has about 360,000 frames: 86 MB of float32 features at 60 dims. The
blockwise front end writes them to a spill file as it computes them, with the per-utterance
normalisation (CMN/CMVN) left as a shift and a scale applied when they are read back; the
store writers copy them into the store block by block. So neither the process computing
them nor the one writing the store holds the whole matrix.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

#: Rows read back per block (about 4 MB at 60 features).
READ_ROWS = 1 << 14


class SpilledFrames:
    """Frames ``(x - shift) * scale`` of a raw float32 file holding ``shape`` row-major.

    Parameters
    ----------
    path : str
        The raw file (native-endian float32, no header).
    shape : tuple of int
        (n_frames, n_features).
    shift, scale : ndarray, shape (n_features,), float32, optional
        Applied to each row read, in float32, in that order (the arithmetic of an in-memory
        CMN/CMVN); ``None``: unchanged.
    """

    def __init__(
        self,
        path: str,
        shape: tuple[int, int],
        shift: np.ndarray | None = None,
        scale: np.ndarray | None = None,
    ) -> None:
        self.path = path
        self.shape = (int(shape[0]), int(shape[1]))
        self.shift = shift
        self.scale = scale

    def blocks(self, rows: int = READ_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, block)`` pairs covering every row in order; each block is a fresh
        (<= rows, n_features) float32 array."""
        n, d = self.shape
        with open(self.path, "rb") as fh:
            for at in range(0, n, rows):
                m = min(rows, n - at)
                block = np.fromfile(fh, dtype=np.float32, count=m * d)
                if block.size != m * d:
                    raise OSError(f"{self.path}: spill file shorter than its {n} rows")
                block = block.reshape(m, d)
                if self.shift is not None:
                    block -= self.shift
                if self.scale is not None:
                    block *= self.scale
                yield at, block

    def to_array(self) -> np.ndarray:
        """All rows in memory, shape ``shape``, float32."""
        out = np.empty(self.shape, dtype=np.float32)
        for at, block in self.blocks():
            out[at : at + block.shape[0]] = block
        return out

    def remove(self) -> None:
        """Delete the file (once its rows are stored)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __repr__(self) -> str:
        return f"SpilledFrames({Path(self.path).name!r}, shape={self.shape})"


__all__ = ["READ_ROWS", "SpilledFrames"]
