"""gmmspeech.GaussianMixture: scikit-learn's estimator checks, fits against scikit-learn's
own GaussianMixture, and likelihoods against a float64 scipy oracle."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from gmmspeech import ConfigError, DataError, DiagGMM, GaussianMixture, map_adapt, train_ubm


def oracle_log_joint(X, weights, means, variances) -> np.ndarray:
    """log w_k + log N(x; mu_k, diag var_k) in float64 with scipy, shape (n, K)."""
    X = np.asarray(X, dtype=np.float64)
    logpdf = norm.logpdf(X[:, None, :], means[None], np.sqrt(variances)[None]).sum(axis=2)
    return np.log(weights)[None] + logpdf


def oracle_mean_ll(X, est) -> float:
    return float(
        logsumexp(oracle_log_joint(X, est.weights_, est.means_, est.covariances_), axis=1).mean()
    )


def tutorial_1d(seed: int = 0) -> np.ndarray:
    """Three bumps on a line, as in the 1-D EM tutorials."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal(-4.0, 1.0, 300), rng.normal(0.0, 0.7, 500), rng.normal(5.0, 1.5, 200)]
    return np.concatenate(parts)[:, None]


def tutorial_2d(seed: int = 0) -> np.ndarray:
    """Four elongated axis-aligned blobs in the plane, as in the 2-D EM tutorials."""
    rng = np.random.default_rng(seed)
    centres = [(0.0, 0.0), (6.0, 1.0), (2.0, 7.0), (-5.0, 4.0)]
    scales = [(1.0, 0.3), (0.5, 2.0), (1.5, 1.0), (0.8, 0.8)]
    sizes = [400, 250, 250, 100]
    return np.concatenate(
        [rng.normal(c, s, size=(n, 2)) for c, s, n in zip(centres, scales, sizes, strict=True)]
    )


def _fit_quiet(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X)


# ------------------------------------------------------------------ scikit-learn contract
@pytest.mark.parametrize(
    "est",
    [GaussianMixture(), GaussianMixture(2, init="kmeans", n_init=2, random_state=0)],
    ids=["defaults", "kmeans"],
)
def test_passes_sklearn_check_estimator(est) -> None:
    # raises on the first failing check; only the array-API check may skip (it needs
    # SCIPY_ARRAY_API set in the environment)
    results = check_estimator(est, on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert failed == []
    assert skipped <= {"check_array_api_input"}


@pytest.mark.parametrize("init", ["kmeans", "split"])
@pytest.mark.parametrize(("data", "k"), [(tutorial_1d, 3), (tutorial_2d, 4)])
def test_fit_as_good_as_best_of_five_sklearn_restarts(data, k, init) -> None:
    X = data()
    ours = GaussianMixture(k, init=init, random_state=0).fit(X)
    best = -np.inf
    for seed in range(5):
        sk = SkGaussianMixture(k, covariance_type="diag", random_state=seed).fit(X)
        # judged by one float64 oracle, not by either implementation's own score
        best = max(best, oracle_mean_ll(X, sk))
    ll = oracle_mean_ll(X, ours)
    # both stop when an iteration gains less than tol = 1e-3 per sample
    assert ll >= best - 1e-3, (ll, best)
    assert ours.converged_


def test_score_and_posteriors_match_float64_oracle() -> None:
    X = tutorial_2d(1)
    est = GaussianMixture(4).fit(X)
    joint = oracle_log_joint(X, est.weights_, est.means_, est.covariances_)
    ref_ll = logsumexp(joint, axis=1)
    np.testing.assert_allclose(est.score_samples(X), ref_ll, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(est.score(X), ref_ll.mean(), rtol=1e-6)
    ref_post = np.exp(joint - ref_ll[:, None])
    np.testing.assert_allclose(est.predict_proba(X), ref_post, atol=1e-5)
    np.testing.assert_array_equal(est.predict(X), ref_post.argmax(axis=1))
    n = X.shape[0]
    p = 4 * 2 * 2 + 3  # means and variances of 4 components in 2-D, 3 free weights
    np.testing.assert_allclose(est.bic(X), -2 * ref_ll.sum() + p * np.log(n), rtol=1e-6)
    np.testing.assert_allclose(est.aic(X), -2 * ref_ll.sum() + 2 * p, rtol=1e-6)


def test_fitted_attributes_and_em_does_not_decrease() -> None:
    X = tutorial_1d(2)
    est = GaussianMixture(3, tol=1e-6, max_iter=500).fit(X)
    assert est.weights_.shape == (3,) and est.means_.shape == (3, 1)
    assert est.covariances_.shape == (3, 1) and est.n_features_in_ == 1
    np.testing.assert_allclose(est.weights_.sum(), 1.0)
    np.testing.assert_allclose(est.precisions_, 1.0 / est.covariances_)
    assert est.converged_ and est.n_iter_ == len(est.lower_bounds_)
    lbs = np.array(est.lower_bounds_)
    assert est.n_repairs_ == 0
    assert (np.diff(lbs) >= -1e-6).all()
    # the truth: means -4, 0, 5
    np.testing.assert_allclose(np.sort(est.means_.ravel()), [-4.0, 0.0, 5.0], atol=0.25)


@pytest.mark.parametrize("init", ["split", "kmeans", "random"])
def test_every_init_finds_separated_clusters(init: str) -> None:
    X = tutorial_2d(3)
    est = _fit_quiet(GaussianMixture(4, init=init, n_init=3, random_state=0, max_iter=300), X)
    got = est.means_[np.lexsort(est.means_.T[::-1])]
    want = np.array(sorted([(0.0, 0.0), (6.0, 1.0), (2.0, 7.0), (-5.0, 4.0)]))
    np.testing.assert_allclose(got, want, atol=0.4)


def test_dead_components_are_repaired_without_nan() -> None:
    # 3 distinct points, 8 components: most components die and are re-seeded every M-step
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]]), 30, axis=0)
    X = X + np.random.default_rng(0).normal(0, 1e-3, X.shape)
    est = _fit_quiet(GaussianMixture(8, min_count=5.0, max_iter=20), X)
    assert est.n_repairs_ > 0
    for a in (est.weights_, est.means_, est.covariances_):
        assert np.isfinite(a).all()
    assert (est.covariances_ >= est.var_floor_ - 1e-12).all()
    assert np.isfinite(est.score_samples(X)).all()


