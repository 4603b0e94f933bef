"""DET and histogram plots (skipped without matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

pytest.importorskip("matplotlib")

from gmmspeech.decisions.plots import det_points, plot_det, plot_score_histograms  # noqa: E402


def test_det_points_are_normal_deviates() -> None:
    s = np.array([0.0, 1.0, 2.0, 3.0])
    t = np.array([0, 1, 0, 1], dtype=bool)
    x, y = det_points(s, t)
    # thresholds -inf, >0, >1, >2, >3: P_fa 1, .5, .5, 0, 0 ; P_miss 0, 0, .5, .5, 1
    np.testing.assert_allclose(x[1:3], norm.ppf([0.5, 0.5]))
    np.testing.assert_allclose(y[2], norm.ppf(0.5))
    assert x[0] == pytest.approx(norm.ppf(1 - 1e-4))


def test_plots_write_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t = rng.random(500) < 0.2
    a = rng.normal(size=500) + 2 * t
    b = rng.normal(size=500) + 1 * t
    fig = plot_det({"A": (a, t), "B": (b, t)}, tmp_path / "det.png")
    assert (tmp_path / "det.png").stat().st_size > 1000
    assert len(fig.axes[0].get_lines()) == 3  # two systems and the diagonal
    assert "EER" in fig.axes[0].get_legend().get_texts()[0].get_text()
    plot_score_histograms(a, t, tmp_path / "hist.png")
    assert (tmp_path / "hist.png").stat().st_size > 1000
    import matplotlib.pyplot as plt

    plt.close("all")
