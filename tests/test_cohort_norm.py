"""Cohort score normalisation through its three doors: the library, ``score --norm``, the stage.

The oracle writes the normalisations out by hand (means and population standard deviations
over explicit Python lists), from cohort score matrices computed one model and one
utterance at a time; it does not call :mod:`gmmspeech.decisions.norm`.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from test_pipeline import CONFIG, make_corpus

from gmmspeech.cli.main import main
from gmmspeech.config.loader import load_config
from gmmspeech.corpus.datadir import DataDir
from gmmspeech.corpus.scorefiles import read_scores
from gmmspeech.decisions.cohort import CohortPart, Either, gmm_scorer, normalize_pairs
from gmmspeech.decisions.scoring import score_matrix
from gmmspeech.features.store import FeatureStore
from gmmspeech.mixture.gmm import DiagGMM
from gmmspeech.mixture.speakermodels import enroll
from gmmspeech.pipeline import Experiment

METHODS = ("z", "t", "zt", "s", "as")
TOP_C = 2


def _score(ubm, models, feats, model_id, utt) -> float:
    # the whole bank against one utterance, as every scoring path does (float32 products
    # round differently for other bank shapes)
    col = score_matrix(ubm, models, feats, [utt], method="topc", top_c=TOP_C)[:, 0]
    return float(col[models.index(model_id)])


def _mean_sd(values: list[float]) -> tuple[float, float]:
    mu = sum(values) / len(values)
    return mu, (sum((v - mu) ** 2 for v in values) / len(values)) ** 0.5


def oracle(method, raw, trials, ubm, models, test_feats, cohort_feats, spk2utt, top_n, adapt):
    """Normalised scores written out from the definitions (Matejka et al. 2017 for AS-norm)."""
    parts = [(ubm, models, spk2utt)]
    return oracle_parts(method, raw, trials, parts, test_feats, cohort_feats, top_n, adapt)


def oracle_parts(method, raw, trials, parts, test_feats, cohort_feats, top_n, adapt):
    """:func:`oracle` with the cohort in parts: ``(ubm, models, spk2utt)`` each, the part's
    cohort scored with its UBM and the trials' models as enrolled from it; ZT-norm's cohort
    models are Z-normalised with the utterances of their own part."""
    cparts = [
        (u, m, spk2utt, enroll(u, cohort_feats, spk2utt, relevance_factor=16.0, adapt=adapt))
        for u, m, spk2utt in parts
    ]

    def z_side(m: str, keep: int | None = None) -> tuple[float, float]:
        vals = sorted(
            (_score(u, ms, cohort_feats, m, x) for u, ms, s2u, _ in cparts
             for utts in s2u.values() for x in utts),
            reverse=True,
        )  # fmt: skip
        return _mean_sd(vals[:keep] if keep else vals)

    def t_values(t: str) -> dict[str, tuple[float, float]]:
        out = {}
        for u, _, s2u, cm in cparts:
            for c in s2u:
                v = _score(u, cm, test_feats, c, t)
                own = [_score(u, cm, cohort_feats, c, x) for spk, utts in s2u.items()
                       if spk != c for x in utts]  # fmt: skip
                out[c] = (v, *_mean_sd(own))
        return out

    out = []
    for (m, t), s in zip(trials, raw, strict=True):
        mu_z, sd_z = z_side(m, top_n if method == "as" else None)
        tv = t_values(t)
        if method == "zt":
            # every cohort model's own Z-norm statistics, without its own speaker's utterances
            znormed = [(v - mu_c) / sd_c for v, mu_c, sd_c in tv.values()]
            mu_t, sd_t = _mean_sd(znormed)
            out.append(((s - mu_z) / sd_z - mu_t) / sd_t)
            continue
        tvals = sorted((v[0] for v in tv.values()), reverse=True)
        mu_t, sd_t = _mean_sd(tvals[:top_n] if method == "as" else tvals)
        z, tn = (s - mu_z) / sd_z, (s - mu_t) / sd_t
        out.append({"z": z, "t": tn, "s": 0.5 * (z + tn), "as": 0.5 * (z + tn)}[method])
    return np.array(out)


def cohort_normalize(method, raw, model_ids, test_ids, *, ubm, models, test_features,
                     cohort_features, cohort_spk2utt, relevance_factor, adapt, score_method,
                     top_c, top_n=200, enroll_utts=None, test_spk=None):  # fmt: skip
    """One cohort part scored by the GMM scorer: the library's door."""
    scorer = gmm_scorer(
        ubm, models, Either(test_features, cohort_features), relevance_factor=relevance_factor,
        adapt=adapt, method=score_method, top_c=top_c,
    )  # fmt: skip
    keys = list(zip(model_ids, test_ids, strict=True))
    part = CohortPart(cohort_spk2utt, scorer)
    return normalize_pairs(
        method, raw, keys, [part], top_n=top_n, enroll_utts=enroll_utts, test_spk=test_spk
    )


