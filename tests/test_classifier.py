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


# ------------------------------------------------------------------ scikit-learn contract
def test_passes_sklearn_check_estimator() -> None:
    from sklearn.utils.estimator_checks import check_estimator

    # one component: the checks fit on as few as 10 samples and train_ubm asks for 10
    # frames per component; "map" mode (the default) with its UBM, MAP and LLR scoring
    results = check_estimator(GMMClassifier(1), on_fail=None)
    failed = [(r["check_name"], repr(r["exception"])) for r in results if r["status"] == "failed"]
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert failed == []
    # array API needs SCIPY_ARRAY_API; the data-frame variant needs pandas
    assert skipped <= {"check_array_api_input", "check_classifier_data_not_an_array"}


def test_ml_mode_posteriors_match_scipy_oracle() -> None:
    from scipy.special import logsumexp
    from scipy.stats import norm

    xtr, ytr = _data(2, 5, 60)
    xte, _ = _data(3, 3, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = GMMClassifier(1, mode="ml", priors="empirical").fit(xtr, ytr)
    # one Gaussian per class: the ML mean and (population) variance of the class's frames
    ll = np.empty((len(xte), 3))
    for j, label in enumerate(clf.classes_):
        frames = np.concatenate([x for x, y in zip(xtr, ytr, strict=True) if y == label])
        mu, sd = frames.mean(0), frames.std(0)
        ll[:, j] = [norm.logpdf(x, mu, sd).sum() for x in xte]
    logpost = ll + np.log(1.0 / 3) - logsumexp(ll + np.log(1.0 / 3), axis=1, keepdims=True)
    np.testing.assert_allclose(clf.predict_log_proba(xte), logpost, atol=2e-3)
    np.testing.assert_array_equal(clf.predict(xte), clf.classes_[logpost.argmax(1)])


def test_2d_array_is_one_frame_utterances_and_works_in_grid_search() -> None:
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(c, 1.0, (120, 2)) for c in (0.0, 5.0)])
    y = np.repeat(["a", "b"], 120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_rows = GMMClassifier(2).fit(X, y)
        by_list = GMMClassifier(2).fit([x[None, :] for x in X], y)
        np.testing.assert_array_equal(
            by_rows.predict_proba(X[:20]), by_list.predict_proba([x[None] for x in X[:20]])
        )
        proba = by_rows.predict_proba(X)
        np.testing.assert_array_equal(by_rows.predict(X), by_rows.classes_[proba.argmax(1)])
        pipe = make_pipeline(StandardScaler(), GMMClassifier(2))
        search = GridSearchCV(pipe, {"gmmclassifier__relevance_factor": [4.0, 16.0]}, cv=3)
        search.fit(X, y)
    assert search.best_score_ >= 0.95
