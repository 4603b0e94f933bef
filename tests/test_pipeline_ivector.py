"""gmmspeech run with system: ivector: the stage table, results, back-end scores, bad configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_ivector_norm import _cos, _mean_std
from test_pipeline import CONFIG, SR, make_corpus, voice

from gmmspeech.cli.main import main
from gmmspeech.config.loader import load_config
from gmmspeech.corpus.scorefiles import read_scores
from gmmspeech.decisions.heldout import load_heldout
from gmmspeech.errors import ConfigError
from gmmspeech.features.store import FeatureStore
from gmmspeech.ivector.stats import StatsFile, compute_stats
from gmmspeech.ivector.tv import IVectorSet, TotalVariability
from gmmspeech.mixture.gmm import DiagGMM
from gmmspeech.pipeline import Experiment

IVECTOR = """\
system: ivector
ivector: {{rank: 4, n_iter: 3}}
backend: {{lda_dim: 2, scorer: plda}}
{extra}"""

STAGE_NAMES = [
    "prepare", "extract", "ubm", "stats", "tv", "caltv", "ivectors", "backend", "score",
    "normalize", "calibrate", "evaluate", "report",
]  # fmt: skip


def write_config(root: Path, extra: str = "") -> Path:
    p = root / "exp.yaml"
    p.write_text(CONFIG.format(extra=IVECTOR.format(extra=extra)), encoding="utf-8")
    return p


def test_run_ivector_end_to_end(tmp_path: Path, capsys) -> None:
    # 10 background speakers of 2 utterances: each calibration half (5 speakers, 10
    # i-vectors of rank 4) has a full-rank within-speaker covariance
    make_corpus(tmp_path / "corpus", n_bg=10)
    cfg = write_config(tmp_path)
    out = tmp_path / "exp"
    assert main(["run", str(cfg), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for i, name in enumerate(STAGE_NAMES, 1):
        assert f"stage {i} {name}: done" in printed
    res = json.loads((out / "results.json").read_text())
    assert (res["n_trials"], res["n_target"], res["n_models"]) == (32, 8, 4)
    assert 0.0 <= res["eer"] <= 0.5 and "calibrated" in res
    # i-vectors of every set, rank 4, one per utterance with features
    for name, n in (("background", 20), ("enroll", 8), ("test", 8)):
        iv = IVectorSet.load(out / f"ivectors/{name}.h5")
        assert iv.vectors.shape == (n, 4) and np.isfinite(iv.vectors).all()
    # calibration trials come from background speakers scored by a back end without them
    cal = [line.split() for line in (out / "calibration/trials").read_text().splitlines()]
    assert {m for m, _, _ in cal} == {f"b{i}" for i in range(10)}
    assert all(int(m[1]) % 2 == int(t[1]) % 2 for m, t, _ in cal)
    # a second run skips every stage; a back-end change reruns from the backend stage
    assert main(["run", str(cfg), "--out", str(out), "--no-progress"]) == 0
    assert "stages: 0 run, 13 skipped" in capsys.readouterr().out
    args = ["run", str(cfg), "--out", str(out), "--no-progress", "--set", "backend.wccn=true"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "stage 7 ivectors: up to date" in printed and "stage 8 backend: done" in printed


def test_cosine_scores_equal_a_numpy_oracle(tmp_path: Path) -> None:
    make_corpus(tmp_path / "corpus", n_bg=10)
    extra = "scoring: {calibrate: false}\n"
    cfg = (
        write_config(tmp_path)
        .read_text()
        .replace(
            "backend: {lda_dim: 2, scorer: plda}", "backend: {scorer: cosine, length_norm: false}"
        )
    )
    p = tmp_path / "exp.yaml"
    p.write_text(cfg.replace("scoring:\n  top_c: 2\n", "") + extra, encoding="utf-8")
    exp = Experiment(load_config(p), tmp_path / "exp")
    exp.run()
    bg = IVectorSet.load(tmp_path / "exp/ivectors/background.h5").vectors
    vec = {
        **IVectorSet.load(tmp_path / "exp/ivectors/enroll.h5").as_dict(),
        **IVectorSet.load(tmp_path / "exp/ivectors/test.h5").as_dict(),
    }
    mu = bg.mean(axis=0)
    spk2utt: dict[str, list[str]] = {}
    for line in (tmp_path / "exp/data/enroll/utt2spk").read_text().splitlines():
        u, s = line.split()
        spk2utt.setdefault(s, []).append(u)
    lines = (tmp_path / "exp/scores/raw.txt").read_text().splitlines()
    rows = [line.split() for line in lines if not line.startswith("#")]
    assert len(rows) == 32
    for m, t, got in rows:
        e = [(vec[u] - mu) / np.linalg.norm(vec[u] - mu) for u in spk2utt[m]]
        e_mean = np.mean(e, axis=0)
        x = vec[t] - mu
        want = e_mean @ x / (np.linalg.norm(e_mean) * np.linalg.norm(x))
        assert float(got) == pytest.approx(want, rel=1e-6, abs=1e-9)


def test_single_utterance_background_needs_cosine(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    make_corpus(root, n_bg=10)
    for s in range(10):  # one 3-second background utterance per speaker, as in the
        (root / "bg" / f"b{s}-1.wav").unlink()  # LibriSpeech samples
        sf.write(root / "bg" / f"b{s}-0.wav", voice(s, 0, seconds=3.0), SR)
    cfg = write_config(tmp_path)
    exp = Experiment(load_config(cfg), tmp_path / "exp")
    # refused before the UBM is trained, naming the option and the fix
    with pytest.raises(ConfigError) as err:
        exp.run()
    msg = str(err.value)
    assert "backend.scorer: plda needs two or more utterances of every speaker" in msg
    assert "10 of the 10 speakers of the main back end have one" in msg and "cosine" in msg
    assert "\n" not in msg and not (tmp_path / "exp/ubm/ubm.h5").exists()
    text = cfg.read_text().replace(
        "backend: {lda_dim: 2, scorer: plda}", "backend: {scorer: cosine}"
    )
    cfg.write_text(text, encoding="utf-8")
    exp = Experiment(load_config(cfg), tmp_path / "exp")
    exp.run()
    assert "eer" in exp.results()
    # calibration: each speaker enrolled on the first half of its frames, tested on the
    # second (i-vectors of the halves), every model against every test of its group
    cal = [line.split() for line in (tmp_path / "exp/calibration/trials").read_text().splitlines()]
    assert len(cal) == 2 * 5 * 5 and sum(k == "target" for _, _, k in cal) == 10
    assert all(t.startswith(f"{m}-0") for m, t, k in cal if k == "target")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["system=ivector", "task=classification"], "system: 'ivector' is for task"),
        (["system=ivectors"], "system: must be one of"),
        (["system=ivector", "backend.scorer=lda"], "scorer: must be one of"),
    ],
)
def test_bad_ivector_configs(sets: list[str], message: str) -> None:
    base = ["data.background.pattern={spk}.wav", "data.targets.pattern={spk}.wav"]
    if "task=classification" in sets:
        base = ["data.dataset.pattern={label}.wav"]
    with pytest.raises(ConfigError, match=message):
        load_config(None, [*base, *sets])


def test_calibration_back_end_too_big_for_half_the_speakers(tmp_path: Path) -> None:
    # 10 background speakers: PLDA of 5-dimensional i-vectors could be trained on all 10,
    # but a calibration group's back end only on the other 5 (PLDA needs more speakers
    # than dimensions); refused before the UBM is trained
    make_corpus(tmp_path / "corpus", n_bg=10)
    cfg = write_config(tmp_path)
    text = cfg.read_text().replace("rank: 4", "rank: 5")
    cfg.write_text(text.replace("lda_dim: 2, ", "lda_dim: null, "), encoding="utf-8")
    exp = Experiment(load_config(cfg), tmp_path / "exp")
    with pytest.raises(ConfigError) as err:
        exp.run()
    msg = str(err.value)
    assert "backend.lda_dim: null gives PLDA of 5 dimensions" in msg
    assert "the back end of calibration group 1 is trained on 5" in msg
    assert "set backend.lda_dim: auto or <= 4" in msg
    assert not (tmp_path / "exp/ubm/ubm.h5").exists()
    # lda_dim: auto fits both: 4 dimensions, in the main back end too
    cfg.write_text(text.replace("lda_dim: 2, ", ""), encoding="utf-8")
    exp = Experiment(load_config(cfg), tmp_path / "exp")
    exp.run()
    rec = exp.record(exp.stage_number("backend")) or {}
    assert rec["info"]["lda_dim"] == 4 and rec["info"]["dim"] == 4
    assert (
        "the 5 speakers of the back end of calibration group 1 minus 1"
        in rec["info"]["auto"]["backend.lda_dim"]
    )
    assert "calibrated" in exp.results()  # the calibration back ends were fitted


def test_snorm_and_held_out_calibration_extractors(tmp_path: Path) -> None:
    make_corpus(tmp_path / "corpus", n_bg=10)
    text = write_config(tmp_path).read_text()
    text = text.replace(
        "backend: {lda_dim: 2, scorer: plda}", "backend: {scorer: cosine, length_norm: false}"
    ).replace("scoring:\n  top_c: 2\n", "scoring:\n  top_c: 2\n  norm: s\n")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(text, encoding="utf-8")
    exp = Experiment(load_config(cfg), tmp_path / "exp")
    exp.run()
    out = tmp_path / "exp"
    # S-norm of every trial, written out by hand from the stored i-vectors: the raw score
    # from the main extractor; the cohort = every background speaker (sorted), dealt into
    # 2 groups, each group's part scored with the i-vectors of the extractor that has not
    # seen it (ivectors/calibration_<g>.h5) and a cosine back end centred on the other
    # group's i-vectors; a cohort model on its first utterances (as many as the median
    # target model is enrolled on)
    vec = {
        k: v
        for name in ("background", "enroll", "test")
        for k, v in IVectorSet.load(out / f"ivectors/{name}.h5").as_dict().items()
    }
    mu = IVectorSet.load(out / "ivectors/background.h5").vectors.mean(axis=0)
    enrol: dict[str, list[str]] = {}
    for line in (out / "data/enroll/utt2spk").read_text().splitlines():
        u, s = line.split()
        enrol.setdefault(s, []).append(u)
    per_model = int(np.median([len(v) for v in enrol.values()]))
    cohort: dict[str, list[str]] = {}
    for line in (out / "data/background/utt2spk").read_text().splitlines():
        u, s = line.split()
        cohort.setdefault(s, []).append(u)
    cohort = {s: sorted(cohort[s]) for s in sorted(cohort)}
    spk = sorted(cohort)
    groups = [spk[0::2], spk[1::2]]
    held = []
    for g, group in enumerate(groups, 1):
        vg = IVectorSet.load(out / f"ivectors/calibration_{g}.h5").as_dict()
        mu_g = np.mean([vg[u] for s in spk if s not in group for u in cohort[s]], axis=0)
        held.append((group, vg, mu_g))
    raw = {k: float(v) for k, v in read_scores(out / "scores/raw.txt").items()}
    rows = [[*k, v] for k, v in read_scores(out / "scores/scores.txt").items()]
    assert len(rows) == 32
    for m, t, got in rows:
        s = _cos([vec[u] for u in sorted(enrol[m])], vec[t], mu)
        assert raw[(m, t)] == pytest.approx(s, rel=1e-6, abs=1e-9)
        zs, ts = [], []
        for group, vg, mu_g in held:
            e = [vg[u] for u in sorted(enrol[m])]
            zs += [_cos(e, vg[u], mu_g) for c in group for u in cohort[c]]
            ts += [_cos([vg[u] for u in cohort[c][:per_model]], vg[t], mu_g) for c in group]
        (mz, sz), (mt, st) = _mean_std(zs), _mean_std(ts)
        want = 0.5 * ((s - mz) / sz + (s - mt) / st)
        assert float(got) == pytest.approx(want, rel=1e-5, abs=1e-6)
    # each calibration extractor: a UBM re-estimated without its group, and a TV model
    # trained on the other group's statistics only
    ubm_ = DiagGMM.load(out / "ubm/ubm.h5")
    group1 = set(spk[0::2])
    others = [u for s in spk if s not in group1 for u in cohort[s]]
    with FeatureStore(out / "features/background.h5") as store:
        ubm_1 = load_heldout(out / "ubm/heldout_1.h5", ubm_).ubm
        feats = {u: np.asarray(store[u]) for u in others}
    want_tv = TotalVariability(rank=4, n_iter=3).fit(compute_stats(ubm_1, feats))
    got_tv = TotalVariability.load(out / "ivectors/tv_calibration_1.h5")
    np.testing.assert_allclose(got_tv.ubm_.means, ubm_1.means, rtol=1e-12)
    np.testing.assert_allclose(got_tv.T_, want_tv.T_, rtol=1e-8, atol=1e-10)
    cal = json.loads((out / "stages/11_calibrate.json").read_text())["info"]
    assert cal["extractor"] == "held out per group" and cal["trials"] > 0


def test_calibration_extractors_need_four_background_speakers(tmp_path: Path) -> None:
    make_corpus(tmp_path / "corpus", n_bg=3)
    text = write_config(tmp_path).read_text()
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(text.replace("backend: {lda_dim: 2, scorer: plda}", "backend: {scorer: cosine}"))
    exp = Experiment(load_config(cfg), tmp_path / "exp")
    with pytest.raises(ConfigError, match="at least 4 background speakers.*calibrate: false"):
        exp.run()
    assert exp.is_done(exp.stage_number("prepare"))
    assert not (tmp_path / "exp/ubm/ubm.h5").exists()


def test_min_post_gives_posterior_stats_files_and_their_ivectors(tmp_path: Path, capsys) -> None:
    make_corpus(tmp_path / "corpus", n_bg=10)
    cfg = write_config(tmp_path)
    out = tmp_path / "exp"
    assert main(["run", str(cfg), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    args = ["run", str(cfg), "--out", str(out), "--no-progress"]
    assert main([*args, "--set", "ivector.min_post=0.025"]) == 0
    printed = capsys.readouterr().out
    # the statistics and everything after them are recomputed, the UBM is not
    assert "stage 3 ubm: up to date" in printed and "stage 4 stats: done" in printed
    assert "stage 5 tv: done" in printed and "stage 6 caltv: done" in printed
    ubm_ = DiagGMM.load(out / "ubm/ubm.h5")
    model = TotalVariability.load(out / "ivectors/tv.h5", ubm_)
    for name in ("background", "enroll", "test"):
        src = StatsFile(out / f"ivectors/stats_{name}.h5", ubm_)
        assert src.layout == "posteriors"
        with FeatureStore(out / f"features/{name}.h5") as store:
            direct = compute_stats(ubm_, dict(store.items()), min_post=0.025)
        iv = IVectorSet.load(out / f"ivectors/{name}.h5")
        assert iv.utt_ids == direct.utt_ids
        np.testing.assert_allclose(iv.vectors, model.transform(direct), rtol=1e-5, atol=1e-8)
    with pytest.raises(ConfigError, match="min_post"):
        load_config(cfg, ["ivector.min_post=1.5"])
