"""Score normalisation against direct numpy computations."""

from __future__ import annotations

import numpy as np
import pytest

from gmmspeech import DataError
from gmmspeech.decisions.norm import adaptive_snorm, normalize, snorm, tnorm, znorm, ztnorm


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    n_models, n_tests, nu, nm = 4, 5, 30, 25
    model_cohort = rng.normal(rng.normal(size=(n_models, 1)), 2.0, (n_models, nu))
    test_cohort = rng.normal(rng.normal(size=(n_tests, 1)), 1.5, (n_tests, nm))
    cohort_cohort = rng.normal(0.5, 1.0, (nm, nu))
    mi = np.array([0, 1, 2, 3, 0, 1, 2])
    ti = np.array([0, 1, 2, 3, 4, 4, 0])
    s = rng.normal(size=7)
    return s, model_cohort, test_cohort, cohort_cohort, mi, ti


def test_z_t_s(case) -> None:
    s, mc, tc, cc, mi, ti = case
    for k in range(len(s)):
        row = mc[mi[k]]
        z = (s[k] - row.sum() / row.size) / np.sqrt(((row - row.mean()) ** 2).mean())
        assert znorm(s, mc, mi)[k] == pytest.approx(z)
        col = tc[ti[k]]
        t = (s[k] - col.mean()) / np.sqrt(np.mean((col - col.mean()) ** 2))
        assert tnorm(s, tc, ti)[k] == pytest.approx(t)
        assert snorm(s, mc, tc, mi, ti)[k] == pytest.approx(0.5 * (z + t))


def test_zt(case) -> None:
    s, mc, tc, cc, mi, ti = case
    got = ztnorm(s, mc, tc, cc, mi, ti)
    for k in range(len(s)):
        z = (s[k] - mc[mi[k]].mean()) / mc[mi[k]].std()
        # cohort model j's score on test t, Z-normalised with cohort model j's own statistics
        tz = np.array([(tc[ti[k], j] - cc[j].mean()) / cc[j].std() for j in range(cc.shape[0])])
        assert got[k] == pytest.approx((z - tz.mean()) / tz.std())


def test_adaptive_snorm_uses_top_n(case) -> None:
    s, mc, tc, cc, mi, ti = case
    n = 7
    got = adaptive_snorm(s, mc, tc, mi, ti, top_n=n)
    for k in range(len(s)):
        a = np.sort(mc[mi[k]])[::-1][:n]
        b = np.sort(tc[ti[k]])[::-1][:n]
        ref = 0.5 * ((s[k] - a.mean()) / a.std() + (s[k] - b.mean()) / b.std())
        assert got[k] == pytest.approx(ref)
    # top_n >= cohort size is plain S-norm
    np.testing.assert_allclose(
        adaptive_snorm(s, mc, tc, mi, ti, top_n=1000), snorm(s, mc, tc, mi, ti)
    )


def test_nan_entries_are_ignored(case) -> None:
    s, mc, tc, cc, mi, ti = case
    mc2 = mc.copy()
    mc2[0, :5] = np.nan
    got = znorm(s, mc2, mi)
    assert got[0] == pytest.approx((s[0] - mc[0, 5:].mean()) / mc[0, 5:].std())


def test_dispatch_and_errors(case) -> None:
    s, mc, tc, cc, mi, ti = case
    np.testing.assert_allclose(
        normalize("z", s, model_index=mi, test_index=ti, model_cohort=mc), znorm(s, mc, mi)
    )
    with pytest.raises(DataError, match="norm"):
        normalize("q", s, model_index=mi, test_index=ti)
    with pytest.raises(DataError, match="norm 'zt': needs cohort_cohort"):
        normalize("zt", s, model_index=mi, test_index=ti, model_cohort=mc, test_cohort=tc)
    with pytest.raises(DataError, match="model_index"):
        znorm(s, mc, mi + 10)
    with pytest.raises(DataError, match="std 0"):
        znorm(s, np.ones((4, 3)), mi)