def heldout_ubm_oracle(ubm: DiagGMM, frames: np.ndarray) -> DiagGMM:
    """One EM step from ``ubm`` on ``frames`` (n, D), written out: exact posteriors, then
    weights N_k / N, means F_k / N_k, variances S_k / N_k - mean^2 floored."""
    x = frames.astype(np.float64)
    logp = np.stack(
        [np.log(w) + multivariate_normal.logpdf(x, m, np.diag(v))
         for w, m, v in zip(ubm.weights, ubm.means, ubm.variances, strict=True)],
        axis=1,
    )  # fmt: skip
    post = np.exp(logp - logsumexp(logp, axis=1, keepdims=True))
    n = post.sum(axis=0)
    assert n.min() >= 10.0  # no dead component: the plain M-step applies
    means = (post.T @ x) / n[:, None]
    var = (post.T @ (x * x)) / n[:, None] - means**2
    floor = ubm.var_floor if ubm.var_floor is not None else ubm.variances.min(axis=0)
    return DiagGMM(n / n.sum(), means, np.maximum(var, floor), var_floor=ubm.var_floor)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("cohort")
    rng = np.random.default_rng(3)
    k, d = 8, 3
    ubm = DiagGMM(np.full(k, 1 / k), rng.normal(0, 2, (k, d)), np.ones((k, d)))
    feats: dict[str, np.ndarray] = {}

    def utt(name: str, off: np.ndarray, n: int) -> None:
        feats[name] = (ubm.sample(n, rng)[0] + off).astype(np.float32)

    enrol = {f"spk{i}": [f"spk{i}-e{j}" for j in range(2)] for i in range(3)}
    cohort = {f"coh{i}": [f"coh{i}-u{j}" for j in range(3)] for i in range(4)}
    for utts in {**enrol, **cohort}.values():
        off = rng.normal(0, 1.0, d)
        for u in utts:
            utt(u, off, 120)
    tests = [f"x{j}" for j in range(5)]
    for u in tests:
        utt(u, rng.normal(0, 1.0, d), 90)
    models = enroll(ubm, feats, enrol)
    # trials in an order where a trial's model position differs from its test position
    trials = [(m, t) for t in reversed(tests) for m in sorted(enrol)]
    raw = score_matrix(ubm, models, feats, tests, method="topc", top_c=TOP_C)
    raw_trials = np.array([raw[sorted(enrol).index(m), tests.index(t)] for m, t in trials])
    ubm.save(tmp / "ubm.h5")
    models.save(tmp / "models.h5")
    with h5py.File(tmp / "feats.h5", "w") as f:
        for u, x in feats.items():
            f.create_dataset(u, data=x)
    (tmp / "trials").write_text("".join(f"{m} {t}\n" for m, t in trials))
    (tmp / "cohort").mkdir()
    (tmp / "cohort/utt2spk").write_text(
        "".join(f"{u} {spk}\n" for spk, utts in cohort.items() for u in utts)
    )
    return {
        "tmp": tmp,
        "ubm": ubm,
        "models": models,
        "feats": feats,
        "cohort": cohort,
        "trials": trials,
        "raw": raw_trials,
    }


