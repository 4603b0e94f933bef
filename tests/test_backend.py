"""LDA, WCCN, length normalisation, PLDA and cosine scoring, against independent oracles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg
from scipy.stats import multivariate_normal

from gmmspeech import DataError
from gmmspeech.ivector.backend import LDA, PLDA, WCCN, cosine_score, length_normalize


def _speakers(n_spk=12, per=6, d=4, seed=0):
    """Vectors from a two-covariance model with known B and W."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    b = a @ a.T + np.eye(d)
    c = rng.normal(size=(d, d)) * 0.5
    w = c @ c.T + 0.5 * np.eye(d)
    mu = rng.normal(size=d)
    y = rng.multivariate_normal(np.zeros(d), b, size=n_spk)
    x = np.concatenate(
        [mu + y[s] + rng.multivariate_normal(np.zeros(d), w, size=per) for s in range(n_spk)]
    )
    labels = np.repeat([f"spk{s}" for s in range(n_spk)], per)
    return x, labels, b, w


def _loop_scatters(x, labels):
    mu = x.mean(axis=0)
    sb = np.zeros((x.shape[1],) * 2)
    sw = np.zeros_like(sb)
    for s in np.unique(labels):
        xs = x[labels == s]
        m = xs.mean(axis=0)
        sb += len(xs) * np.outer(m - mu, m - mu)
        for v in xs:
            sw += np.outer(v - m, v - m)
    return sb / len(x), sw / len(x)


def test_lda_solves_the_generalised_eigenproblem():
    x, labels, _, _ = _speakers(d=5)
    lda = LDA(3).fit(x, labels)
    sb, sw = _loop_scatters(x, labels)
    vals, vecs = linalg.eigh(sb, sw)
    np.testing.assert_allclose(lda.eigenvalues_, vals[::-1][:3], rtol=1e-10)
    for j in range(3):
        ref = vecs[:, ::-1][:, j]
        got = lda.scalings_[:, j]
        assert abs(got @ sw @ ref) == pytest.approx(1.0, rel=1e-8)  # same vector up to sign
        np.testing.assert_allclose(sb @ got, vals[::-1][j] * sw @ got, atol=1e-10)
    np.testing.assert_allclose(lda.transform(x), (x - x.mean(axis=0)) @ lda.scalings_, atol=1e-12)


def test_wccn_makes_the_speaker_averaged_within_covariance_identity():
    x, labels, _, _ = _speakers()
    z = WCCN().fit_transform(x, labels)
    w = np.zeros((4, 4))
    spk = np.unique(labels)
    for s in spk:
        zs = z[labels == s]
        w += np.cov(zs.T, bias=True)
    np.testing.assert_allclose(w / len(spk), np.eye(4), atol=1e-10)


def test_length_normalize_and_cosine():
    rng = np.random.default_rng(1)
    e, t = rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
    np.testing.assert_allclose(np.linalg.norm(length_normalize(t), axis=1), 1.0)
    got = cosine_score(e, t)
    for i in range(3):
        for j in range(4):
            want = e[i] @ t[j] / np.linalg.norm(e[i]) / np.linalg.norm(t[j])
            assert got[i, j] == pytest.approx(want, rel=1e-12)
    multi = cosine_score([e[:2]], t)[0]
    avg = e[0] / np.linalg.norm(e[0]) + e[1] / np.linalg.norm(e[1])
    np.testing.assert_allclose(multi, t @ avg / np.linalg.norm(avg) / np.linalg.norm(t, axis=1))
    with pytest.raises(DataError, match="all zeros"):
        length_normalize(np.zeros((1, 3)))


def _joint_llr(plda, enrol, test):
    """log N([e_1..e_n, t]; same speaker) - log N([e_1..e_n]) - log N(t), by scipy."""
    b, w, mu = plda.between_, plda.within_, plda.mean_
    n = len(enrol)

    def joint_cov(m):
        return np.kron(np.ones((m, m)), b) + np.kron(np.eye(m), w)

    allv = np.concatenate([*enrol, test]) - np.tile(mu, n + 1)
    same = multivariate_normal.logpdf(allv, cov=joint_cov(n + 1))
    enr = multivariate_normal.logpdf(allv[: -len(mu)], cov=joint_cov(n))
    alone = multivariate_normal.logpdf(test - mu, cov=b + w)
    return same - enr - alone


def test_plda_llr_is_the_joint_gaussian_ratio():
    x, labels, _, _ = _speakers()
    plda = PLDA(n_iter=5).fit(x, labels)
    rng = np.random.default_rng(7)
    enrol, test = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    got = plda.score(enrol, test)
    assert got.shape == (3, 5)
    for i in range(3):
        for j in range(5):
            assert got[i, j] == pytest.approx(_joint_llr(plda, [enrol[i]], test[j]), rel=1e-9)
    # a three-vector enrolment is scored exactly, not by averaging
    multi = plda.score([enrol, enrol[:1]], test)
    for j in range(5):
        assert multi[0, j] == pytest.approx(_joint_llr(plda, list(enrol), test[j]), rel=1e-9)
        assert multi[1, j] == pytest.approx(got[0, j], rel=1e-12)


def test_plda_em_increases_the_exact_likelihood_and_recovers_b_and_w():
    x, labels, b, w = _speakers(n_spk=300, per=8, seed=3)
    plda = PLDA(n_iter=15).fit(x, labels)
    ll = plda.history_
    assert all(q >= p - 1e-9 * abs(p) for p, q in zip(ll, ll[1:], strict=False))
    # log_likelihood equals the joint Gaussian of each speaker's vectors (scipy)
    spk = np.unique(labels)[:4]
    groups = [np.flatnonzero(labels == s) for s in spk]
    want = 0.0
    for g in groups:
        m = len(g)
        cov = np.kron(np.ones((m, m)), plda.between_) + np.kron(np.eye(m), plda.within_)
        want += multivariate_normal.logpdf((x[g] - plda.mean_).ravel(), cov=cov)
    assert plda.log_likelihood(x, groups) == pytest.approx(want, rel=1e-10)
    np.testing.assert_allclose(plda.within_, w, atol=0.15 * np.abs(w).max())
    np.testing.assert_allclose(plda.between_, b, atol=0.3 * np.abs(b).max())


@pytest.mark.parametrize("model", [LDA(1), WCCN(), PLDA()])
def test_a_speaker_with_one_utterance_is_a_clear_error(model):
    x, labels, _, _ = _speakers()
    labels = labels.astype(object)
    labels[0] = "lonely"
    with pytest.raises(DataError, match=r"1 of 13 speakers have a single utterance \('lonely'\)"):
        model.fit(x, labels)


def test_plda_em_reaches_a_likelihood_maximum():
    x, labels, _, _ = _speakers(n_spk=200, per=5, seed=4)
    plda = PLDA(n_iter=60).fit(x, labels)
    groups = [np.flatnonzero(labels == s) for s in np.unique(labels)]
    best = plda.log_likelihood(x, groups)
    b, w = plda.between_.copy(), plda.within_.copy()
    for scale_b, scale_w in [(1.03, 1), (0.97, 1), (1, 1.03), (1, 0.97)]:
        plda.between_, plda.within_ = b * scale_b, w * scale_w
        assert plda.log_likelihood(x, groups) < best


def test_plda_with_fewer_speakers_than_dimensions_says_to_use_lda():
    x, labels, _, _ = _speakers(n_spk=4, per=5, d=6)
    with pytest.raises(DataError, match="reduce the dimension with LDA"):
        PLDA().fit(x, labels)
    PLDA().fit(LDA(3).fit_transform(x, labels), labels)
