"""GMMClassifier on well-separated synthetic classes, both modes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gmmspeech import DataError, GMMClassifier


def _data(seed: int, n_per_class: int, frames: int):
    rng = np.random.default_rng(seed)
    centres = {"hum": [0.0, 0.0, 0.0], "buzz": [4.0, 0.0, 0.0], "click": [0.0, -4.0, 2.0]}
    xs, ys = [], []
    for label, c in centres.items():
        for _ in range(n_per_class):
            # each class a two-bump mixture around its centre
            x = rng.normal(c, 1.0, (frames, 3))
            x[: frames // 2, 2] += 1.5
            xs.append(x)
            ys.append(label)
    return xs, ys


@pytest.mark.parametrize(("mode", "top_c"), [("map", None), ("map", 2), ("ml", None)])
def test_accuracy_on_separated_classes(mode: str, top_c: int | None) -> None:
    xtr, ytr = _data(0, 6, 60)
    xte, yte = _data(1, 10, 25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = GMMClassifier(4, mode=mode, top_c=top_c).fit(xtr, ytr)
    assert sorted(clf.classes_.tolist()) == ["buzz", "click", "hum"]
    assert clf.score(xte, yte) >= 0.95
    lp = clf.predict_log_proba(xte)
    assert lp.shape == (30, 3)
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, atol=1e-9)
    # posteriors follow the class log-likelihoods (uniform priors)
    ll = clf.log_likelihoods(xte[:3])
    ref = (
        ll
        - np.log(np.exp(ll - ll.max(1, keepdims=True)).sum(1, keepdims=True))
        - ll.max(1, keepdims=True)
    )
    np.testing.assert_allclose(lp[:3], ref, atol=1e-9)


def test_ml_mode_class_model_is_fitted_to_its_class() -> None:
    xtr, ytr = _data(0, 4, 80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = GMMClassifier(2, mode="ml").fit(xtr, ytr)
    for label, model in zip(clf.classes_, clf.models_, strict=True):
        frames = np.concatenate([x for x, y in zip(xtr, ytr, strict=True) if y == label])
        np.testing.assert_allclose(model.weights @ model.means, frames.mean(0), atol=0.05)


def test_errors() -> None:
    xtr, ytr = _data(0, 2, 20)
    with pytest.raises(DataError, match="mode"):
        GMMClassifier(2, mode="svm").fit(xtr, ytr)
    with pytest.raises(DataError, match="list"):
        GMMClassifier(2).fit(np.zeros((10, 3)), ["a"])
    with pytest.raises(DataError, match="fit"):
        GMMClassifier(2).predict(xtr)
