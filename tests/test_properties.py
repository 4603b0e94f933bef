"""Property tests of the block kernel (gmm.blocks + gmm.log_normalize) and of the statistics.

Oracles: scipy's logsumexp in float64, the posteriors of ``oracles`` (scipy.stats, one
component at a time), and the algebra of the statistics written out in float64.
"""

import numpy as np
import oracles
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import logsumexp

from gmmspeech import DiagGMM, SufficientStats, accumulate
from gmmspeech.mixture.gmm import log_normalize

EPS32 = float(np.finfo(np.float32).eps)
FAST = settings(max_examples=40, deadline=None)


@st.composite
def models_and_frames(draw, max_k=5, max_d=3, max_n=40):
    """A random diagonal GMM and frames around it, small sizes. Frames lie on a grid of
    2**-10 and within +-1024 of 0, so that adding an integer below 2048 is exact in float32."""
    k = draw(st.integers(1, max_k))
    d = draw(st.integers(1, max_d))
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = rng.dirichlet(np.ones(k))
    mu = rng.normal(scale=3.0, size=(k, d)) + draw(st.sampled_from([0.0, 40.0, -300.0]))
    var = rng.uniform(0.2, 4.0, size=(k, d))
    x = mu[rng.integers(k, size=n)] + rng.normal(
        scale=draw(st.sampled_from([0.5, 2.0])), size=(n, d)
    )
    return DiagGMM(w, mu, var), np.round(x * 1024) / 1024


log_terms = arrays(
    np.float32,
    st.tuples(st.integers(1, 12), st.integers(1, 9)),
    elements=st.floats(-1e4, 1e4, width=32),
)


@FAST
@given(log_terms)
def test_log_normalize_matches_logsumexp_and_posteriors_sum_to_one(a):
    expect = logsumexp(a.astype(np.float64), axis=1)
    work = a.copy()
    got, sums = log_normalize(work, posteriors=True)
    assert got.dtype == np.float64 and got.shape == (a.shape[0],) and sums.shape == (a.shape[0], 1)
    # inputs rounded to float32 (|a| eps32 / 2), the row sum in float32 (K eps32 relative)
    tol = EPS32 * (np.abs(a).max(axis=1) + a.shape[1] + 1)
    assert np.all(np.abs(got - expect) <= tol)
    assert np.all(work >= 0) and np.all(work <= 1)
    np.testing.assert_allclose(work.sum(axis=1, dtype=np.float64), 1.0, atol=a.shape[1] * EPS32)


@FAST
@given(log_terms)
@example(np.array([[0.0, -88.0, -95.0, -103.0, -1e4]], dtype=np.float32))
def test_log_normalize_never_makes_float32_denormals(a):
    work = a.copy()
    log_normalize(work)
    tiny = np.finfo(np.float32).tiny
    assert not np.any((work != 0) & (np.abs(work) < tiny))


@FAST
@given(models_and_frames())
def test_gmm_posteriors_sum_to_one_and_match_the_oracle(case):
    gmm, x = case
    post = gmm.posteriors(x, chunk_size=7)
    assert post.shape == (x.shape[0], gmm.n_components)
    np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    expect = oracles.posteriors(x.astype(np.float32), gmm.weights, gmm.means, gmm.variances)
    # float32 log-likelihoods are off by ~eps32 * |log p| (relative), and so are posteriors
    ll = np.abs(gmm.component_log_likelihoods(x)).max()
    np.testing.assert_allclose(post, expect, rtol=0, atol=4 * EPS32 * (ll + 1) + 1e-30)


def _stats(rng, k=3, d=2):
    """Statistics with random (valid) content and a random shift."""
    zeroth = rng.uniform(0.5, 50.0, size=k)
    shift = rng.normal(scale=10.0, size=d)
    mean = rng.normal(scale=3.0, size=(k, d))
    var = rng.uniform(0.1, 2.0, size=(k, d))
    first = zeroth[:, None] * mean
    second = zeroth[:, None] * (var + mean**2)
    return SufficientStats(zeroth, first, second, shift, float(rng.normal()), int(rng.integers(99)))


@FAST
@given(st.integers(0, 2**32 - 1))
def test_stats_add_associatively_whatever_their_shifts(seed):
    rng = np.random.default_rng(seed)
    a, b, c = (_stats(rng) for _ in range(3))
    left, right = (a + b) + c, a + (b + c)
    assert left.n_frames == right.n_frames == a.n_frames + b.n_frames + c.n_frames
    right = right.shifted(left.shift)
    for name in ("zeroth", "first", "second"):
        np.testing.assert_allclose(getattr(left, name), getattr(right, name), rtol=1e-11)
    # the raw sums about 0, written out: sum n, sum (first + n s), sum (second + 2 s first + n s^2)
    raw_first = sum(s.first + s.zeroth[:, None] * s.shift for s in (a, b, c))
    raw_second = sum(
        s.second + 2 * s.shift * s.first + s.zeroth[:, None] * s.shift**2 for s in (a, b, c)
    )
    about0 = left.shifted(np.zeros(2))
    np.testing.assert_allclose(about0.first, raw_first, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(about0.second, raw_second, rtol=1e-10)


@FAST
@given(models_and_frames(), st.integers(-2047, 2047))
def test_stats_are_translation_equivariant(case, t):
    """Moving the frames and the model by t moves the data means by t and nothing else."""
    gmm, x = case
    moved = DiagGMM(gmm.weights, gmm.means + t, gmm.variances)
    base = accumulate(gmm, x, chunk_size=5)
    other = accumulate(moved, (x + t).astype(np.float32), chunk_size=5)
    # Both runs work in float32 about their float32-rounded centres, c and c + t, which
    # differ by up to eps32 |c + t| beyond t. That moves each frame's offset z by as much and
    # each log-term by dz |z| / var, plus the float32 rounding of log-terms of size |log p|.
    n = x.shape[0]
    spread = np.abs(x - gmm.center).max() + 1.0
    dz = EPS32 * (np.abs(gmm.center).max() + abs(t) + spread)
    dlog = dz * spread / gmm.variances.min() + EPS32 * (
        np.abs(gmm.component_log_likelihoods(x)).max() + 1.0
    )
    np.testing.assert_allclose(other.log_likelihood, base.log_likelihood, rtol=0, atol=4 * n * dlog)
    # responsibilities move by at most dlog / 2 each (d gamma = gamma (1 - gamma) d log)
    np.testing.assert_allclose(other.zeroth, base.zeroth, rtol=0, atol=4 * n * dlog)
    live = base.zeroth > 0.1
    np.testing.assert_allclose(
        (other.means() - t)[live],
        base.means()[live],
        rtol=0,
        atol=4 * (dz + n * dlog * spread) / 0.1,
    )


@FAST
@given(st.integers(0, 2**32 - 1))
def test_shifting_stats_there_and_back_is_exact_to_rounding(seed):
    rng = np.random.default_rng(seed)
    s = _stats(rng)
    back = s.shifted(rng.normal(scale=100.0, size=2)).shifted(s.shift)
    np.testing.assert_allclose(back.first, s.first, rtol=1e-9, atol=1e-9 * np.abs(s.shift).max())
    np.testing.assert_allclose(back.means(), s.means(), rtol=1e-10)
    np.testing.assert_allclose(back.variances(), s.variances(), rtol=1e-6, atol=1e-9)
