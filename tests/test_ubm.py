import warnings

import numpy as np
import pytest

import gmmspeech.mixture.ubm as ubm_mod
from gmmspeech import (
    ConfigError,
    DataError,
    DiagGMM,
    SufficientStats,
    UBMConfig,
    em_step,
    train_ubm,
)
from gmmspeech.errors import ConvergenceWarning
from gmmspeech.mixture.ubm import split_components, split_plan

FAST = dict(iterations_per_stage=(2,), final_max_iterations=3, progress=False)


def four_bumps(n=8000, seed=0):
    truth = DiagGMM(
        [0.1, 0.2, 0.3, 0.4],
        [[0.0, 0.0], [6.0, 6.0], [-6.0, 6.0], [6.0, -6.0]],
        [[1.0, 1.0], [0.5, 0.5], [2.0, 1.0], [1.0, 2.0]],
    )
    return truth, truth.sample(n, random_state=seed)[0]


def test_em_step_matches_sklearn():
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    rng = np.random.default_rng(0)
    truth, X = four_bumps(3000)
    k, d = 4, 2
    w0 = np.full(k, 0.25)
    mu0 = rng.normal(size=(k, d)) * 3
    var0 = rng.uniform(1.0, 3.0, size=(k, d))
    ours = em_step(DiagGMM(w0, mu0, var0), X, config=UBMConfig(var_floor_ratio=0.0))
    ref = sklearn_mixture.GaussianMixture(
        n_components=k,
        covariance_type="diag",
        weights_init=w0,
        means_init=mu0,
        precisions_init=1.0 / var0,
        max_iter=1,
        reg_covar=0.0,
        tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X)
    np.testing.assert_allclose(ours.weights, ref.weights_, rtol=1e-5)
    np.testing.assert_allclose(ours.means, ref.means_, rtol=1e-5, atol=1e-5)
    # second-order sums are float32 products accumulated in float64 (DESIGN section 3): the
    # variance of a component far from the data centre loses ~1e-4 relative to cancellation
    np.testing.assert_allclose(ours.variances, ref.covariances_, rtol=3e-4)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_em_never_decreases_likelihood_within_a_stage(seed):
    rng = np.random.default_rng(seed)
    truth = DiagGMM(
        rng.dirichlet(np.ones(6)), rng.normal(size=(6, 3)) * 4, rng.uniform(0.5, 2, (6, 3))
    )
    X = truth.sample(5000, random_state=seed)[0]
    gmm = train_ubm(X, 8, iterations_per_stage=(4,), final_max_iterations=5, progress=False)
    by_stage = {}
    for h in gmm.history_:
        by_stage.setdefault(h["stage"], []).append((h["log_likelihood"], h["n_repairs"]))
    checked = 0
    for stage, seq in by_stage.items():
        for (prev, rep), (cur, _) in zip(seq, seq[1:], strict=False):
            if rep == 0:  # a repair legitimately moves the model
                assert cur >= prev - 1e-5 * abs(prev), (stage, prev, cur)
                checked += 1
    assert checked >= 10


def test_recovers_a_known_mixture():
    truth, X = four_bumps(20_000)
    gmm = train_ubm(X, 4, final_max_iterations=30, progress=False)
    order = [int(np.argmin(((gmm.means - m) ** 2).sum(axis=1))) for m in truth.means]
    assert sorted(order) == [0, 1, 2, 3]
    np.testing.assert_allclose(gmm.means[order], truth.means, atol=0.08)
    np.testing.assert_allclose(gmm.weights[order], truth.weights, atol=0.01)
    np.testing.assert_allclose(gmm.variances[order], truth.variances, rtol=0.08)


@pytest.mark.parametrize("k", [1, 2, 3, 7, 64, 1000])
def test_exact_component_counts(k):
    rng = np.random.default_rng(k)
    X = rng.normal(size=(max(10 * k, 500), 2)).astype(np.float32)
    gmm = train_ubm(X, k, iterations_per_stage=(1,), final_max_iterations=1, progress=False)
    assert gmm.n_components == k
    assert np.isfinite(gmm.means).all() and (gmm.variances > 0).all()
    assert gmm.weights.sum() == pytest.approx(1.0)


def test_split_plan_and_partial_split():
    assert split_plan(1) == [1]
    assert split_plan(3) == [1, 2, 3]
    assert split_plan(1024)[-1] == 1024 and len(split_plan(1024)) == 11
    assert split_plan(1000)[-2:] == [512, 1000]
    gmm = DiagGMM(
        [0.2, 0.5, 0.3], [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], [[1.0, 9.0], [4.0, 1.0], [1.0, 1.0]]
    )
    grown = split_components(gmm, 1, epsilon=0.5)
    # only the heaviest (index 1) splits, along its widest dimension (0, sigma=2)
    np.testing.assert_allclose(grown.weights, [0.2, 0.25, 0.3, 0.25])
    np.testing.assert_allclose(grown.means[1], [0.0, 1.0])
    np.testing.assert_allclose(grown.means[3], [2.0, 1.0])
    np.testing.assert_allclose(grown.variances[3], [4.0, 1.0])
    np.testing.assert_allclose(grown.means[[0, 2]], gmm.means[[0, 2]])