@pytest.mark.parametrize("method", METHODS)
def test_library_and_score_command_match_the_definitions(world: dict, method: str) -> None:
    w = world
    want = oracle(
        method, w["raw"], w["trials"], w["ubm"], w["models"], w["feats"], w["feats"],
        w["cohort"], top_n=2, adapt="m",
    )  # fmt: skip
    got = cohort_normalize(
        method,
        w["raw"],
        [m for m, _ in w["trials"]],
        [t for _, t in w["trials"]],
        ubm=w["ubm"],
        models=w["models"],
        test_features=w["feats"],
        cohort_features=w["feats"],
        cohort_spk2utt=w["cohort"],
        relevance_factor=16.0,
        adapt="m",
        score_method="topc",
        top_c=TOP_C,
        top_n=2,
    )
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    tmp = w["tmp"]
    out = tmp / f"scores_{method}.txt"
    args = [str(tmp / n) for n in ("ubm.h5", "models.h5", "feats.h5", "trials")]
    rc = main(
        ["score", *args, str(out), "--method", "topc", "--top-c", str(TOP_C), "--norm", method,
         "--cohort-dir", str(tmp / "cohort"), "--top-n", "2", "--no-progress"]
    )  # fmt: skip
    assert rc == 0
    written = read_scores(out)
    cli = np.array([written[m, t] for m, t in w["trials"]])
    np.testing.assert_allclose(cli, want, rtol=1e-7, atol=1e-7)


def test_normalize_stage_matches_the_definitions(tmp_path: Path) -> None:
    """The stage scores each half of the cohort with the UBM re-estimated without it (one EM
    step on the other background speakers) and the target models enrolled again from it."""
    make_corpus(tmp_path / "corpus")
    (tmp_path / "exp.yaml").write_text(CONFIG.format(extra="  top_n: 3\n"), encoding="utf-8")
    out = tmp_path / "exp"
    Experiment(load_config(tmp_path / "exp.yaml"), out).run()
    ubm = DiagGMM.load(out / "ubm/ubm.h5")
    spk2utt = DataDir.read(out / "data/background", check_audio=False).spk2utt
    enrolment = DataDir.read(out / "data/enroll", check_audio=False).enrolment
    raw_scores = read_scores(out / "scores/raw.txt")
    trials = list(raw_scores)
    raw = np.array([raw_scores[k] for k in trials])
    speakers = sorted(spk2utt)
    halves = [speakers[0::2], speakers[1::2]]  # dealt in turn, sorted ids
    with (
        FeatureStore(out / "features/background.h5") as cf,
        FeatureStore(out / "features/test.h5") as tf,
        FeatureStore(out / "features/enroll.h5") as ef,
    ):
        parts = []
        for half in halves:
            others = np.concatenate(
                [cf[u] for spk in speakers if spk not in half for u in sorted(spk2utt[spk])]
            )
            ubm_g = heldout_ubm_oracle(ubm, others)
            models_g = enroll(ubm_g, ef, {m: enrolment[m] for m in sorted(enrolment)})
            parts.append((ubm_g, models_g, {spk: sorted(spk2utt[spk]) for spk in half}))
        for method in METHODS:
            cfg = load_config(tmp_path / "exp.yaml", [f"scoring.norm={method}"])
            outcomes = Experiment(cfg, out).run()
            assert [o.status for o in outcomes] == ["skipped"] * 5 + ["ran"] * 4
            want = oracle_parts(method, raw, trials, parts, tf, cf, top_n=3, adapt="m")
            written = read_scores(out / "scores/scores.txt")
            got = np.array([written[k] for k in trials])
            # the held-out UBM's E-step runs in float32 (the oracle in float64), and AS-norm
            # divides by the spread of only 3 scores: 1e-3 (a UBM that saw the cohort: > 1e-2)
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3, err_msg=method)


