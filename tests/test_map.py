"""MAP adaptation against the Reynolds, Quatieri & Dunn (2000) equations written out here."""

from __future__ import annotations

import numpy as np
import pytest

from gmmspeech import DiagGMM, ModelMismatchError, accumulate, map_adapt
from gmmspeech.errors import ConfigError


def _ubm(k: int = 6, d: int = 3, seed: int = 0) -> DiagGMM:
    rng = np.random.default_rng(seed)
    return DiagGMM(
        rng.dirichlet(np.ones(k) * 3),
        rng.normal(0, 3, (k, d)) + 10.0,  # far from 0: exercises the shifted statistics
        rng.uniform(0.5, 2.0, (k, d)),
    )


def _posteriors(ubm: DiagGMM, x: np.ndarray) -> np.ndarray:
    """Naive float64 responsibilities, a loop over components."""
    logp = np.empty((x.shape[0], ubm.n_components))
    for k in range(ubm.n_components):
        var = ubm.variances[k]
        logp[:, k] = (
            np.log(ubm.weights[k])
            - 0.5 * np.sum(np.log(2 * np.pi * var))
            - 0.5 * np.sum((x - ubm.means[k]) ** 2 / var, axis=1)
        )
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=1, keepdims=True)


def _reference(ubm: DiagGMM, x: np.ndarray, r: float) -> tuple[np.ndarray, ...]:
    """Reynolds (2000) eqs. (11)-(14) in float64, with the UBM's own variance floor 0."""
    g = _posteriors(ubm, x)
    n = g.sum(axis=0)
    ex = (g.T @ x) / n[:, None]
    ex2 = (g.T @ (x * x)) / n[:, None]
    alpha = n / (n + r)
    a = alpha[:, None]
    w = alpha * n / x.shape[0] + (1 - alpha) * ubm.weights
    w = w / w.sum()
    mu = a * ex + (1 - a) * ubm.means
    var = a * ex2 + (1 - a) * (ubm.variances + ubm.means**2) - mu**2
    return w, mu, var


@pytest.mark.parametrize("adapt", ["m", "w", "v", "mw", "mv", "wv", "mwv"])
def test_map_matches_equations(adapt: str) -> None:
    ubm = _ubm()
    x = ubm.sample(400, 1)[0] + 0.3
    w_ref, mu_ref, var_ref = _reference(ubm, x.astype(np.float32).astype(np.float64), 8.0)
    spk = map_adapt(ubm, x, relevance_factor=8.0, adapt=adapt, variance_floor=1e-8)
    np.testing.assert_allclose(spk.weights, w_ref if "w" in adapt else ubm.weights, rtol=1e-4)
    np.testing.assert_allclose(spk.means, mu_ref if "m" in adapt else ubm.means, atol=2e-4)
    if "v" in adapt:
        if "m" in adapt:
            var_want = var_ref  # Reynolds' eq. (14) as written
        else:
            # means kept: the variance about the UBM mean, alpha E[(x - mu)^2] + (1-alpha) var
            xx = x.astype(np.float32).astype(np.float64)
            g = _posteriors(ubm, xx)
            n = g.sum(0)
            a = (n / (n + 8.0))[:, None]
            e_sq = np.stack([g[:, k] @ (xx - ubm.means[k]) ** 2 for k in range(6)]) / n[:, None]
            var_want = a * e_sq + (1 - a) * ubm.variances
        np.testing.assert_allclose(spk.variances, var_want, rtol=2e-3, atol=2e-4)
    else:
        np.testing.assert_array_equal(spk.variances, ubm.variances)


def test_list_of_arrays_and_stats_give_the_same_model() -> None:
    ubm = _ubm()
    x = ubm.sample(300, 2)[0]
    a = map_adapt(ubm, [x[:100], x[100:]], adapt="mwv")
    b = map_adapt(ubm, accumulate(ubm, x), adapt="mwv")
    np.testing.assert_allclose(a.means, b.means, atol=1e-5)
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-6)
    np.testing.assert_allclose(a.variances, b.variances, rtol=1e-5)


def test_r_to_zero_gives_ml_estimate_of_the_data() -> None:
    ubm = _ubm()
    x = ubm.sample(500, 3)[0] - 0.5
    g = _posteriors(ubm, x.astype(np.float32).astype(np.float64))
    xx = x.astype(np.float32).astype(np.float64)
    n = g.sum(0)
    ml_mean = g.T @ xx / n[:, None]
    ml_var = g.T @ xx**2 / n[:, None] - ml_mean**2
    spk = map_adapt(ubm, x, relevance_factor=0.0, adapt="mwv", variance_floor=1e-10)
    np.testing.assert_allclose(spk.means, ml_mean, atol=2e-4)
    np.testing.assert_allclose(spk.weights, n / n.sum(), rtol=1e-4)
    np.testing.assert_allclose(spk.variances, ml_var, rtol=2e-3, atol=2e-4)


def test_r_to_infinity_gives_the_ubm_back() -> None:
    ubm = _ubm()
    x = ubm.sample(200, 4)[0] + 1.0
    for r in (np.inf, 1e12):
        spk = map_adapt(ubm, x, relevance_factor=r, adapt="mwv")
        np.testing.assert_allclose(spk.means, ubm.means, atol=1e-9)
        np.testing.assert_allclose(spk.weights, ubm.weights, atol=1e-9)
        np.testing.assert_allclose(spk.variances, ubm.variances, rtol=1e-6)


def test_components_without_data_keep_the_ubm_values() -> None:
    # two far-apart components; data only near the first
    ubm = DiagGMM([0.5, 0.5], [[0.0, 0.0], [100.0, 100.0]], [[1.0, 1.0], [1.0, 1.0]])
    x = np.random.default_rng(0).normal(0.5, 1.0, (100, 2))
    spk = map_adapt(ubm, x, relevance_factor=4.0, adapt="mv")
    np.testing.assert_array_equal(spk.means[1], ubm.means[1])
    np.testing.assert_array_equal(spk.variances[1], ubm.variances[1])
    assert np.all(np.abs(spk.means[0] - 0.5) < 0.3)  # the first moved toward the data


def test_variance_floor_is_applied() -> None:
    ubm = _ubm()
    x = np.repeat(ubm.means[:1], 500, axis=0)  # zero-variance data on one component
    spk = map_adapt(ubm, x, relevance_factor=0.0, adapt="v", variance_floor=0.05)
    assert spk.variances.min() >= 0.05 - 1e-12
    assert np.isfinite(spk.variances).all()


def test_bad_input() -> None:
    ubm = _ubm()
    with pytest.raises(ModelMismatchError, match="features"):
        map_adapt(ubm, np.zeros((10, 4)))
    with pytest.raises(ConfigError, match="adapt"):
        map_adapt(ubm, np.zeros((10, 3)), adapt="mx")
    with pytest.raises(ConfigError, match="relevance_factor"):
        map_adapt(ubm, np.zeros((10, 3)), relevance_factor=-1)
