"""Logistic-regression calibration improves Cllr on held-apart synthetic scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gmmspeech import DataError, LogisticCalibration
from gmmspeech.decisions.metrics import cllr, min_cllr


def _scores(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    # badly calibrated: shifted and scaled, targets N(8, 2), non-targets N(4, 2)
    t = rng.random(n) < 0.3
    s = np.where(t, rng.normal(8.0, 2.0, n), rng.normal(4.0, 2.0, n))
    return s, t


def test_calibration_improves_cllr_on_held_out_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train_s, train_t = _scores(rng, 4000)
    test_s, test_t = _scores(rng, 4000)
    cal = LogisticCalibration().fit(train_s, train_t)
    raw = cllr(test_s, test_t)
    calibrated = cllr(cal.transform(test_s), test_t)
    assert raw > 1.0  # the raw scores are badly calibrated
    assert calibrated < raw
    # close to the best an affine map can do (min Cllr is a lower bound)
    assert min_cllr(test_s, test_t) <= calibrated < min_cllr(test_s, test_t) + 0.03
    # theory: two Gaussians with equal variance 4, means 8 and 4: the true LLR is
    # (mu1 - mu0)/var * s - (mu1^2 - mu0^2)/(2 var) = s - 6
    assert cal.slope_ == pytest.approx(1.0, abs=0.1)
    assert cal.offset_ == pytest.approx(-6.0, abs=0.6)
    cal.save(tmp_path / "cal.json")
    back = LogisticCalibration.load(tmp_path / "cal.json")
    np.testing.assert_allclose(back.transform(test_s), cal.transform(test_s))


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="fit"):
        LogisticCalibration().transform([1.0])
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="calibration"):
        LogisticCalibration.load(tmp_path / "x.json")


def test_fit_at_a_prior_other_than_half_minimises_the_documented_objective() -> None:
    from scipy.optimize import minimize

    rng = np.random.default_rng(11)
    s = np.concatenate([rng.normal(3.0, 1.5, 300), rng.normal(-1.0, 1.0, 900)])
    t = np.concatenate([np.ones(300, bool), np.zeros(900, bool)])
    pi = 0.1
    logit = np.log(pi / (1 - pi))

    def objective(p: np.ndarray) -> float:
        # the module docstring's formula, written out on the raw scores
        a, b = p
        tar = np.log1p(np.exp(-(a * s[t] + b + logit))).sum() * pi / t.sum()
        non = np.log1p(np.exp(a * s[~t] + b + logit)).sum() * (1 - pi) / (~t).sum()
        return float(tar + non)

    ref = minimize(
        objective,
        np.array([0.3, -0.5]),
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-13, "maxiter": 20000},
    )
    cal = LogisticCalibration(prior=pi).fit(s, t)
    # the fit stops at its tolerances: the objective is within 1e-9
    # of the minimum, which leaves the parameters within about 1e-4 of the optimum
    assert objective(np.array([cal.slope_, cal.offset_])) <= ref.fun + 1e-9
    assert cal.slope_ == pytest.approx(ref.x[0], rel=1e-3)
    assert cal.offset_ == pytest.approx(ref.x[1], abs=1e-3)
    # the prior matters: the 0.5 fit is another line
    half = LogisticCalibration(prior=0.5).fit(s, t)
    assert abs(half.offset_ - cal.offset_) > 1e-2


def test_calibrate_command_trains_saves_loads_and_applies(tmp_path: Path, capsys) -> None:
    from gmmspeech.cli.main import main
    from gmmspeech.corpus.scorefiles import read_scores

    rng = np.random.default_rng(4)
    dev_s, dev_t = _scores(rng, 2000)
    ev_s, _ = _scores(rng, 50)
    (tmp_path / "dev_trials").write_text(
        "".join(f"m{i} u{i} {'target' if t else 'nontarget'}\n" for i, t in enumerate(dev_t))
    )
    (tmp_path / "dev.txt").write_text(
        "".join(f"m{i} u{i} {float(v)!r}\n" for i, v in enumerate(dev_s))
    )
    (tmp_path / "ev.txt").write_text("".join(f"a b{i} {float(v)!r}\n" for i, v in enumerate(ev_s)))
    dev = [str(tmp_path / "dev.txt"), str(tmp_path / "dev_trials")]
    args = ["calibrate", "--train", *dev, "--save", str(tmp_path / "cal.json")]
    assert main([*args, "--p-target", "0.1"]) == 0
    # the oracle: the documented objective minimised by the library class on the same data
    want = LogisticCalibration(prior=0.1).fit(dev_s, dev_t)
    saved = LogisticCalibration.load(tmp_path / "cal.json")
    assert saved.prior == 0.1
    assert saved.slope_ == pytest.approx(want.slope_, rel=1e-9)
    assert saved.offset_ == pytest.approx(want.offset_, rel=1e-9)
    out = tmp_path / "llr.txt"
    assert main(["calibrate", "--load", str(tmp_path / "cal.json"), str(tmp_path / "ev.txt"),
                 "-o", str(out)]) == 0  # fmt: skip
    got = read_scores(out)
    expect = want.slope_ * ev_s + want.offset_  # llr = a s + b, written out
    np.testing.assert_allclose([got["a", f"b{i}"] for i in range(50)], expect, rtol=1e-8)
    capsys.readouterr()
    assert main(["calibrate", "--load", str(tmp_path / "cal.json")]) == 1
    assert "nothing to do" in capsys.readouterr().err
