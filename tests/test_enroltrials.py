"""Calibration trials by cross-validation over the enrolment utterances
(``scoring.calibration_trials: enroll``): the folds on hand-made sets, the fold models against
``enroll``, and a run whose calibration never reads a test utterance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import CONFIG, make_corpus, make_single_utterance_corpus

from gmmspeech import DiagGMM, enroll
from gmmspeech.cli.main import main
from gmmspeech.config.sections import ScoringConfig
from gmmspeech.decisions.enroltrials import enrol_folds, enrolment_folds
from gmmspeech.errors import ConfigError, DataError
from gmmspeech.ivector.tv import IVectorSet


def _pairs(folds) -> set[tuple[str, str, bool]]:
    t = folds.trials
    return set(zip(t.model_ids, t.test_ids, t.is_target.tolist(), strict=True))


def test_folds_of_a_hand_made_set() -> None:
    # A: 3 utterances, B: 2, C: 1 (never held out); every utterance its model's speaker
    model2utt = {"A": ["a2", "a1", "a3"], "B": ["b1", "b2"], "C": ["c1"]}
    utt2spk = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "c1": "C"}
    folds = enrolment_folds(model2utt, utt2spk)
    assert folds.n_folds == 3
    # written out by hand: fold k holds out the k-th sorted utterance of each model
    assert folds.models == {
        "A#cv1": ["a2", "a3"], "B#cv1": ["b2"], "C#cv1": ["c1"],
        "A#cv2": ["a1", "a3"], "B#cv2": ["b1"], "C#cv2": ["c1"],
        "A#cv3": ["a1", "a2"], "B#cv3": ["b1", "b2"], "C#cv3": ["c1"],
    }  # fmt: skip
    assert folds.base["B#cv3"] == "B"
    expected = {
        ("A#cv1", "a1", True), ("A#cv1", "b1", False), ("B#cv1", "a1", False),
        ("B#cv1", "b1", True), ("C#cv1", "a1", False), ("C#cv1", "b1", False),
        ("A#cv2", "a2", True), ("A#cv2", "b2", False), ("B#cv2", "a2", False),
        ("B#cv2", "b2", True), ("C#cv2", "a2", False), ("C#cv2", "b2", False),
        ("A#cv3", "a3", True), ("B#cv3", "a3", False), ("C#cv3", "a3", False),
    }  # fmt: skip
    assert _pairs(folds) == expected
    assert len(folds.trials) == len(expected)  # each pair once
    # no trial tests an utterance its model is enrolled on
    for m, t in folds.trials.pairs:
        assert t not in folds.models[m]


def test_folds_label_by_speaker_and_skip_shared_utterances() -> None:
    # two models of speaker S (multi-session), sharing s2; one model of speaker T
    model2utt = {"S1": ["s1", "s2"], "S2": ["s2", "s3"], "T": ["t1", "t2"]}
    utt2spk = {"s1": "S", "s2": "S", "s3": "S", "t1": "T", "t2": "T"}
    folds = enrolment_folds(model2utt, utt2spk)
    pairs = _pairs(folds)
    # fold 1 holds out s1 (S1), s2 (S2), t1 (T); S1#cv1 = [s2] so s2 is not its test
    assert ("S1#cv1", "s2", True) not in pairs
    assert ("S1#cv1", "s1", True) in pairs
    assert ("S2#cv1", "s1", True) in pairs  # another model of the same speaker: target
    assert ("T#cv1", "s1", False) in pairs
    assert ("S1#cv2", "s2", True) in pairs  # fold 2: S1 holds out s2, S2 holds out s3
    assert ("S2#cv2", "s2", True) not in pairs  # S2#cv2 = [s2]
    for m, t in folds.trials.pairs:
        assert t not in folds.models[m]


def test_folds_are_capped_and_spread() -> None:
    model2utt = {"A": [f"a{i:02d}" for i in range(25)], "B": [f"b{i:02d}" for i in range(4)]}
    utt2spk = {u: u[0].upper() for us in model2utt.values() for u in us}
    folds = enrolment_folds(model2utt, utt2spk, max_folds=10)
    # step ceil(25 / 10) = 3: a00, a03, ..., a24 (9 of them)
    held_a = sorted(t for m, t in folds.trials.pairs if m.startswith("A#") and t[0] == "a")
    assert held_a == ["a00", "a03", "a06", "a09", "a12", "a15", "a18", "a21", "a24"]
    assert folds.n_folds == 9
    assert folds.models["B#cv5"] == model2utt["B"]  # B has 4 held out: enrolled on all
    assert int(folds.trials.is_target.sum()) == 9 + 4
    more = {"A": [f"a{i:02d}" for i in range(80)], "B": ["b1", "b2"]}
    many = enrolment_folds(more, {u: u[0].upper() for us in more.values() for u in us})
    assert many.n_folds == 10


def test_folds_refuse_single_utterance_models_and_one_speaker() -> None:
    with pytest.raises(DataError, match="single utterance.*calibration_trials: background"):
        enrolment_folds({"A": ["a1"], "B": ["b1"]}, {"a1": "A", "b1": "B"})
    with pytest.raises(DataError, match="no non-target trial"):
        enrolment_folds({"A": ["a1", "a2"]}, {"a1": "A", "a2": "A"})


def test_calibration_trials_is_validated() -> None:
    assert ScoringConfig().calibration_trials == "background"
    assert ScoringConfig(calibration_trials="enroll").calibration_trials == "enroll"
    with pytest.raises(ConfigError, match="calibration_trials"):
        ScoringConfig(calibration_trials="test")


def test_fold_models_equal_enroll_on_the_same_utterances() -> None:
    rng = np.random.default_rng(0)
    ubm = DiagGMM(np.full(3, 1 / 3), rng.standard_normal((3, 2)), np.ones((3, 2)))
    feats = {u: rng.standard_normal((40, 2)) + i for i, u in enumerate(["a1", "a2", "a3", "b1"])}
    folds = enrolment_folds({"A": ["a1", "a2", "a3"], "B": ["b1"]}, {u: u[0] for u in feats})
    got = enrol_folds(ubm, feats, folds, relevance_factor=4.0, adapt="mwv")
    want = enroll(ubm, feats, folds.models, relevance_factor=4.0, adapt="mwv")
    assert list(got.ids) == list(want.ids)
    for i in range(len(want)):
        for a, b in zip(got.parameters(i), want.parameters(i), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("norm", ["none", "s"])
def test_run_calibrates_on_enrolment_folds_without_test_utterances(
    tmp_path: Path, norm: str
) -> None:
    make_single_utterance_corpus(tmp_path / "corpus")
    extra = f"  norm: {norm}\n  calibration_trials: enroll\n"
    (tmp_path / "exp.yaml").write_text(CONFIG.format(extra=extra), encoding="utf-8")
    out = tmp_path / "exp"
    assert main(["run", str(tmp_path / "exp.yaml"), "--out", str(out), "--no-progress"]) == 0
    info = json.loads((out / "results.json").read_text())["calibration"]
    assert info["source"] == "enroll" and info["fallback"] is None
    enrol: dict[str, list[str]] = {}
    for line in (out / "data/enroll/spk2utt").read_text().splitlines():
        spk, *utts = line.split()
        enrol[spk] = utts
    tests = {line.split()[1] for line in (out / "data/test/trials").read_text().splitlines()}
    cal = [line.split() for line in (out / "calibration/trials").read_text().splitlines()]
    enrolled = {u for us in enrol.values() for u in us}
    # 4 models of 4 utterances (enroll_fraction 0.5 of 8): 4 folds x 4 models x 4 held out
    assert len(cal) == 64 and sum(r[2] == "target" for r in cal) == 16
    for model, utt, label in cal:
        assert utt in enrolled and utt not in tests
        base = model.split("#cv")[0]
        assert (label == "target") == (utt in enrol[base])
        assert (utt in enrol[base]) == (utt.split("-")[0] == base)
    values = {
        tuple(line.split()[:2]): float(line.split()[2])
        for line in (out / "calibration/scores.txt").read_text().splitlines()
        if not line.startswith("#")
    }
    tar = [values[(m, u)] for m, u, label in cal if label == "target"]
    non = [values[(m, u)] for m, u, label in cal if label != "target"]
    assert info["separable"] == (min(tar) > max(non))
    if norm == "none":
        _cli_reproduces_stage_7(tmp_path, out)
        # the option is part of stage 7's hash: changing it reruns the stage
        args = ["run", str(tmp_path / "exp.yaml"), "--out", str(out), "--no-progress"]
        assert main([*args, "--set", "scoring.calibration_trials=background"]) == 0
        res = json.loads((out / "results.json").read_text())
        assert res["calibration"]["source"] == "background"
        assert main(args) == 0
        assert json.loads((out / "results.json").read_text())["calibration"] == info
    # the oracle of "never reads a test utterance": stage 7 rerun without the test features
    # gives the same calibration
    first = (out / "calibration/calibration.json").read_text()
    (out / "features/test.h5").rename(tmp_path / "test.h5")
    args = ["run", str(tmp_path / "exp.yaml"), "--out", str(out), "--no-progress"]
    assert main([*args, "--stage", "7", "--stop-stage", "7", "--force"]) == 0
    assert (out / "calibration/calibration.json").read_text() == first


def _cli_reproduces_stage_7(tmp_path: Path, out: Path) -> None:
    """calibrate --enroll-folds, enroll, score, calibrate --train: stage 7's trials, scores
    and calibration."""
    cv, cfg = tmp_path / "cv", str(tmp_path / "exp.yaml")
    ubm, feats = str(out / "ubm/ubm.h5"), str(out / "features/enroll.h5")
    assert main(["calibrate", "--enroll-folds", str(out / "data/enroll"), str(cv)]) == 0
    assert (cv / "trials").read_text() == (out / "calibration/trials").read_text()
    models, scores = str(tmp_path / "cv.h5"), str(tmp_path / "cv.txt")
    assert main(["enroll", ubm, feats, str(cv), models, "--config", cfg, "--no-progress"]) == 0
    args = [ubm, models, feats, str(cv / "trials"), scores, "--config", cfg, "--no-progress"]
    assert main(["score", *args]) == 0
    got = [line.split() for line in Path(scores).read_text().splitlines() if line[0] != "#"]
    stage = [
        line.split()
        for line in (out / "calibration/scores.txt").read_text().splitlines()
        if line[0] != "#"
    ]
    assert [g[:2] for g in got] == [s[:2] for s in stage]
    np.testing.assert_allclose(
        [float(g[2]) for g in got], [float(s[2]) for s in stage], rtol=1e-6, atol=1e-9
    )
    saved = tmp_path / "cal.json"
    assert main(["calibrate", "--train", scores, str(cv / "trials"), "--save", str(saved)]) == 0
    a = json.loads(saved.read_text())
    b = json.loads((out / "calibration/calibration.json").read_text())
    assert a["slope"] == pytest.approx(b["slope"], rel=1e-6)
    assert a["offset"] == pytest.approx(b["offset"], rel=1e-6)


def test_ivector_run_calibrates_on_enrolment_folds(tmp_path: Path) -> None:
    # cosine scoring without length normalisation: the oracle below is the cosine of the
    # fold model's mean normalised i-vector with the held-out one, both centred on the
    # background mean
    make_corpus(tmp_path / "corpus", n_bg=10)
    extra = (
        "system: ivector\nivector: {rank: 4, n_iter: 3}\n"
        "backend: {scorer: cosine, length_norm: false}\n"
    )
    cfg = CONFIG.format(extra=extra).replace("scoring:\n  top_c: 2\n", "")
    cfg += "scoring: {calibration_trials: enroll}\n"
    (tmp_path / "exp.yaml").write_text(cfg, encoding="utf-8")
    out = tmp_path / "exp"
    assert main(["run", str(tmp_path / "exp.yaml"), "--out", str(out), "--no-progress"]) == 0
    info = json.loads((out / "results.json").read_text())["calibration"]
    assert info["source"] == "enroll"
    bg = IVectorSet.load(out / "ivectors/background.h5").vectors
    vec = IVectorSet.load(out / "ivectors/enroll.h5").as_dict()
    tests = {line.split()[1] for line in (out / "data/test/trials").read_text().splitlines()}
    mu = bg.mean(axis=0)
    spk2utt: dict[str, list[str]] = {}
    for line in (out / "data/enroll/utt2spk").read_text().splitlines():
        u, s = line.split()
        spk2utt.setdefault(s, []).append(u)
    labels = {
        (r[0], r[1]): r[2]
        for r in (line.split() for line in (out / "calibration/trials").read_text().splitlines())
    }
    rows = [
        line.split()
        for line in (out / "calibration/scores.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    # 4 models of 2 enrolment utterances: 2 folds x 4 models x 4 held-out utterances
    assert len(rows) == 32 and sum(v == "target" for v in labels.values()) == 8
    for m, t, got in rows:
        base, k = m.split("#cv")
        held = sorted(spk2utt[base])[int(k) - 1]
        enrolled = [u for u in sorted(spk2utt[base]) if u != held]
        assert t not in tests and t not in enrolled
        assert (labels[(m, t)] == "target") == (t == held)
        e = np.mean([(vec[u] - mu) / np.linalg.norm(vec[u] - mu) for u in enrolled], axis=0)
        x = vec[t] - mu
        want = e @ x / (np.linalg.norm(e) * np.linalg.norm(x))
        assert float(got) == pytest.approx(want, rel=1e-6, abs=1e-9)
