"""The calibration stage falls back to the identity when its fit cannot be trusted: when it
makes the actDCF of its own trials worse, or when the background models are enrolled on a
very different amount of speech than the target models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import CONFIG, make_single_utterance_corpus

from gmmspeech import LogisticCalibration
from gmmspeech.cli.main import main
from gmmspeech.decisions import calguard
from gmmspeech.decisions.backgroundtrials import Segments, enrolment_mismatch
from gmmspeech.decisions.calguard import check_location, fit_guarded
from gmmspeech.features.store import FeatureStore

COSTS = {"prior": 0.01, "c_miss": 1.0, "c_fa": 1.0}
# raw scores already separate at the Bayes threshold log(99) = 4.595: no error, DCF 0
VALUES = np.array([6.0, 7.0, 8.0, -1.0, 0.0, 1.0, 2.0])
IS_TARGET = np.array([True, True, True, False, False, False, False])


def test_a_calibration_worse_on_its_own_trials_becomes_the_identity(monkeypatch, caplog) -> None:
    def bad_fit(self, scores, is_target):
        # offset +10 accepts every non-target: DCF = (1 - 0.01) * 1 / 0.01 = 99
        self.slope_, self.offset_ = 1.0, 10.0
        self.nontarget_location_, self.nontarget_scale_ = 0.5, 1.1
        return self

    with monkeypatch.context() as m:
        m.setattr(LogisticCalibration, "fit", bad_fit)
        out = fit_guarded(VALUES, IS_TARGET, **COSTS)
    assert out.info["trials_act_dcf_raw"] == 0.0
    assert out.info["trials_act_dcf_calibrated"] == pytest.approx(99.0)
    assert out.fallback == "identity"
    np.testing.assert_array_equal(out.calibration.transform(VALUES), VALUES)
    assert "worse calibrated" in caplog.text
    # the real fit keeps the decisions and is kept
    kept = fit_guarded(VALUES, IS_TARGET, **COSTS)
    assert kept.fallback is None and kept.calibration.slope_ > 0


def test_enrolment_mismatch_is_the_frame_ratio_beyond_a_factor_two_either_way(caplog) -> None:
    assert enrolment_mismatch(500.0, 3000.0) == pytest.approx(500 / 3000)
    assert enrolment_mismatch(7000.0, 3000.0) == pytest.approx(7000 / 3000)
    assert enrolment_mismatch(1600.0, 3000.0) is None
    assert enrolment_mismatch(5900.0, 3000.0) is None
    assert enrolment_mismatch(0.0, 3000.0) is None
    ok = fit_guarded(VALUES, IS_TARGET, enrol_frames=1600.0, target_frames=3000.0, **COSTS)
    assert ok.fallback is None and ok.calibration.slope_ != 1.0
    out = fit_guarded(VALUES, IS_TARGET, enrol_frames=500.0, target_frames=3000.0, **COSTS)
    assert out.info["enrol_ratio"] == pytest.approx(0.1667)
    assert (out.calibration.slope_, out.calibration.offset_) == (1.0, 0.0)
    assert "not calibrating" in caplog.text


def test_constant_scores_are_no_fit(caplog, tmp_path: Path, capsys) -> None:
    """Constant scores carry no information: the library refuses to fit them, the guard
    and ``gmmspeech calibrate`` fall back to the identity and say so, never
    ``llr = 1 * score + 0`` presented as a fit."""
    flat = np.full(7, 2.5)
    with pytest.raises(Exception, match="constant scores carry no information"):
        LogisticCalibration(0.5).fit(flat, IS_TARGET)
    out = fit_guarded(flat, IS_TARGET, **COSTS)
    assert out.fallback == "identity: constant scores"
    assert "fitted_slope" not in out.info
    assert "carry no information" in caplog.text
    # nearly constant (spread 1e-12 of the magnitude) too
    assert fit_guarded(flat + 1e-12 * np.arange(7), IS_TARGET, **COSTS).fallback is not None
    scores = tmp_path / "s.txt"
    scores.write_text("".join(f"m{i} t{i} 2.5\n" for i in range(7)))
    trials = tmp_path / "trials"
    trials.write_text(
        "".join(f"m{i} t{i} {'target' if t else 'nontarget'}\n" for i, t in enumerate(IS_TARGET))
    )
    assert (
        main(["calibrate", "--train", str(scores), str(trials), "--save", str(tmp_path / "c.json")])
        == 0
    )
    printed = capsys.readouterr().out
    assert "not calibrating (identity: constant scores" in printed
    assert "llr = 1 * score" not in printed


def test_a_location_shift_falls_back_and_is_recorded(caplog) -> None:
    """The calibration trials' non-targets centre at 0 (sd 1); scores to calibrate whose
    median is more than MAX_LOCATION_SHIFT sd away are left as they are."""
    rng = np.random.default_rng(0)
    non, tar = rng.normal(0.0, 1.0, 400), rng.normal(3.0, 1.0, 40)
    values = np.concatenate([tar, non])
    labels = np.arange(values.size) < tar.size
    fitted = fit_guarded(values, labels, **COSTS).calibration
    slope, offset = fitted.slope_, fitted.offset_
    assert fitted.nontarget_location_ == pytest.approx(np.median(non))
    assert fitted.nontarget_scale_ == pytest.approx(non.std())
    near = rng.normal(0.5, 1.0, 300)  # within the limit: kept
    out = check_location(fitted, near)
    assert "fallback" not in out and (fitted.slope_, fitted.offset_) == (slope, offset)
    want = (np.median(near) - np.median(non)) / non.std()
    assert out["location_shift"] == pytest.approx(want, abs=1e-4)  # rounded to 4 places
    shift = calguard.MAX_LOCATION_SHIFT + 0.5
    far = rng.normal(0.0, 1.0, 300)
    far += np.median(non) + shift * non.std() - np.median(far)  # median exactly shift sd away
    out = check_location(fitted, far)
    assert out["fallback"] == "identity: location shift"
    assert out["location_shift"] == pytest.approx(shift, abs=1e-4)
    np.testing.assert_array_equal(fitted.transform(far), far)
    assert "standard deviations" in caplog.text


def test_run_with_one_utterance_background_speakers_does_not_calibrate(tmp_path: Path) -> None:
    # background: one 2 s utterance per speaker, so half-utterance models of about 1 s;
    # targets: enrolled on 4 utterances of 1 s each, four times as much speech
    make_single_utterance_corpus(tmp_path / "corpus")
    (tmp_path / "exp.yaml").write_text(CONFIG.format(extra=""), encoding="utf-8")
    out = tmp_path / "exp"
    assert main(["run", str(tmp_path / "exp.yaml"), "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    info = res["calibration"]
    assert info["fallback"] == "identity: enrolment mismatch"
    # the oracle: frame counts read from the feature stores' index
    with FeatureStore(out / "features/background.h5") as bg:
        halves = Segments(bg, set(bg))
        firsts = [int(np.asarray(bg[u]).shape[0]) // 2 for u in bg]
        for u in bg:
            assert halves.num_frames(u + "#enrol-half") == halves[u + "#enrol-half"].shape[0]
            assert halves.num_frames(u + "#test-half") == halves[u + "#test-half"].shape[0]
    enrol = {}
    for line in (out / "data/enroll/spk2utt").read_text().splitlines():
        spk, *utts = line.split()
        enrol[spk] = utts
    with FeatureStore(out / "features/enroll.h5") as en:
        per_model = [sum(int(np.asarray(en[u]).shape[0]) for u in us) for us in enrol.values()]
    assert info["enrol_frames"] == float(np.median(firsts))
    assert info["target_enrol_frames"] == float(np.median(per_model))
    assert info["enrol_ratio"] == pytest.approx(np.median(firsts) / np.median(per_model), abs=1e-4)
    cal = json.loads((out / "calibration/calibration.json").read_text())
    assert (cal["slope"], cal["offset"]) == (1.0, 0.0)
    raw = (out / "scores/scores.txt").read_text().splitlines()[1:]  # after the headers
    calibrated = (out / "scores/calibrated.txt").read_text().splitlines()[1:]
    assert [r.split()[:2] for r in raw] == [r.split()[:2] for r in calibrated]
    for a, b in zip(raw, calibrated, strict=True):
        assert float(b.split()[2]) == pytest.approx(float(a.split()[2]), rel=1e-12)
    assert res["calibrated"]["act_dcf"] == res["raw"]["act_dcf"]
