"""Ids as int32 codes: the compact form of long id lists (trial lists of millions of lines).

A list of ids is held as the distinct ids, in order of first appearance, and one int32 code
per occurrence, 4 bytes instead of a Python string reference and object.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence

import numpy as np


class IdCodes:
    """Distinct ids in order of first appearance and the int32 code of each occurrence."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.vocab: list[str] = []
        self.codes = array("i")

    def add(self, value: str) -> None:
        code = self.index.get(value)
        if code is None:
            code = self.index[value] = len(self.vocab)
            self.vocab.append(value)
        self.codes.append(code)

    def array(self) -> np.ndarray:
        return np.frombuffer(self.codes, dtype=np.int32) if self.codes else _EMPTY


_EMPTY = np.zeros(0, dtype=np.int32)


def encode_ids(ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
    c = IdCodes()
    for x in ids:
        c.add(str(x))
    return c.vocab, c.array().copy()


#: Trials handled together when a list is processed by groups of test utterances.
GROUP_ROWS = 1 << 20


def blocks_by_test(
    codes: np.ndarray, n_ids: int, max_rows: int | None = None
) -> Iterator[np.ndarray]:
    """Row indices of a trial list, by ranges of test codes of about ``max_rows`` trials.

    Every trial of a test utterance is in the same block (a block can exceed ``max_rows``
    when one utterance has more trials); rows are increasing within a block. The working
    memory is a few bytes per trial for one block, whatever the list's length.

    Parameters
    ----------
    codes : ndarray of int32, shape (n,)
    n_ids : int
        Codes are in ``range(n_ids)``.
    max_rows : int, optional
        Default :data:`GROUP_ROWS`.

    Yields
    ------
    ndarray of intp, shape (rows in the block,)
    """
    if codes.size == 0:
        return
    max_rows = GROUP_ROWS if max_rows is None else max_rows
    counts = np.cumsum(np.bincount(codes, minlength=n_ids))
    lo = 0
    while lo < n_ids:
        before = int(counts[lo - 1]) if lo else 0
        hi = int(np.searchsorted(counts, before + max_rows, side="right"))
        hi = max(hi, lo + 1)
        if hi >= n_ids:
            hi = n_ids
        if int(counts[hi - 1]) > before:
            if lo == 0 and hi == n_ids:
                yield np.arange(codes.size)
            else:
                yield np.flatnonzero((codes >= lo) & (codes < hi))
        lo = hi


__all__ = ["GROUP_ROWS", "IdCodes", "blocks_by_test", "encode_ids"]
