import numpy as np
import oracles
import pytest

import gmmspeech
from gmmspeech import DataError, DiagGMM, ModelMismatchError


def random_params(k, d, rng, offset=0.0):
    w = rng.dirichlet(np.ones(k))
    mu = rng.normal(size=(k, d)) * 3 + offset
    var = rng.uniform(0.3, 3.0, size=(k, d))
    return w, mu, var


@pytest.mark.parametrize(
    "k,d,offset", [(1, 1, 0.0), (4, 1, 0.0), (5, 3, 0.0), (16, 20, 0.0), (8, 13, 500.0)]
)
def test_likelihoods_match_scipy_loop(k, d, offset):
    rng = np.random.default_rng(k * 100 + d)
    w, mu, var = random_params(k, d, rng, offset)
    gmm = DiagGMM(w, mu, var)
    X = gmm.sample(700, random_state=1)[0]
    X[:5] += 4.0 * np.sqrt(var[0])  # some frames in the tails
    ref_comp = oracles.component_log_likelihoods(X, w, mu, var)
    ref_ll = oracles.log_likelihood(X, w, mu, var)
    ref_post = oracles.posteriors(X, w, mu, var)
    np.testing.assert_allclose(gmm.log_likelihood(X, chunk_size=64), ref_ll, rtol=1e-5)
    np.testing.assert_allclose(gmm.component_log_likelihoods(X), ref_comp, rtol=1e-5)
    np.testing.assert_allclose(gmm.posteriors(X, chunk_size=100), ref_post, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gmm.posteriors(X).sum(axis=1), 1.0, rtol=1e-12)
    assert gmm.score(X) == pytest.approx(ref_ll.mean(), rel=1e-6)


def test_two_bumps_one_dimensional_input():
    gmm = DiagGMM([0.5, 0.5], [-2.0, 2.0], [1.0, 1.0])
    assert gmm.n_components == 2 and gmm.n_features == 1
    x = np.array([0.0, 1.0, -3.0])
    post = gmm.posteriors(x)
    assert post.shape == (3, 2)
    np.testing.assert_allclose(post[0], [0.5, 0.5], atol=1e-7)
    # p(k=1 | x) = 1 / (1 + exp(-4x)) for equal weights/variances and means -2, 2
    np.testing.assert_allclose(post[:, 1], 1.0 / (1.0 + np.exp(-4.0 * x)), rtol=1e-5)
    ref = oracles.log_likelihood(x[:, None], [0.5, 0.5], [[-2.0], [2.0]], [[1.0], [1.0]])
    np.testing.assert_allclose(gmm.log_likelihood(x), ref, rtol=1e-6)


def test_top_components_match_sorted_oracle():
    rng = np.random.default_rng(3)
    w, mu, var = random_params(12, 4, rng)
    gmm = DiagGMM(w, mu, var)
    X = gmm.sample(300, random_state=2)[0]
    ref = np.argsort(-oracles.component_log_likelihoods(X, w, mu, var), axis=1)
    top = gmm.top_components(X, 3)
    assert top.shape == (300, 3)
    np.testing.assert_array_equal(top, ref[:, :3])
    np.testing.assert_array_equal(gmm.top_components(X, 12), ref)
    with pytest.raises(DataError, match="between 1 and n_components=12"):
        gmm.top_components(X, 13)


def test_sample_follows_weights_and_moments():
    gmm = DiagGMM([0.2, 0.8], [[0.0, 10.0], [5.0, -5.0]], [[1.0, 4.0], [0.25, 1.0]])
    X, labels = gmm.sample(40_000, random_state=0)
    assert X.shape == (40_000, 2) and labels.shape == (40_000,)
    assert abs(np.mean(labels == 0) - 0.2) < 0.01
    np.testing.assert_allclose(X[labels == 1].mean(axis=0), [5.0, -5.0], atol=0.03)
    np.testing.assert_allclose(X[labels == 0].var(axis=0), [1.0, 4.0], rtol=0.05)
    # the seed decides the draw: the same seed repeats it, another seed does not
    np.testing.assert_array_equal(
        gmm.sample(10, random_state=5)[0], gmm.sample(10, random_state=5)[0]
    )
    assert not np.array_equal(gmm.sample(10, random_state=5)[0], gmm.sample(10, random_state=6)[0])


@pytest.mark.parametrize(
    "args,pattern",
    [
        (
            ([0.5, 0.6], [[0.0], [1.0]], [[1.0], [1.0]]),
            r"weights: must sum to 1 .*got 1\.1.*weights\.sum\(\)",
        ),
        (([1.2, -0.2], [[0.0], [1.0]], [[1.0], [1.0]]), r"weights: must be >= 0"),
        (
            ([0.5, 0.5], [[0.0], [1.0]], [[1.0], [0.0]]),
            r"variances: must be > 0, got 0 at component 1, dimension 0",
        ),
        (([0.5, 0.5], [[0.0, 1.0]], [[1.0, 1.0]]), r"means: expected shape \(K, D\) with K=2 rows"),
        (
            ([0.5, 0.5], [[0.0], [1.0]], [[1.0, 1.0], [1.0, 1.0]]),
            r"variances: expected shape \(2, 1\)",
        ),
        (
            ([0.5, 0.5], [[0.0], [np.nan]], [[1.0], [1.0]]),
            r"means: 1 value\(s\) are NaN or infinite",
        ),
        (
            ([0.5, 0.5], [[0.0], [1.0]], [[1.0], [np.inf]]),
            r"variances: 1 value\(s\) are NaN or infinite",
        ),
        (([], [], []), r"weights: expected a non-empty 1-D array"),
    ],
)
def test_validation_messages(args, pattern):
    with pytest.raises(DataError, match=pattern):
        DiagGMM(*args)


def test_frames_validation():
    gmm = DiagGMM([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]])
    X = np.zeros((10, 2))
    X[3, 1] = np.nan
    X[7, 0] = np.inf
    with pytest.raises(DataError, match=r"2 of 10 rows contain NaN or inf values \(rows 3, 7\)"):
        gmm.log_likelihood(X)
    with pytest.raises(ModelMismatchError, match="frames have 3 features but the model expects 2"):
        gmm.log_likelihood(np.zeros((4, 3)))
    with pytest.raises(ModelMismatchError, match="reshape"):
        gmm.log_likelihood(np.zeros(2))
    ints = np.array([[0, 1], [2, 3]], dtype=np.int16)
    np.testing.assert_allclose(gmm.log_likelihood(ints), gmm.log_likelihood(ints.astype(float)))
    with pytest.raises(DataError, match="expected real numbers"):
        gmm.log_likelihood(np.array([["a", "b"]]))


def test_zero_weight_component_is_harmless():
    gmm = DiagGMM([1.0, 0.0], [0.0, 3.0], [1.0, 1.0])
    x = np.linspace(-3, 6, 50)
    post = gmm.posteriors(x)
    assert np.isfinite(post).all() and np.all(post[:, 1] == 0.0)
    np.testing.assert_allclose(
        gmm.log_likelihood(x),
        oracles.log_likelihood(x[:, None], [1.0], [[0.0]], [[1.0]]),
        rtol=1e-6,
    )


def test_lazy_public_names():
    assert gmmspeech.DiagGMM is DiagGMM
    with pytest.raises(AttributeError):
        gmmspeech.no_such_name  # noqa: B018