def test_degenerate_data_is_repaired_without_nan(caplog):
    rng = np.random.default_rng(0)
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, -2.0]]), 400, axis=0)
    X = np.vstack([X, [[1e4, -1e4]] * 3])  # a few far outliers
    X = X[rng.permutation(len(X))]
    with caplog.at_level("INFO", logger="gmmspeech.mixture.ubm"):
        gmm = train_ubm(X, 16, iterations_per_stage=(2,), final_max_iterations=2, progress=False)
    assert gmm.n_components == 16
    for arr in (gmm.weights, gmm.means, gmm.variances):
        assert np.isfinite(arr).all()
    assert (gmm.variances > 0).all()
    assert sum(h["n_repairs"] for h in gmm.history_) > 0
    assert "re-seeded" in caplog.text
    assert np.isfinite(gmm.log_likelihood(X)).all()


def test_identical_frames_and_too_few_frames_are_clear_errors():
    with pytest.raises(DataError, match="all 100 frames are identical"):
        train_ubm(np.ones((100, 3)), 2, progress=False)
    X = np.random.default_rng(0).normal(size=(500, 3))
    with pytest.raises(
        DataError, match=r"500 frames are too few for 64 components.*n_components <= 50"
    ):
        train_ubm(X, 64, progress=False)
    bad = X.copy()
    bad[[4, 9, 11]] = np.nan
    with pytest.raises(DataError, match="3 of 500 rows contain NaN"):
        train_ubm(bad, 2, progress=False)
    with pytest.raises(ConfigError, match="did you mean 'tolerance'"):
        train_ubm(X, 2, tolerence=1e-3)
    with pytest.raises(ConfigError, match="n_components: must be >= 1"):
        train_ubm(X, 0)


def test_integer_and_list_inputs():
    rng = np.random.default_rng(1)
    X = rng.integers(-50, 50, size=(3000, 2))
    a = train_ubm(X, 4, **FAST)
    utts = [X[:1000], X[1000:1001], X[1001:]]
    b = train_ubm(utts, 4, **FAST)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-6)
    with pytest.raises(DataError, match=r"X\[1\]: has 3 features but X\[0\] has 2"):
        train_ubm([X, np.zeros((10, 3))], 2, progress=False)