def test_cohort_models_are_enrolled_on_enroll_utts_and_own_speaker_left_out(world: dict) -> None:
    """Cohort models on their first ``enroll_utts`` utterances; same-speaker entries dropped."""
    w = world
    first = {spk: utts[:1] for spk, utts in w["cohort"].items()}
    # T-norm written out with cohort models enrolled on one utterance each
    want = oracle("t", w["raw"], w["trials"], w["ubm"], w["models"], w["feats"], w["feats"],
                  first, top_n=2, adapt="m")  # fmt: skip
    kw = dict(
        ubm=w["ubm"], models=w["models"], test_features=w["feats"], cohort_features=w["feats"],
        cohort_spk2utt=w["cohort"], relevance_factor=16.0, adapt="m", score_method="topc",
        top_c=TOP_C,
    )  # fmt: skip
    models = [m for m, _ in w["trials"]]
    tests = [t for _, t in w["trials"]]
    got = cohort_normalize("t", w["raw"], models, tests, enroll_utts=1, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    # a test utterance said to be coh0's: T-norm without coh0's cohort model, by hand
    test_spk = {"x0": "coh0"}
    got = cohort_normalize("t", w["raw"], models, tests, test_spk=test_spk, **kw)
    cmodels = enroll(w["ubm"], w["feats"], w["cohort"], relevance_factor=16.0)
    for i, (_, t) in enumerate(w["trials"]):
        vals = [_score(w["ubm"], cmodels, w["feats"], c, t) for c in w["cohort"]
                if test_spk.get(t) != c]  # fmt: skip
        mu, sd = _mean_sd(vals)
        assert got[i] == pytest.approx((w["raw"][i] - mu) / sd, rel=1e-9, abs=1e-9)


def test_snorm_centres_nontarget_scores_near_zero() -> None:
    """Scores = model offset + test offset + noise, cohorts drawn like the non-targets:
    S-norm removes both offsets, so non-target scores centre on 0 with unit spread."""
    from gmmspeech.decisions.norm import snorm

    rng = np.random.default_rng(5)
    n_m, n_t, n_c = 200, 200, 300
    a, b = rng.normal(3.0, 2.0, n_m), rng.normal(-1.0, 1.5, n_t)  # large per-side offsets
    mi, ti = np.meshgrid(np.arange(n_m), np.arange(n_t), indexing="ij")
    mi, ti = mi.ravel(), ti.ravel()
    scores = a[mi] + b[ti] + rng.normal(0.0, 1.0, mi.size)
    # the Z cohort: each model against impostor utterances whose offsets are drawn like b;
    # the T cohort: each test utterance against impostor models drawn like a
    model_cohort = a[:, None] + rng.normal(-1.0, 1.5, (1, n_c)) + rng.normal(0, 1, (n_m, n_c))
    test_cohort = b[:, None] + rng.normal(3.0, 2.0, (1, n_c)) + rng.normal(0, 1, (n_t, n_c))
    out = snorm(scores, model_cohort, test_cohort, mi, ti)
    raw_mean = float(scores.mean())
    assert abs(raw_mean) > 1.0  # the raw non-targets are far from 0
    # the expected mean from the definitions: Z side (b_t - E c) / sd_z, T side
    # (a_m - E d) / sd_t with the drawn offsets, 0 up to their sampling error
    zt = ((b.mean() + 1.0) / np.sqrt(1.5**2 + 1) + (a.mean() - 3.0) / np.sqrt(2.0**2 + 1)) / 2
    assert abs(zt) < 0.15
    assert float(out.mean()) == pytest.approx(zt, abs=0.1)
    assert abs(float(out.mean())) < 0.2
    assert float(out.std()) == pytest.approx(1.0, abs=0.25)
