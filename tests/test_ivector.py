"""Baum-Welch statistics, the total-variability model and i-vectors, against oracles."""

from __future__ import annotations

import json

import numpy as np
import pytest
from oracles import component_log_likelihoods, posteriors
from scipy import linalg, stats

import gmmspeech.ivector.stats as stats_module
from gmmspeech import (
    DataError,
    DiagGMM,
    FeatureConfig,
    LocalEngine,
    ModelMismatchError,
    ProcessEngine,
)
from gmmspeech.benchmarks.tv import PHASES
from gmmspeech.cli.main import main
from gmmspeech.features.store import write_store
from gmmspeech.ivector.stats import StatsFile, StatsSet, compute_stats, load_task, utterance_stats
from gmmspeech.ivector.tv import TotalVariability


def _ubm(k=8, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return DiagGMM(
        rng.dirichlet(np.full(k, 5.0)), rng.normal(0, 2, (k, d)), rng.uniform(0.5, 2, (k, d))
    )


def _utterances(ubm, n=30, seed=1):
    rng = np.random.default_rng(seed)
    return [ubm.sample(int(rng.integers(20, 80)), rng)[0].astype(np.float32) for _ in range(n)]


def _tv_data(k=8, d=3, r=2, n=3000, seed=5):
    """Statistics drawn from a known TV model: F_u = N_u T w_u + noise of covariance N_u S."""
    rng = np.random.default_rng(seed)
    ubm = DiagGMM(np.full(k, 1.0 / k), rng.normal(0, 2, (k, d)), rng.uniform(0.5, 2, (k, d)))
    t_true = rng.normal(0, 1, (k, d, r)) * np.sqrt(ubm.variances)[:, :, None]
    zeroth = rng.gamma(2.0, 20.0, (n, k))
    w = rng.standard_normal((n, r))
    first = zeroth[:, :, None] * np.einsum("kdr,nr->nkd", t_true, w)
    first += rng.standard_normal((n, k, d)) * np.sqrt(zeroth[:, :, None] * ubm.variances)
    return StatsSet(zeroth, first, ubm), t_true


def test_utterance_stats_equal_a_loop_over_scipy_posteriors():
    ubm = _ubm()
    x = _utterances(ubm, 1)[0]
    g = posteriors(x.astype(np.float64), ubm.weights, ubm.means, ubm.variances)
    s = utterance_stats(ubm, x)
    for k in range(ubm.n_components):
        assert s.zeroth[k] == pytest.approx(g[:, k].sum(), rel=1e-5, abs=1e-9)
        want = (g[:, k, None] * (x - ubm.means[k])).sum(axis=0)
        np.testing.assert_allclose(s.first[k], want, rtol=1e-4, atol=1e-6)
    assert s.zeroth.dtype == np.float64 and s.first.dtype == np.float64


def test_top_n_stats_renormalise_each_frames_best_posteriors():
    ubm = _ubm(k=16)
    x = _utterances(ubm, 1)[0]
    c = component_log_likelihoods(x.astype(np.float64), ubm.weights, ubm.means, ubm.variances)
    n_want = np.zeros(16)
    f_want = np.zeros((16, 3))
    for t in range(len(x)):
        best = np.argsort(-c[t])[:3]
        p = np.exp(c[t, best] - c[t, best].max())
        p /= p.sum()
        for k, pk in zip(best, p, strict=True):
            n_want[k] += pk
            f_want[k] += pk * (x[t] - ubm.means[k])
    s = utterance_stats(ubm, x, top_n=3)
    np.testing.assert_allclose(s.zeroth, n_want, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(s.first, f_want, rtol=1e-4, atol=1e-6)
    assert s.zeroth.sum() == pytest.approx(len(x))


def test_ivectors_equal_the_naive_closed_form_posterior_mean():
    ubm = _ubm()
    st = [utterance_stats(ubm, x) for x in _utterances(ubm, 25)]
    tv = TotalVariability(rank=5, n_iter=2, batch_size=7).fit(st)
    got = tv.transform(st)
    assert got.shape == (25, 5)
    t, s = tv.T_, ubm.variances
    for u, one in enumerate(st):
        lmat = np.eye(5)
        b = np.zeros(5)
        for k in range(ubm.n_components):
            lmat += one.zeroth[k] * t[k].T @ np.diag(1.0 / s[k]) @ t[k]
            b += t[k].T @ np.diag(1.0 / s[k]) @ one.first[k]
        want = np.linalg.solve(lmat, b)
        np.testing.assert_allclose(got[u], want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


def _marginal_loglik(src, t):
    """sum_u log N(F_u; 0, diag(N_u S) + M_u M_u'), M_u = N_u T (scipy), the exact likelihood."""
    var = src.ubm.variances.ravel()
    total = 0.0
    for n, f in zip(src.zeroth, src.first, strict=True):
        nn = np.repeat(n, src.ubm.n_features)
        m = nn[:, None] * t.reshape(len(var), -1)
        total += stats.multivariate_normal.logpdf(f.ravel(), cov=np.diag(nn * var) + m @ m.T)
    return total


@pytest.mark.parametrize("min_div", [True, False])
def test_tv_auxiliary_never_decreases_and_is_the_likelihood(min_div):
    src, _ = _tv_data(n=200, r=3)
    tv = TotalVariability(rank=3, n_iter=8, min_divergence=min_div, batch_size=64).fit(src)
    aux = [h["auxiliary"] for h in tv.history_]
    assert all(b >= a - 1e-9 * abs(a) for a, b in zip(aux, aux[1:], strict=False))
    assert aux[-1] > aux[0]
    # its changes are those of the exact marginal likelihood (the rest is a constant)
    one = TotalVariability(rank=3, n_iter=1, min_divergence=min_div, batch_size=64).fit(src)
    two = TotalVariability(rank=3, n_iter=2, min_divergence=min_div, batch_size=64).fit(src)
    exact = _marginal_loglik(src, one.T_) - _marginal_loglik(src, one._init(src.ubm))
    assert two.history_[1]["auxiliary"] - two.history_[0]["auxiliary"] == pytest.approx(
        exact, rel=1e-7
    )


def test_learned_subspace_matches_the_true_one():
    src, t_true = _tv_data()
    tv = TotalVariability(rank=2, n_iter=30, batch_size=500).fit(src)
    angles = linalg.subspace_angles(t_true.reshape(-1, 2), tv.T_.reshape(-1, 2))
    # threshold 0.01 rad (0.57 degrees); 3000 utterances of ~40 frames per component reach
    # about 0.2 degrees, and a random 2-D subspace of R^24 is tens of degrees away
    assert np.max(angles) < 0.01, np.degrees(angles)


def test_stats_files_round_trip_and_stream_the_same_model(tmp_path):
    ubm = _ubm()
    st = compute_stats(ubm, {f"u{i}": x for i, x in enumerate(_utterances(ubm, 12))})
    st.save(tmp_path / "stats.h5")
    back = StatsSet.load(tmp_path / "stats.h5", ubm)
    np.testing.assert_array_equal(back.first, st.first)
    assert back.utt_ids == st.utt_ids
    a = TotalVariability(rank=3, n_iter=3, batch_size=5).fit(st)
    b = TotalVariability(rank=3, n_iter=3, batch_size=5).fit(StatsFile(tmp_path / "stats.h5"))
    np.testing.assert_allclose(b.T_, a.T_, rtol=1e-12)
    with pytest.raises(ModelMismatchError, match="UBM"):
        StatsSet.load(tmp_path / "stats.h5", _ubm(seed=9))
    streamed = compute_stats(ubm, list(_utterances(ubm, 12)), batch_size=5, out=tmp_path / "s.h5")
    assert isinstance(streamed, StatsFile) and len(streamed) == 12
    np.testing.assert_array_equal(StatsSet.load(tmp_path / "s.h5").first, st.first)


def test_stats_file_select_reads_the_named_rows(tmp_path):
    ubm = _ubm()
    feats = {f"u{i}": x for i, x in enumerate(_utterances(ubm, 12))}
    st = compute_stats(ubm, feats, batch_size=5, out=tmp_path / "s.h5")
    assert isinstance(st, StatsFile) and st.utt_ids == list(feats)
    pick = ["u9", "u2", "u3", "u7", "u11"]
    sub = st.select(pick)
    got = [load_task(t) for t in sub.tasks(2)]
    first = np.concatenate([f for _, f in got])
    want = np.stack(
        [utterance_stats(ubm, feats[u]).first for u in sorted(pick, key=lambda u: int(u[1:]))]
    )
    np.testing.assert_allclose(first, want, rtol=1e-12)
    a = TotalVariability(rank=3, n_iter=2, batch_size=2).fit(sub)
    b = TotalVariability(rank=3, n_iter=2, batch_size=2).fit(
        [utterance_stats(ubm, feats[u]) for u in ("u2", "u3", "u7", "u9", "u11")]
    )
    np.testing.assert_allclose(a.T_, b.T_, rtol=1e-10)
    with pytest.raises(DataError, match="no statistics of utterance 'zz'"):
        st.select(["u1", "zz"])


def test_tv_model_file_records_and_checks_its_ubm(tmp_path):
    ubm = _ubm()
    st = [utterance_stats(ubm, x) for x in _utterances(ubm, 12)]
    tv = TotalVariability(rank=3, n_iter=2).fit(st)
    tv.save(tmp_path / "tv.h5")
    back = TotalVariability.load(tmp_path / "tv.h5", ubm)
    np.testing.assert_array_equal(back.T_, tv.T_)
    np.testing.assert_allclose(back.transform(st), tv.transform(st), rtol=1e-12)
    other = _ubm(seed=3)
    with pytest.raises(ModelMismatchError, match="UBM"):
        TotalVariability.load(tmp_path / "tv.h5", other)
    with pytest.raises(ModelMismatchError, match="recompute the statistics"):
        back.transform([utterance_stats(other, x) for x in _utterances(other, 2)])


def test_feature_config_mismatch_is_refused(tmp_path):
    ubm = _ubm()
    ubm.feature_config = {"n_mfcc": 20, "deltas": True}
    write_store(tmp_path / "f.h5", {"a": _utterances(ubm, 1)[0]}, FeatureConfig(n_mfcc=13))
    with pytest.raises(ModelMismatchError, match="n_mfcc"):
        compute_stats(ubm, tmp_path / "f.h5")


def test_same_stats_and_model_on_local_and_process_engines(tmp_path):
    ubm = _ubm()
    utts = {f"u{i:02d}": x for i, x in enumerate(_utterances(ubm, 20))}
    write_store(tmp_path / "f.h5", utts)
    local = compute_stats(ubm, tmp_path / "f.h5", batch_size=6, top_n=4)
    with ProcessEngine(2) as eng:
        proc = compute_stats(ubm, tmp_path / "f.h5", batch_size=6, top_n=4, engine=eng)
        a = TotalVariability(rank=3, n_iter=3, batch_size=6).fit(local, engine=LocalEngine())
        b = TotalVariability(rank=3, n_iter=3, batch_size=6).fit(proc, engine=eng)
    assert proc.utt_ids == local.utt_ids == sorted(utts)
    np.testing.assert_allclose(proc.first, local.first, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.T_, a.T_, rtol=1e-10, atol=1e-12)
    one = utterance_stats(ubm, utts["u03"], top_n=4)
    np.testing.assert_allclose(local.first[3], one.first, rtol=1e-12)


def test_statistics_tasks_open_no_store_index(tmp_path, monkeypatch):
    """A task reads its batch's datasets only: opening a FeatureStore reads the index of
    every utterance, which per task made the stage quadratic in the store's size (20,000
    utterances of 20 frames, K=8: 130.7 s before, 6.6 s after, in one run)."""
    ubm = _ubm()
    utts = {f"u{i:02d}": x for i, x in enumerate(_utterances(ubm, 12))}
    write_store(tmp_path / "f.h5", utts)
    opened = []

    class Counting(stats_module.FeatureStore):
        def __init__(self, *args, **kwargs):
            opened.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(stats_module, "FeatureStore", Counting)
    st = compute_stats(ubm, str(tmp_path / "f.h5"), batch_size=5)
    assert len(opened) == 1  # the driver's, for the ids; none of the 3 tasks'
    one = utterance_stats(ubm, utts["u07"])
    np.testing.assert_allclose(st.first[7], one.first, rtol=1e-12)


@pytest.mark.parametrize("min_div", [True, False])
def test_one_iteration_equals_a_naive_em_step(min_div):
    src, _ = _tv_data(n=40, r=3)
    tv = TotalVariability(rank=3, n_iter=1, min_divergence=min_div, batch_size=16).fit(src)
    t = tv._init(src.ubm)
    k, d, r = t.shape
    s = src.ubm.variances
    c = np.zeros((k, r, r))
    a = np.zeros((k, d, r))
    m = np.zeros((r, r))
    for n, f in zip(src.zeroth, src.first, strict=True):
        lmat = np.eye(r) + sum(n[j] * t[j].T @ np.diag(1 / s[j]) @ t[j] for j in range(k))
        b = sum(t[j].T @ (f[j] / s[j]) for j in range(k))
        w = np.linalg.solve(lmat, b)
        ww = np.linalg.inv(lmat) + np.outer(w, w)
        m += ww
        for j in range(k):
            c[j] += n[j] * ww
            a[j] += np.outer(f[j], w)
    want = np.stack([a[j] @ np.linalg.inv(c[j]) for j in range(k)])
    if min_div:  # w ~ N(0, M) re-expressed as w = G w', G G' = M, w' ~ N(0, I)
        want = want @ np.linalg.cholesky(m / len(src))
    np.testing.assert_allclose(tv.T_, want, rtol=1e-8, atol=1e-10 * np.abs(want).max())


def test_bench_tv_small_agrees_with_the_per_utterance_implementation(tmp_path, capsys):
    out = tmp_path / "tv.json"
    argv = ["bench", "tv", "--k", "16", "--d", "4", "--rank", "6", "--n", "30", "--frames", "50"]
    assert main([*argv, "--batch-size", "8", "--naive-utts", "30", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    # the batched iteration and the per-utterance one give the same i-vectors and model
    assert data["ivector_max_relative_difference_vs_naive"] < 1e-9
    assert data["model_max_relative_difference_vs_naive"] < 1e-8
    assert tuple(data["split_seconds"]) == PHASES
    assert data["peak_rss_mib"] > 10 and data["gemm_gflops"] > 0.01
    assert "faster" in capsys.readouterr().out


def test_a_component_without_data_keeps_its_columns_and_nan_is_refused():
    src, _ = _tv_data(n=50, r=2)
    src.zeroth[:, 0] = 0.0
    src.first[:, 0] = 0.0
    tv = TotalVariability(rank=2, n_iter=2, min_divergence=False).fit(src)
    assert np.isfinite(tv.T_).all()
    np.testing.assert_array_equal(tv.T_[0], tv._init(src.ubm)[0])
    src.first[3, 2, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        TotalVariability(rank=2, n_iter=1).fit(src)
