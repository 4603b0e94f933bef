"""LLR scoring (exact, top-C, linear) against naive float64 references; trial lists; files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from oracles import component_log_likelihoods, log_likelihood, posteriors
from scipy.special import logsumexp

from gmmspeech import DataError, DiagGMM, ModelMismatchError, SpeakerModels, map_adapt
from gmmspeech.corpus.trials import read_trials
from gmmspeech.decisions.scoring import llr, score_matrix, score_trials


def _ubm(k: int = 12, d: int = 4, seed: int = 0) -> DiagGMM:
    rng = np.random.default_rng(seed)
    return DiagGMM(
        rng.dirichlet(np.ones(k) * 2), rng.normal(0, 1.5, (k, d)), rng.uniform(0.5, 2.0, (k, d))
    )


def _params(g: DiagGMM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return g.weights, g.means, g.variances


def _naive_topc(ubm: DiagGMM, spk: DiagGMM, x: np.ndarray, c: int) -> float:
    """Reynolds top-C written out: per frame, C best UBM components, both sums over them."""
    lu = component_log_likelihoods(x, *_params(ubm))
    ls = component_log_likelihoods(x, *_params(spk))
    total = 0.0
    for t in range(x.shape[0]):
        best = np.argsort(-lu[t])[:c]
        total += logsumexp(ls[t, best]) - logsumexp(lu[t, best])
    return total / x.shape[0]


def _naive_linear(ubm: DiagGMM, spk: DiagGMM, x: np.ndarray) -> float:
    """(1/T) sum_k (mu'_k - mu_k)^T Sigma_k^-1 (F_k - N_k mu_k), Glembek et al. (2009)."""
    g = posteriors(x, *_params(ubm))
    n = g.sum(0)
    f = g.T @ x
    return float(
        np.sum((spk.means - ubm.means) / ubm.variances * (f - n[:, None] * ubm.means)) / x.shape[0]
    )


@pytest.mark.parametrize("adapt", ["m", "mw", "mv", "mwv"])
def test_exact_and_topc_match_naive(adapt: str) -> None:
    ubm = _ubm()
    spk = map_adapt(ubm, ubm.sample(300, 1)[0] + 0.4, adapt=adapt, relevance_factor=4.0)
    x = ubm.sample(150, 2)[0].astype(np.float32).astype(np.float64)
    exact_ref = float(np.mean(log_likelihood(x, *_params(spk)) - log_likelihood(x, *_params(ubm))))
    assert llr(ubm, spk, x) == pytest.approx(exact_ref, abs=2e-5)
    # top-C with C = K equals exact
    assert llr(ubm, spk, x, top_c=ubm.n_components) == pytest.approx(exact_ref, abs=2e-5)
    for c in (1, 3):
        assert llr(ubm, spk, x, top_c=c) == pytest.approx(_naive_topc(ubm, spk, x, c), abs=2e-5)


def test_linear_matches_formula() -> None:
    ubm = _ubm()
    spk = map_adapt(ubm, ubm.sample(300, 1)[0] + 0.4, relevance_factor=4.0)
    x = ubm.sample(120, 3)[0].astype(np.float32).astype(np.float64)
    assert llr(ubm, spk, x, method="linear") == pytest.approx(_naive_linear(ubm, spk, x), abs=1e-4)


def test_exact_with_foreign_model_size() -> None:
    ubm = _ubm()
    other = _ubm(k=3, seed=5)
    x = ubm.sample(50, 3)[0].astype(np.float32).astype(np.float64)
    ref = float(np.mean(log_likelihood(x, *_params(other)) - log_likelihood(x, *_params(ubm))))
    assert llr(ubm, other, x) == pytest.approx(ref, abs=1e-4)


def _setup(n_models: int = 5, n_utts: int = 7, adapt: str = "m"):
    ubm = _ubm()
    rng = np.random.default_rng(9)
    spk_data = {
        f"spk{i}": ubm.sample(200, 10 + i)[0] + rng.normal(0, 0.5, 4) for i in range(n_models)
    }
    models = [map_adapt(ubm, x, adapt=adapt) for x in spk_data.values()]
    ids = list(spk_data)
    sm = SpeakerModels(
        ubm,
        ids,
        means=np.stack([m.means for m in models]) if "m" in adapt else None,
        weights=np.stack([m.weights for m in models]) if "w" in adapt else None,
        variances=np.stack([m.variances for m in models]) if "v" in adapt else None,
    )
    feats = {f"utt{j}": ubm.sample(60 + j, 100 + j)[0].astype(np.float32) for j in range(n_utts)}
    return ubm, dict(zip(ids, models, strict=True)), sm, feats


@pytest.mark.parametrize("method", ["exact", "topc", "linear"])
@pytest.mark.parametrize("adapt", ["m", "mwv"])
def test_score_trials_equals_per_trial_llr(method: str, adapt: str) -> None:
    ubm, models, sm, feats = _setup(adapt=adapt)
    rng = np.random.default_rng(0)
    trials = [(m, u, bool(rng.integers(2))) for m in models for u in feats if rng.random() < 0.6]
    got = score_trials(ubm, sm, feats, trials, method=method, top_c=3)
    want = [
        llr(ubm, models[m], feats[u], method=method, top_c=3 if method == "topc" else None)
        for m, u, _ in trials
    ]
    np.testing.assert_allclose(got, want, atol=1e-5)
    mat = score_matrix(ubm, sm, feats, list(feats), method=method, top_c=3)
    assert mat.shape == (len(models), len(feats))
    ids = list(models)
    for (m, u, _), s in zip(trials, got, strict=True):
        assert mat[ids.index(m), list(feats).index(u)] == pytest.approx(s, abs=1e-6)


def test_small_memory_budget_gives_same_scores() -> None:
    ubm, models, sm, feats = _setup(adapt="mwv")
    trials = [(m, u) for m in models for u in feats]
    for method in ("exact", "topc"):
        a = score_trials(ubm, sm, feats, trials, method=method, top_c=3)
        b = score_trials(ubm, sm, feats, trials, method=method, top_c=3, memory_budget=50)
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_unknown_model_or_utterance_names_it_and_its_line(tmp_path: Path) -> None:
    ubm, models, sm, feats = _setup()
    p = tmp_path / "trials"
    p.write_text("spk0 utt0 target\nspk1 utt1 nontarget\nnobody utt2 target\n")
    with pytest.raises(DataError, match=r"trials:3.*'nobody'"):
        score_trials(ubm, sm, feats, read_trials(p))
    p.write_text("spk0 utt0 target\n\nspk1 ghost nontarget\n")
    with pytest.raises(DataError, match=r"trials:3.*'ghost'"):
        score_trials(ubm, sm, feats, read_trials(p))


def test_feature_dimension_mismatch() -> None:
    ubm, models, sm, feats = _setup()
    feats["utt0"] = np.zeros((20, 5), dtype=np.float32)
    with pytest.raises(ModelMismatchError, match="utt0"):
        score_trials(ubm, sm, feats, [("spk0", "utt0")])
    with pytest.raises(ModelMismatchError):
        llr(ubm, models["spk0"], np.zeros((20, 5)))
