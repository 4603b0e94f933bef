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
GROUP_ROWS = 1 << 18
#: Rows scanned at a time when a block's rows are collected.
_SCAN = 1 << 20


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
    counts = np.cumsum(count_codes(codes, n_ids))
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
                yield _rows_in(codes, lo, hi)
        lo = hi


def count_codes(codes: np.ndarray, n_ids: int) -> np.ndarray:
    """Occurrences of each code in ``range(n_ids)``, shape (n_ids,) int64; counted in
    slices, since ``np.bincount`` would first copy all the codes to int64."""
    counts = np.zeros(n_ids, dtype=np.int64)
    for s0 in range(0, codes.size, _SCAN):
        counts += np.bincount(codes[s0 : s0 + _SCAN], minlength=n_ids)
    return counts


def _rows_in(codes: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows whose code is in ``[lo, hi)``, scanned in slices (temporaries of one slice)."""
    parts = []
    for s0 in range(0, codes.size, _SCAN):
        part = codes[s0 : s0 + _SCAN]
        parts.append(np.flatnonzero((part >= lo) & (part < hi)) + s0)
    return np.concatenate(parts)


__all__ = ["GROUP_ROWS", "IdCodes", "blocks_by_test", "count_codes", "encode_ids"]
