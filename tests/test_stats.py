import numpy as np
import oracles
import pytest

from gmmspeech import DiagGMM, ModelMismatchError, SufficientStats, accumulate


@pytest.fixture
def model_and_data():
    rng = np.random.default_rng(7)
    k, d = 6, 4
    w = rng.dirichlet(np.ones(k))
    mu = rng.normal(size=(k, d)) * 2 + 40.0
    var = rng.uniform(0.5, 2.0, size=(k, d))
    gmm = DiagGMM(w, mu, var)
    X = gmm.sample(1500, random_state=3)[0]
    return gmm, X, (w, mu, var)


def test_accumulate_matches_naive_sums(model_and_data):
    gmm, X, params = model_and_data
    post = oracles.posteriors(X, *params)  # (N, K) float64
    st = accumulate(gmm, X, chunk_size=128)
    assert st.n_frames == 1500
    np.testing.assert_allclose(st.zeroth, post.sum(axis=0), rtol=1e-5)
    raw_first = post.T @ X
    raw_second = post.T @ (X * X)
    n = post.sum(axis=0)[:, None]
    np.testing.assert_allclose(st.means(), raw_first / n, rtol=1e-6)
    np.testing.assert_allclose(st.variances(), raw_second / n - (raw_first / n) ** 2, rtol=2e-4)
    assert st.log_likelihood == pytest.approx(oracles.log_likelihood(X, *params).sum(), rel=1e-6)
    np.testing.assert_allclose(st.global_mean(), X.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(st.global_variance(), X.var(axis=0), rtol=1e-4)


def test_sum_of_shards_equals_whole(model_and_data):
    gmm, X, _ = model_and_data
    whole = accumulate(gmm, X)
    parts = [accumulate(gmm, X[i : i + 400]) for i in range(0, len(X), 400)]
    total = sum(parts)
    assert isinstance(total, SufficientStats) and total.n_frames == whole.n_frames
    # each block's product is a float32 sum (DESIGN: products in float32, accumulators in
    # float64), so a different blocking changes the result at the float32 level only
    np.testing.assert_allclose(total.zeroth, whole.zeroth, rtol=1e-5)
    # first-order sums cancel (terms of both signs about the centre: sums of ~0.03 from
    # terms of size ~1), so a relative tolerance means nothing there. The per-frame work is
    # row-wise and identical in both blockings; only the float32 product r.T @ z differs: each
    # term gamma_tk * (x_t - c) is rounded to float32 and summed in float32 in another order.
    # Such a sum of N terms is typically off by sqrt(N) * eps32 * sum_t |term| (Higham,
    # Accuracy and Stability of Numerical Algorithms, 2nd ed., section 4.2), which is the
    # absolute tolerance, per element.
    eps32 = float(np.finfo(np.float32).eps)
    abs_terms = gmm.posteriors(X).T @ np.abs(X - whole.shift)
    atol = np.sqrt(len(X)) * eps32 * abs_terms
    assert np.all(np.abs(total.first - whole.first) <= atol + 1e-5 * np.abs(whole.first))
    np.testing.assert_allclose(total.second, whole.second, rtol=1e-5)
    assert total.log_likelihood == pytest.approx(whole.log_likelihood, rel=1e-9)


def test_shift_is_exact(model_and_data):
    gmm, X, _ = model_and_data
    st = accumulate(gmm, X)
    moved = st.shifted(np.zeros(4))
    # about 0 the statistics are the raw sums
    post = gmm.posteriors(X)
    np.testing.assert_allclose(moved.first, post.T @ X, rtol=1e-5)
    np.testing.assert_allclose(moved.second, post.T @ (X * X), rtol=1e-5)
    np.testing.assert_allclose(moved.means(), st.means(), rtol=1e-12)
    other = accumulate(gmm, X[:10]).shifted(np.ones(4) * 3.0)
    combined = st + other  # different shifts are reconciled
    np.testing.assert_array_equal(combined.shift, st.shift)
    np.testing.assert_allclose(combined.zeroth, st.zeroth + other.zeroth)


def test_adding_mismatched_stats_fails(model_and_data):
    gmm, X, _ = model_and_data
    st = accumulate(gmm, X)
    with pytest.raises(ModelMismatchError, match="same model"):
        st + SufficientStats.zeros(3, 4)
