"""RFP storage and the GIL-free LAPACK calls of gmmspeech.ivector.rfp, against numpy's dense algebra."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from gmmspeech.engine import blas_threads
from gmmspeech.ivector.rfp import pftrf, pftri, pftrs, rfp_layout, sfrk


def _spd(r: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((r, r + 3))
    return x @ x.T + np.eye(r), x


@pytest.mark.parametrize("r", [1, 2, 5, 8, 37])
def test_layout_covers_the_lower_triangle_once_and_round_trips(r):
    lay = rfp_layout(r)
    assert lay.size == r * (r + 1) // 2
    assert (lay.rows >= lay.cols).all()
    assert len(set(zip(lay.rows.tolist(), lay.cols.tolist(), strict=True))) == lay.size
    np.testing.assert_array_equal(lay.rows[lay.diag], np.arange(r))
    np.testing.assert_array_equal(lay.cols[lay.diag], np.arange(r))
    a, _ = _spd(r, r)
    np.testing.assert_array_equal(lay.full(lay.pack(a)), a)


@pytest.mark.parametrize("r", [1, 2, 5, 8, 37])
def test_factor_solve_inverse_and_rank_k_update_equal_dense_algebra(r):
    lay = rfp_layout(r)
    a, x = _spd(r, 10 + r)
    f = lay.pack(a)
    assert pftrf(f, r) == 0
    assert lay.log_det_factor(f) == pytest.approx(np.linalg.slogdet(a)[1], rel=1e-12)
    rng = np.random.default_rng(r)
    b = np.asfortranarray(rng.standard_normal((r, 4)))
    got = b.copy(order="F")
    pftrs(f, r, got)
    np.testing.assert_allclose(got, np.linalg.solve(a, b), rtol=1e-10, atol=1e-12)
    v = rng.standard_normal(r)
    got_v = v.copy()
    pftrs(f, r, got_v)
    np.testing.assert_allclose(got_v, np.linalg.solve(a, v), rtol=1e-10, atol=1e-12)
    inv = f.copy()
    assert pftri(inv, r) == 0
    np.testing.assert_allclose(lay.full(inv), np.linalg.inv(a), rtol=1e-10, atol=1e-12)
    upd = inv.copy()
    sfrk(upd, r, v)  # C := v v' + C
    np.testing.assert_allclose(lay.full(upd), np.linalg.inv(a) + np.outer(v, v), rtol=1e-10)
    fresh = np.full(lay.size, np.nan)
    sfrk(fresh, r, np.asfortranarray(x), alpha=2.0, beta=0.0)  # beta 0 ignores the NaNs
    np.testing.assert_allclose(lay.full(fresh), 2.0 * x @ x.T, rtol=1e-12)


def test_a_matrix_that_is_not_positive_definite_is_reported_and_bad_arrays_refused():
    lay = rfp_layout(4)
    assert pftrf(lay.pack(-np.eye(4)), 4) > 0
    with pytest.raises(ValueError, match="contiguous float64"):
        pftrf(np.zeros(lay.size, dtype=np.float32), 4)
    with pytest.raises(ValueError, match="contiguous float64"):
        pftrf(np.zeros(lay.size + 1), 4)
    with pytest.raises(ValueError, match="Fortran-ordered"):
        pftrs(lay.pack(np.eye(4)), 4, np.zeros((4, 3)))


def test_a_factorisation_releases_the_gil():
    """Another Python thread keeps running during one long call (scipy's f2py wrappers
    stall it for the whole call)."""
    r = 2500
    lay = rfp_layout(r)
    a, _ = _spd(r, 0)
    work = lay.pack(a)
    done: list[float] = []

    def call() -> None:
        t0 = time.perf_counter()
        pftrf(work, r)
        done.append(time.perf_counter() - t0)

    with blas_threads(1):
        th = threading.Thread(target=call)
        longest, last = 0.0, time.perf_counter()
        th.start()  # timed too: the call may start before start() returns
        while th.is_alive():
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        th.join()
    assert longest < 0.5 * done[0], (longest, done[0])
