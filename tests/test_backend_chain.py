"""The i-vector back end as a chain: LDA, WCCN, centring, length normalisation, then PLDA.

Each step is tested on its own elsewhere; these tests compose the same steps by hand (numpy and
scipy, float64) and check that :class:`gmmspeech.Backend` applies every one of them, in order,
in ``fit`` and in ``transform`` alike. The PLDA score is checked against the joint Gaussian of
the enrolment and test vectors evaluated with :mod:`scipy.stats`.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.stats import multivariate_normal

from gmmspeech import Backend
from gmmspeech.config.ivector import BackendConfig


def _speakers(rng: np.random.Generator, n_spk: int, dim: int) -> tuple:
    # correlated, unequal scales and unequal utterance counts: after LDA the pooled
    # within-speaker covariance is white, but WCCN's speaker-averaged one is not
    mix = rng.normal(size=(dim, dim))
    per = rng.integers(2, 12, size=n_spk)
    means = rng.normal(scale=2.0, size=(n_spk, dim))
    x = (
        np.concatenate(
            [
                m + rng.normal(size=(k, dim)) @ mix * (1 + i % 3)
                for i, (m, k) in enumerate(zip(means, per, strict=True))
            ]
        )
        + 3.0
    )
    y = np.repeat([f"s{i:02d}" for i in range(n_spk)], per)
    return x, y


def _by_hand(
    train: np.ndarray, y: np.ndarray, other: np.ndarray, lda_dim: int | None
) -> np.ndarray:
    """[LDA ->] WCCN -> centre -> length norm fitted on ``train``, applied to ``other``."""
    spk = sorted(set(y))
    mu = train.mean(axis=0)
    d = train.shape[1]
    z_train, z_other = train, other
    if lda_dim is not None:
        sb, sw = np.zeros((d, d)), np.zeros((d, d))
        for s in spk:
            xs = train[y == s]
            ms = xs.mean(axis=0)
            sb += len(xs) * np.outer(ms - mu, ms - mu)
            sw += (xs - ms).T @ (xs - ms)
        _, vecs = scipy.linalg.eigh(sb / len(train), sw / len(train))
        lda = vecs[:, ::-1][:, :lda_dim]
        z_train, z_other = (train - mu) @ lda, (other - mu) @ lda
        d = lda_dim

    w = np.zeros((d, d))
    for s in spk:
        zs = z_train[y == s]
        w += np.cov(zs.T, bias=True)
    b = np.linalg.cholesky(np.linalg.inv(w / len(spk)))
    z_train, z_other = z_train @ b, z_other @ b

    centre = z_train.mean(axis=0)
    z = z_other - centre
    return z / np.linalg.norm(z, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data() -> tuple:
    rng = np.random.default_rng(7)
    x, y = _speakers(rng, n_spk=30, dim=12)
    test, _ = _speakers(rng, n_spk=3, dim=12)
    return x, y, test


def test_transform_applies_lda_wccn_centring_and_length_norm(data: tuple) -> None:
    x, y, test = data
    be = Backend(BackendConfig(lda_dim=6, wccn=True, length_norm=True, scorer="plda")).fit(x, y)
    got = be.transform(test)
    want = _by_hand(x, y, test, lda_dim=6)
    # eigenvectors are defined up to sign, which WCCN and length norm carry as an orthogonal
    # change of basis: compare the Gram matrices (inner products between the test vectors)
    np.testing.assert_allclose(got @ got.T, want @ want.T, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("lda_dim", [None, 6])
def test_wccn_without_lda_and_after_it(data: tuple, lda_dim: int | None) -> None:
    x, y, test = data
    be = Backend(BackendConfig(lda_dim=lda_dim, wccn=True, scorer="cosine")).fit(x, y)
    got = be.transform(test)
    want = _by_hand(x, y, test, lda_dim=lda_dim)
    np.testing.assert_allclose(got @ got.T, want @ want.T, atol=1e-9)


def test_the_chain_without_wccn_differs(data: tuple) -> None:
    # the oracle must see a missing step: without WCCN the Gram matrices disagree
    x, y, test = data
    be = Backend(BackendConfig(lda_dim=6, wccn=False, length_norm=True, scorer="plda")).fit(x, y)
    got = be.transform(test)
    want = _by_hand(x, y, test, lda_dim=6)
    assert np.abs(got @ got.T - want @ want.T).max() > 1e-3


def _joint_llr(enrol: np.ndarray, t: np.ndarray, mean: np.ndarray, b: np.ndarray, w: np.ndarray):
    """log p(enrol, t | one speaker) - log p(enrol | one speaker) - log p(t), by scipy."""

    def joint(v: np.ndarray) -> float:
        n, d = v.shape
        cov = np.kron(np.ones((n, n)), b) + np.kron(np.eye(n), w)
        return float(multivariate_normal(np.tile(mean, n), cov).logpdf(v.ravel()))

    return joint(np.vstack([enrol, t[None, :]])) - joint(enrol) - joint(t[None, :])


def test_plda_scores_are_the_joint_gaussian_llr_of_the_transformed_vectors(data: tuple) -> None:
    x, y, test = data
    be = Backend(BackendConfig(lda_dim=6, wccn=True, length_norm=True, scorer="plda")).fit(x, y)
    enrol = [test[0:3], test[3:4]]  # a three-vector model and a one-vector model
    scores = be.score(enrol, test[4:9])
    p = be.plda_
    assert p is not None
    for i, e in enumerate(enrol):
        te = be.transform(e)
        for j, t in enumerate(be.transform(test[4:9])):
            want = _joint_llr(te, t, p.mean_, p.between_, p.within_)
            assert scores[i, j] == pytest.approx(want, abs=1e-7)


def test_cosine_scores_use_the_same_chain(data: tuple) -> None:
    x, y, test = data
    be = Backend(BackendConfig(lda_dim=6, wccn=True, length_norm=True, scorer="cosine")).fit(x, y)
    scores = be.score([test[0:1], test[1:2]], test[2:6])
    want = _by_hand(x, y, test, lda_dim=6)
    np.testing.assert_allclose(scores, want[0:2] @ want[2:6].T, atol=1e-9)