def test_sample_follows_the_mixture() -> None:
    est = GaussianMixture(3, random_state=0).fit(tutorial_1d())
    X, labels = est.sample(20_000)
    assert X.shape == (20_000, 1) and labels.shape == (20_000,)
    np.testing.assert_allclose(np.bincount(labels, minlength=3) / 20_000, est.weights_, atol=0.015)
    np.testing.assert_allclose(X.mean(), est.weights_ @ est.means_[:, 0], atol=0.05)
    # seeded by random_state: the same draw twice
    np.testing.assert_array_equal(est.sample(5)[0], est.sample(5)[0])


# ------------------------------------------------------------------ DiagGMM and UBM
def test_diag_gmm_round_trip_and_use_as_ubm() -> None:
    X = tutorial_2d(4)
    est = GaussianMixture(4).fit(X)
    gmm = est.to_diag_gmm()
    assert isinstance(gmm, DiagGMM)
    np.testing.assert_array_equal(gmm.means, est.means_)
    np.testing.assert_array_equal(gmm.var_floor, est.var_floor_)
    np.testing.assert_allclose(gmm.log_likelihood(X), est.score_samples(X), rtol=1e-12)
    back = GaussianMixture.from_diag_gmm(gmm)
    assert back.n_components == 4 and back.n_features_in_ == 2
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    # as a UBM: MAP moves the means towards one group's data
    adapted = map_adapt(gmm, X[:400], relevance_factor=16.0)
    assert np.abs(adapted.means - gmm.means).max() > 0
    # and back: a UBM trained by train_ubm serves as a fitted estimator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ubm = train_ubm(X.astype(np.float32), 4, progress=False)
    est2 = GaussianMixture.from_diag_gmm(ubm)
    ref = logsumexp(oracle_log_joint(X, ubm.weights, ubm.means, ubm.variances), axis=1)
    np.testing.assert_allclose(est2.score_samples(X), ref, rtol=1e-5)
    assert est2.lower_bound_ == pytest.approx(ubm.history_[-1]["log_likelihood"])


# ------------------------------------------------------------------ model selection
def test_pipeline_and_grid_search_choose_the_true_number_of_components() -> None:
    X = tutorial_2d(5)
    X = X[np.random.default_rng(5).permutation(len(X))]  # folds must not hold out whole blobs
    pipe = make_pipeline(StandardScaler(), GaussianMixture(random_state=0))
    search = GridSearchCV(pipe, {"gaussianmixture__n_components": [1, 2, 4]}, cv=3)
    search.fit(X)
    assert search.best_params_ == {"gaussianmixture__n_components": 4}
    assert search.best_estimator_.predict(X).shape == (X.shape[0],)
    # BIC also picks the truth out of 1..7
    bics = [GaussianMixture(k).fit(X).bic(X) for k in range(1, 8)]
    assert int(np.argmin(bics)) + 1 == 4


# ------------------------------------------------------------------ errors
def test_errors_name_the_parameter() -> None:
    X = tutorial_1d()
    with pytest.raises(ConfigError, match="init"):
        GaussianMixture(2, init="kmeans++").fit(X)
    with pytest.raises(ConfigError, match="n_components"):
        GaussianMixture(0).fit(X)
    with pytest.raises(DataError, match="n_components=5"):
        GaussianMixture(5).fit(X[:4])
    with pytest.raises(NotFittedError, match="fit"):
        GaussianMixture().predict(X)
    with pytest.raises(DataError, match="fit"):
        GaussianMixture().to_diag_gmm()
    with pytest.raises(ValueError, match="2D array"):
        GaussianMixture().fit(X.ravel())


# ------------------------------------------------------------------ bench em --fit
def test_bench_em_fit_line_reports_time_to_common_log_likelihood(tmp_path, capsys) -> None:
    import json

    from gmmspeech.cli.main import main

    out = tmp_path / "em.json"
    argv = ["bench", "em", "--n", "3000", "--d", "3", "--k", "4", "--repeat", "1", "--fit"]
    assert main([*argv, "--init", "kmeans,split", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    for init in ("kmeans", "split"):
        r = data[f"fit_gmmspeech_{init}"]
        # the common value is the lower final log-likelihood, and both clocks stop there
        assert r["common_log_likelihood"] == min(
            r["log_likelihood"], data["fit_sklearn_log_likelihood"]
        )
        assert r["speedup_vs_sklearn"] == r["sklearn_seconds_to_common"] / r["seconds_to_common"]
        assert 0 < r["seconds_to_common"] <= r["seconds"] * 1.5 + 1.0
    assert "to the same log-likelihood" in capsys.readouterr().out
