"""GMM supervectors (KL kernel), the span reduction, the inner choice of C, and the i-vector
classifier's cosine back end, each against an independent oracle."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut, cross_val_score
from sklearn.svm import LinearSVC

from gmmspeech.decisions.ivector_classifier import cosine_classes, lda_projection
from gmmspeech.decisions.supervector import (
    fit_linear,
    kl_supervectors,
    span_coordinates,
    store_supervectors,
)
from gmmspeech.engine import ProcessEngine
from gmmspeech.errors import DataError
from gmmspeech.features.store import write_store
from gmmspeech.mixture.gmm import DiagGMM


def _ubm(rng: np.random.Generator, k: int = 4, d: int = 3) -> DiagGMM:
    w = rng.uniform(0.5, 1.5, k)
    return DiagGMM(w / w.sum(), rng.normal(0, 2, (k, d)), rng.uniform(0.3, 2.0, (k, d)))


def _oracle_supervector(ubm: DiagGMM, x: np.ndarray, r: float) -> np.ndarray:
    """MAP means by the equations written out, naive float64 posteriors from scipy."""
    logp = np.stack(
        [
            np.log(ubm.weights[k])
            + multivariate_normal(ubm.means[k], np.diag(ubm.variances[k])).logpdf(x)
            for k in range(ubm.n_components)
        ],
        axis=1,
    )
    g = np.exp(logp - logsumexp(logp, axis=1, keepdims=True))
    out = []
    for k in range(ubm.n_components):
        n = g[:, k].sum()
        ex = (g[:, k, None] * x).sum(axis=0) / n
        alpha = n / (n + r)
        mu_new = alpha * ex + (1 - alpha) * ubm.means[k]
        out.append(np.sqrt(ubm.weights[k]) * (mu_new - ubm.means[k]) / np.sqrt(ubm.variances[k]))
    return np.concatenate(out)


def test_supervectors_are_scaled_map_means(tmp_path) -> None:
    rng = np.random.default_rng(0)
    ubm = _ubm(rng)
    feats = {f"u{i}": rng.normal(0, 2, (50 + 10 * i, 3)).astype(np.float32) for i in range(5)}
    write_store(tmp_path / "f.h5", feats)
    ids = ["u3", "u0", "u4", "u1", "u2"]  # not the store's order: the result follows ids
    got = store_supervectors(ubm, str(tmp_path / "f.h5"), ids, 8.0, batch_size=2)
    want = np.stack([_oracle_supervector(ubm, feats[u].astype(np.float64), 8.0) for u in ids])
    assert got.shape == (5, 12) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # the same numbers on a process engine (workers open the store themselves)
    with ProcessEngine(n_workers=2) as eng:
        par = store_supervectors(ubm, str(tmp_path / "f.h5"), ids, 8.0, engine=eng, batch_size=2)
    np.testing.assert_array_equal(par, got)


def test_supervectors_check_shapes() -> None:
    ubm = _ubm(np.random.default_rng(1))
    with pytest.raises(DataError, match=r"expected zeroth \(n, 4\)"):
        kl_supervectors(ubm, np.ones((2, 3)), np.ones((2, 3, 3)), 16.0)
    with pytest.raises(DataError, match="relevance_factor"):
        kl_supervectors(ubm, np.ones((2, 4)), np.ones((2, 4, 3)), 0.0)


@pytest.mark.parametrize("make", [LogisticRegression, LinearSVC])
def test_span_coordinates_give_the_same_linear_classifier(make) -> None:
    # an L2-regularised linear model's weights lie in the span of its training rows, so
    # training on the span coordinates gives the same decision values (d >> n here)
    rng = np.random.default_rng(2)
    centres = rng.normal(0, 1, (3, 400))
    y = np.repeat(["a", "b", "c"], 8)
    x = centres[np.repeat([0, 1, 2], 8)] + rng.normal(0, 1.5, (24, 400))
    t = centres[[0, 1, 2, 1]] + rng.normal(0, 1.5, (4, 400))
    a, b = span_coordinates(x, t)
    assert a.shape == (24, 24) and b.shape == (4, 24)
    np.testing.assert_allclose(a @ a.T, x @ x.T, rtol=1e-8, atol=1e-8)  # an isometry
    kw = {"C": 0.5, "tol": 1e-10, "max_iter": 100000}
    full, small = make(**kw).fit(x, y), make(**kw).fit(a, y)
    np.testing.assert_allclose(small.decision_function(b), full.decision_function(t), atol=1e-4)


def test_fit_linear_chooses_c_by_leave_one_group_out_accuracy() -> None:
    rng = np.random.default_rng(3)
    y = np.tile(["a", "b", "c"], 12)
    x = rng.normal(0, 1, (36, 5)) + 0.8 * (y[:, None] == np.array(["a", "b", "c", "a", "b"]))
    groups = np.repeat([0, 1, 2, 3], 9)
    grid = (0.01, 1.0, 100.0)
    _, c, scores = fit_linear(x, y, groups, classifier="logistic", c_grid=grid)
    for value in grid:  # oracle: scikit-learn's own cross-validation, pooled over groups
        model = LogisticRegression(C=value, max_iter=2000, random_state=0)
        acc = cross_val_score(model, x, y, groups=groups, cv=LeaveOneGroupOut())
        assert scores[value] == pytest.approx(acc.mean())  # equal-sized groups
    assert scores[c] == max(scores.values())
    assert c == min(v for v, s in scores.items() if s == scores[c])
    # one group: no inner cross-validation possible, the middle of the grid
    assert fit_linear(x, y, np.zeros(36), c_grid=grid)[1:] == (1.0, {})


def test_cosine_classes_and_lda_guard() -> None:
    train = np.array([[1.0, 0.1], [0.9, -0.1], [0.0, 1.0], [0.2, 0.9]])
    y = ["x", "x", "y", "y"]
    got = cosine_classes(train, y, np.array([[5.0, 0.0], [0.1, 3.0], [1.0, 1.2]]))
    # by hand: class means (0.95, 0) and (0.1, 0.95); the last test row is nearer y in angle
    assert list(got) == ["x", "y", "y"]
    with pytest.raises(DataError, match=r"ivector.rank: 5 dimensions but only 4 training"):
        lda_projection(np.random.default_rng(0).normal(size=(4, 5)), y)


def test_an_lda_dim_above_what_the_classes_allow_is_said(caplog) -> None:
    rng = np.random.default_rng(1)
    y = np.repeat(["a", "b", "c"], 10)
    x = rng.normal(size=(30, 6)) + 2.0 * (y[:, None] == np.array(["a", "b", "c"] * 2))
    with caplog.at_level("WARNING", logger="gmmspeech"):
        _, k = lda_projection(x, list(y), lda_dim=5)
    assert k == 2  # 3 classes: 2 directions at most
    assert "backend.lda_dim: 5 directions asked" in caplog.text and "using 2" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="gmmspeech"):
        assert lda_projection(x, list(y), lda_dim=2)[1] == 2
        assert lda_projection(x, list(y))[1] == 2
    assert caplog.text == ""
