"""Linear score fusion (LinearFusion, gmmspeech fuse) against the objective written out and
minimised by scipy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from gmmspeech.cli.main import main
from gmmspeech.decisions.calibration import LinearFusion, LogisticCalibration
from gmmspeech.decisions.metrics import cllr
from gmmspeech.errors import DataError


def two_systems(n_tar: int = 60, n_non: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.r_[np.ones(n_tar, bool), np.zeros(n_non, bool)]
    y = np.where(t, 1.0, 0.0)
    a = 3.0 * y + rng.normal(0, 1.0, t.size) + 5.0  # a LLR-like system with an offset
    b = 0.2 * y + rng.normal(0, 0.1, t.size)  # a weaker, differently scaled one
    return np.column_stack([a, b]), t


def oracle(x: np.ndarray, t: np.ndarray, prior: float) -> np.ndarray:
    """Weights and offset minimising the prior-weighted cross-entropy, by BFGS."""
    c = np.log(prior / (1 - prior))

    def f(p: np.ndarray) -> float:
        llr = x @ p[:-1] + p[-1] + c
        tar = np.logaddexp(0, -llr[t]).mean()
        non = np.logaddexp(0, llr[~t]).mean()
        return float(prior * tar + (1 - prior) * non)

    res = minimize(f, np.zeros(x.shape[1] + 1), method="BFGS", options={"gtol": 1e-10})
    return res.x


@pytest.mark.parametrize("prior", [0.5, 0.01])
def test_fusion_minimises_the_prior_weighted_cross_entropy(prior: float) -> None:
    x, t = two_systems()
    fu = LinearFusion(prior).fit(x, t)
    want = oracle(x, t, prior)
    np.testing.assert_allclose(fu.weights_, want[:-1], rtol=1e-4, atol=1e-5)
    assert fu.offset_ == pytest.approx(want[-1], rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(fu.transform(x), x @ want[:-1] + want[-1], rtol=1e-4, atol=1e-4)


def test_one_system_is_the_calibration() -> None:
    x, t = two_systems(seed=3)
    fu = LinearFusion(0.05).fit(x[:, :1], t)
    cal = LogisticCalibration(0.05).fit(x[:, 0], t)
    assert fu.weights_[0] == pytest.approx(cal.slope_, rel=1e-12)
    assert fu.offset_ == pytest.approx(cal.offset_, rel=1e-12)


def test_fusion_needs_both_classes_and_the_fitted_width() -> None:
    x, t = two_systems()
    with pytest.raises(DataError):
        LinearFusion().fit(x, np.ones(len(t), bool))
    fu = LinearFusion().fit(x, t)
    with pytest.raises(DataError, match=r"expected \(n_trials, 2\)"):
        fu.transform(x[:, :1])


def _write(path: Path, models: list[str], tests: list[str], last: list[str]) -> None:
    path.write_text("".join(f"{m} {u} {v}\n" for m, u, v in zip(models, tests, last, strict=True)))


def test_fuse_command_writes_the_oracle_llrs(tmp_path: Path, capsys) -> None:
    x, t = two_systems()
    models = [f"m{i % 7}" for i in range(len(t))]
    tests = [f"u{i}" for i in range(len(t))]
    labels = ["target" if v else "nontarget" for v in t]
    _write(tmp_path / "trials", models, tests, labels)
    for j in range(2):
        _write(tmp_path / f"s{j}.txt", models, tests, [repr(float(v)) for v in x[:, j]])
    args = ["fuse", "--train", str(tmp_path / "trials"), str(tmp_path / "s0.txt")]
    args += [str(tmp_path / "s1.txt"), "--apply", str(tmp_path / "s0.txt")]
    args += [str(tmp_path / "s1.txt"), "--trials", str(tmp_path / "trials")]
    args += ["-o", str(tmp_path / "fused.txt"), "--p-target", "0.01", "--no-guard"]
    assert main(args) == 0
    want = oracle(x, t, 0.01)
    rows = [r.split() for r in (tmp_path / "fused.txt").read_text().splitlines()]
    got = np.array([float(r[2]) for r in rows if not r[0].startswith("#")])
    np.testing.assert_allclose(got, x @ want[:-1] + want[-1], rtol=1e-4, atol=1e-4)
    assert main(args) != 0  # an existing output needs --overwrite
    assert "--overwrite" in capsys.readouterr().err
    bad = ["fuse", "--train", str(tmp_path / "trials"), str(tmp_path / "s0.txt"), "--apply"]
    bad += [
        str(tmp_path / "s0.txt"),
        str(tmp_path / "s1.txt"),
        "--trials",
        str(tmp_path / "trials"),
    ]
    assert main([*bad, "-o", str(tmp_path / "f2.txt")]) == 1
    assert "one scores file per system" in capsys.readouterr().err


@pytest.mark.parametrize("prior", [0.5, 0.01, 0.3])
def test_cllr_at_a_prior_is_the_normalised_cross_entropy(prior: float) -> None:
    rng = np.random.default_rng(5)
    t = rng.random(400) < 0.2
    s = 2.0 * t + rng.normal(0, 1, t.size) - 1.0
    # BOSARIS' normalised cross-entropy, written out term by term
    c = np.log(prior / (1 - prior))
    tar = sum(np.log2(1 + np.exp(-(v + c))) for v in s[t]) / t.sum()
    non = sum(np.log2(1 + np.exp(v + c)) for v in s[~t]) / (~t).sum()
    h = -(prior * np.log2(prior) + (1 - prior) * np.log2(1 - prior))
    assert cllr(s, t, p_target=prior) == pytest.approx(
        (prior * tar + (1 - prior) * non) / h, rel=1e-12
    )
    assert cllr(np.zeros(t.size), t, p_target=prior) == pytest.approx(1.0, rel=1e-12)
    if prior == 0.5:
        assert cllr(s, t) == cllr(s, t, p_target=0.5)
