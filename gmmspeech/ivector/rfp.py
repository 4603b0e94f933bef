"""Symmetric matrices in LAPACK's rectangular full packed (RFP) storage, factored off the GIL.

An R x R symmetric matrix in RFP storage (``transr='N'``, ``uplo='L'``) is R(R+1)/2 numbers,
half of the full matrix, yet LAPACK factors, inverts and updates it with blocked (level-3)
routines: ``pftrf``, ``pftri``, ``pftrs``, ``sfrk``. The total-variability E-step keeps every
per-utterance precision in this storage, so the one matrix product that builds a batch of
them writes a layout LAPACK works on in place: no unpacking before the factorisation, no
packing after the inversion.

The routines are called through ctypes on the function pointers scipy exports in
:mod:`scipy.linalg.cython_lapack`. scipy's f2py wrappers (``scipy.linalg.lapack``) hold the
GIL for the whole call (a 0.4 s ``dpotrf`` stalled another Python thread for 0.33 s), so
threads calling them run one at a time; a ctypes call releases the GIL, so per-utterance
factorisations on several threads run in parallel.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.linalg import cython_lapack, lapack

from ..errors import DataError

_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype = ctypes.c_char_p
_capsule_name.argtypes = [ctypes.py_object]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _routine(name: str, n_args: int) -> Callable[..., None]:
    """A LAPACK routine of scipy's, as a ctypes function (all arguments by pointer)."""
    cap = cython_lapack.__pyx_capi__[name]
    address = _capsule_pointer(cap, _capsule_name(cap))
    return ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * n_args))(address)


_PFTRF = _routine("dpftrf", 5)  # transr, uplo, n, a, info
_PFTRI = _routine("dpftri", 5)  # transr, uplo, n, a, info
_PFTRS = _routine("dpftrs", 8)  # transr, uplo, n, nrhs, a, b, ldb, info
_SFRK = _routine("dsfrk", 10)  # transr, uplo, trans, n, k, alpha, a, lda, beta, c
_N = ctypes.c_char(b"N")
_L = ctypes.c_char(b"L")


def _int(v: int) -> ctypes.c_int:
    return ctypes.c_int(int(v))


def _ptr(a: np.ndarray) -> int:
    return int(a.ctypes.data)


def _check_vector(a: np.ndarray, r: int) -> None:
    if a.dtype != np.float64 or not a.flags.c_contiguous or a.size != r * (r + 1) // 2:
        raise ValueError(f"RFP array: need {r * (r + 1) // 2} contiguous float64, got {a.shape}")


def _check_fortran(b: np.ndarray, rows: int) -> None:
    if b.dtype != np.float64 or not b.flags.f_contiguous or b.shape[0] != rows:
        raise ValueError(f"need a Fortran-ordered float64 ({rows}, m) array, got {b.shape}")


def pftrf(a: np.ndarray, r: int) -> int:
    """Cholesky-factor the RFP matrix ``a`` (R(R+1)/2,) in place; LAPACK's ``info`` (0: done)."""
    _check_vector(a, r)
    info = ctypes.c_int(0)
    _PFTRF(ctypes.byref(_N), ctypes.byref(_L), ctypes.byref(_int(r)), _ptr(a), ctypes.byref(info))
    return info.value


def pftri(a: np.ndarray, r: int) -> int:
    """Replace the factor ``a`` (from :func:`pftrf`) by the inverse matrix, in place."""
    _check_vector(a, r)
    info = ctypes.c_int(0)
    _PFTRI(ctypes.byref(_N), ctypes.byref(_L), ctypes.byref(_int(r)), _ptr(a), ctypes.byref(info))
    return info.value


def pftrs(a: np.ndarray, r: int, b: np.ndarray) -> None:
    """Solve ``A X = B`` in place in ``b`` (R, m), Fortran order, with the factor ``a``."""
    _check_vector(a, r)
    _check_fortran(b, r)
    info = ctypes.c_int(0)
    m = b.shape[1] if b.ndim == 2 else 1
    _PFTRS(
        ctypes.byref(_N),
        ctypes.byref(_L),
        ctypes.byref(_int(r)),
        ctypes.byref(_int(m)),
        _ptr(a),
        _ptr(b),
        ctypes.byref(_int(r)),
        ctypes.byref(info),
    )


def sfrk(c: np.ndarray, r: int, a: np.ndarray, alpha: float = 1.0, beta: float = 1.0) -> None:
    """``C := alpha A A' + beta C`` in place, ``c`` RFP, ``a`` (R, m) in Fortran order."""
    _check_vector(c, r)
    _check_fortran(a, r)
    m = a.shape[1] if a.ndim == 2 else 1
    _SFRK(
        ctypes.byref(_N),
        ctypes.byref(_L),
        ctypes.byref(_N),
        ctypes.byref(_int(r)),
        ctypes.byref(_int(m)),
        ctypes.byref(ctypes.c_double(alpha)),
        _ptr(a),
        ctypes.byref(_int(r)),
        ctypes.byref(ctypes.c_double(beta)),
        _ptr(c),
    )


@dataclass(frozen=True)
class RfpLayout:
    """Where each entry of an R x R symmetric matrix sits in RFP storage.

    ``rows``, ``cols`` (R(R+1)/2,): the lower-triangle entry (row >= col) stored at each
    position; ``diag`` (R,): the position of diagonal entry i.
    """

    rank: int
    rows: np.ndarray
    cols: np.ndarray
    diag: np.ndarray

    @property
    def size(self) -> int:
        return self.rank * (self.rank + 1) // 2

    def full(self, a: np.ndarray) -> np.ndarray:
        """The symmetric (R, R) matrix of an RFP array (R(R+1)/2,)."""
        out = np.empty((self.rank, self.rank))
        out[self.rows, self.cols] = a
        out[self.cols, self.rows] = a
        return out

    def pack(self, full: np.ndarray) -> np.ndarray:
        """The RFP array (R(R+1)/2,) of a symmetric (R, R) matrix (its lower triangle)."""
        return np.ascontiguousarray(full[self.rows, self.cols])

    def log_det_factor(self, a: np.ndarray) -> float:
        """``log det A`` from the Cholesky factor :func:`pftrf` left in ``a``."""
        return 2.0 * float(np.log(a[self.diag]).sum())


@lru_cache(maxsize=8)
def rfp_layout(r: int) -> RfpLayout:
    """The layout of R x R matrices, found by letting LAPACK pack a matrix of entry codes."""
    if r < 1:
        raise DataError(f"rank: must be >= 1, got {r}")
    codes = np.arange(r * r, dtype=np.float64).reshape(r, r)  # entry (i, j) holds i*r + j
    arf, info = lapack.dtrttf(codes, transr="N", uplo="L")
    if info != 0:
        raise RuntimeError(f"LAPACK dtrttf failed (info {info})")
    rows, cols = np.divmod(arf.astype(np.int64), r)
    diag = np.empty(r, dtype=np.int64)
    on = np.flatnonzero(rows == cols)
    diag[rows[on]] = on
    return RfpLayout(r, rows, cols, diag)