def test_deterministic_and_subsampling():
    _, X = four_bumps(6000)
    a = train_ubm(X, 8, **FAST)
    b = train_ubm(X, 8, **FAST)
    for name in ("weights", "means", "variances"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    sub = train_ubm(X, 8, max_frames=2000, random_state=3, **FAST)
    keep = np.sort(np.random.default_rng(3).choice(6000, size=2000, replace=False))
    ref = train_ubm(X[keep], 8, **FAST)
    np.testing.assert_array_equal(sub.means, ref.means)


def test_checkpoint_resume_gives_identical_model(tmp_path, monkeypatch):
    _, X = four_bumps(4000)
    opts = dict(iterations_per_stage=(2,), final_max_iterations=4, progress=False)
    full = train_ubm(X, 16, **opts)

    real_split = ubm_mod.split_components
    calls = {"n": 0}

    def dying_split(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real_split(*args, **kwargs)

    monkeypatch.setattr(ubm_mod, "split_components", dying_split)
    with pytest.raises(KeyboardInterrupt):
        train_ubm(X, 16, checkpoint_dir=tmp_path, **opts)
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["ubm_stage000_k1.h5", "ubm_stage001_k2.h5", "ubm_stage002_k4.h5"]
    (tmp_path / "ubm_stage003_k8.h5").write_bytes(b"half-written garbage")  # ignored

    monkeypatch.setattr(ubm_mod, "split_components", real_split)
    calls["resumed"] = 0

    def counting_split(*args, **kwargs):
        calls["resumed"] += 1
        return real_split(*args, **kwargs)

    monkeypatch.setattr(ubm_mod, "split_components", counting_split)
    resumed = train_ubm(X, 16, checkpoint_dir=tmp_path, **opts)
    assert calls["resumed"] == 2  # only 4 -> 8 and 8 -> 16 were run again
    for name in ("weights", "means", "variances"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(full, name))
    assert [h["log_likelihood"] for h in resumed.history_] == [
        h["log_likelihood"] for h in full.history_
    ]
    # a different config does not pick up these checkpoints
    other = train_ubm(X, 16, checkpoint_dir=tmp_path, split_epsilon=0.3, **{**opts})
    assert not np.array_equal(other.means, full.means)


def test_convergence_warning_when_capped():
    _, X = four_bumps(3000)
    with pytest.warns(ConvergenceWarning, match="final_max_iterations=1"):
        train_ubm(
            X, 8, iterations_per_stage=(1,), final_max_iterations=1, tolerance=1e-12, progress=False
        )


def _n_distinct(gmm, decimals=5):
    return len(np.unique(np.hstack([gmm.means, gmm.variances]).round(decimals), axis=0))


def test_final_stage_runs_its_planned_iterations():
    _, X = four_bumps(3000)
    # tolerance 1.0 is met at once, so only the planned minimum of 3 can keep the stage going
    gmm = train_ubm(X, 8, iterations_per_stage=(3,), final_max_iterations=5, tolerance=1.0)
    last = max(h["stage"] for h in gmm.history_)
    assert [h["iteration"] for h in gmm.history_ if h["stage"] == last] == [0, 1, 2]
    # and with a tolerance that is never met, planned + final_max_iterations
    with pytest.warns(ConvergenceWarning):
        capped = train_ubm(
            X, 8, iterations_per_stage=(3,), final_max_iterations=2, tolerance=0.0, progress=False
        )
    assert sum(h["stage"] == last for h in capped.history_) == 5


def test_repair_reseeds_from_the_heaviest_and_the_next_split_makes_no_clones():
    # counts 0 and 5 (< min_count 10) are dead; component 2 (count 60) is the heaviest
    d = 2
    zeroth = np.array([0.0, 5.0, 60.0, 35.0])
    mean = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 3.0], [-4.0, 1.0]])
    var = np.array([[1.0, 1.0], [1.0, 1.0], [4.0, 1.0], [1.0, 2.0]])
    stats = SufficientStats(
        zeroth, zeroth[:, None] * mean, zeroth[:, None] * (var + mean**2), np.zeros(d)
    )
    floor = np.full(d, 1e-3)
    w, mu, v, n = ubm_mod.estimate(
        stats, var_floor=floor, min_count=10, min_weight=0.0, split_epsilon=0.5
    )
    assert n == 2 and (w > 0).all() and w.sum() == pytest.approx(1.0)
    # first repair: 2 (weight 60/95) splits along dimension 0 (sigma 2) into 2 and 0;
    # second: 3 (35/95) is now the heaviest, splits along dimension 1 (sigma sqrt 2) into 3, 1
    np.testing.assert_allclose(w, np.array([30.0, 17.5, 30.0, 17.5]) / 95)
    np.testing.assert_allclose(mu[[2, 0]], [[1.0, 3.0], [3.0, 3.0]])
    s = np.sqrt(2.0)
    np.testing.assert_allclose(mu[[3, 1]], [[-4.0, 1.0 - 0.5 * s], [-4.0, 1.0 + 0.5 * s]])
    # the re-seeded pairs have (1 - eps^2) of the parent's variance along the split dimension,
    # which keeps the pair's joint variance: 0.75 * 4 + 1 = 4
    np.testing.assert_allclose(v[[0, 2]], [[3.0, 1.0], [3.0, 1.0]])
    pair = DiagGMM(w[[0, 2]] / w[[0, 2]].sum(), mu[[0, 2]], v[[0, 2]])
    joint = pair.weights @ (pair.variances + pair.means**2) - (pair.weights @ pair.means) ** 2
    np.testing.assert_allclose(joint, [4.0, 1.0])
    grown = split_components(DiagGMM(w, mu, v), 4, epsilon=0.5)
    assert _n_distinct(grown) == 8


def test_far_out_frames_do_not_raise_the_floor_or_collapse_the_ubm():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal((3040, 4))
    X = np.vstack([clean, 1000.0 * rng.standard_normal((3, 4))])
    assert X.var(axis=0).min() > 100  # the plain variance is ruined by 3 frames in 3,043
    with (
        pytest.warns(UserWarning, match=r"about 3 of 3043 frames lie more than 50"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm = train_ubm(X, 64, progress=False)
    # the floor stays 1 % of the bulk's variance, not of the plain variance
    np.testing.assert_allclose(gmm.var_floor, 0.01 * clean.var(axis=0), rtol=0.15)
    assert sum(h["n_repairs"] for h in gmm.history_) > 0  # the far frames kill components
    assert (gmm.weights > 0).all()
    assert _n_distinct(gmm) >= 56


def test_progress_bar_ends_at_the_iterations_run(capsys):
    """The bar's total starts at the cap of the final stage; a run that converges before
    the cap ends at 100 %, its count the EM iterations recorded in history_."""
    _, X = four_bumps(4000)
    gmm = train_ubm(X, 4, iterations_per_stage=(2,), final_max_iterations=40, progress=True)
    n_run = len(gmm.history_)
    assert n_run < 1 + 2 + 2 + 40  # converged before the cap: the case that ended short
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("UBM: 100%")
    assert f" {n_run}/{n_run} " in last
