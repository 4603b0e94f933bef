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
from gmmspeech.decisions.backgroundtrials import Segments, enrolment_mismatch
from gmmspeech.features.store import FeatureStore
from gmmspeech.pipeline.verification import fallback_if_mismatched, fallback_if_worse

COSTS = {"p_target": 0.01, "c_miss": 1.0, "c_fa": 1.0}


def _cal(slope: float, offset: float) -> LogisticCalibration:
    cal = LogisticCalibration(prior=0.01)
    cal.slope_, cal.offset_ = slope, offset
    return cal


def test_a_calibration_worse_on_its_own_trials_becomes_the_identity(caplog) -> None:
    # raw scores already separate at the Bayes threshold log(99) = 4.595: no error, DCF 0
    values = np.array([6.0, 7.0, 8.0, -1.0, 0.0, 1.0, 2.0])
    is_target = np.array([True, True, True, False, False, False, False])
    # offset +10 accepts every non-target: DCF = (1 - 0.01) * 1 / 0.01 = 99
    cal = _cal(1.0, 10.0)
    out = fallback_if_worse(cal, values, is_target, COSTS)
    assert out["trials_act_dcf_raw"] == 0.0
    assert out["trials_act_dcf_calibrated"] == pytest.approx(99.0)
    assert out["fallback"] is not None
    assert (cal.slope_, cal.offset_) == (1.0, 0.0)
    np.testing.assert_array_equal(cal.transform(values), values)
    assert "worse calibrated" in caplog.text
    # a calibration that keeps the decisions is kept
    kept = _cal(2.0, 0.0)
    assert fallback_if_worse(kept, values, is_target, COSTS)["fallback"] is None
    assert (kept.slope_, kept.offset_) == (2.0, 0.0)


def test_enrolment_mismatch_is_the_frame_ratio_beyond_a_factor_two_either_way(caplog) -> None:
    assert enrolment_mismatch(500.0, 3000.0) == pytest.approx(500 / 3000)
    assert enrolment_mismatch(7000.0, 3000.0) == pytest.approx(7000 / 3000)
    assert enrolment_mismatch(1600.0, 3000.0) is None
    assert enrolment_mismatch(5900.0, 3000.0) is None
    assert enrolment_mismatch(0.0, 3000.0) is None
    cal = _cal(3.0, -1.0)
    assert fallback_if_mismatched(cal, 1600.0, 3000.0) == {}
    assert (cal.slope_, cal.offset_) == (3.0, -1.0)
    out = fallback_if_mismatched(cal, 500.0, 3000.0)
    assert out["enrol_ratio"] == pytest.approx(0.1667)
    assert (cal.slope_, cal.offset_) == (1.0, 0.0)
    assert "not calibrating" in caplog.text


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
    raw = (out / "scores/scores.txt").read_text().splitlines()
    calibrated = (out / "scores/calibrated.txt").read_text().splitlines()
    assert [r.split()[:2] for r in raw] == [r.split()[:2] for r in calibrated]
    for a, b in zip(raw, calibrated, strict=True):
        assert float(b.split()[2]) == pytest.approx(float(a.split()[2]), rel=1e-12)
    assert res["calibrated"]["act_dcf"] == res["raw"]["act_dcf"]
