"""Pruned posteriors for i-vector statistics (min_post) and their sparse stats files."""

import numpy as np
import pytest

from gmmspeech import DiagGMM
from gmmspeech.errors import DataError
from gmmspeech.ivector.stats import StatsFile, compute_stats, load_task, utterance_stats


def _ubm(k=16, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return DiagGMM(rng.dirichlet(np.ones(k)), rng.normal(0, 2, (k, d)), rng.uniform(0.5, 2, (k, d)))


def test_min_post_prunes_and_renormalises_like_the_equations():
    ubm = _ubm()
    x = ubm.sample(200, 1)[0]
    got = utterance_stats(ubm, x, min_post=0.1)
    # naive: dense posteriors from scipy-free float64 densities, pruned per frame
    lp = np.log(ubm.weights) - 0.5 * (
        np.log(2 * np.pi * ubm.variances).sum(1)
        + (((x[:, None, :] - ubm.means) ** 2) / ubm.variances).sum(2)
    )
    post = np.exp(lp - lp.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    keep = (post >= 0.1) | (post == post.max(1, keepdims=True))
    g = post * keep
    g /= g.sum(1, keepdims=True)
    n = g.sum(0)
    np.testing.assert_allclose(got.zeroth, n, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(got.first, g.T @ x - n[:, None] * ubm.means, rtol=1e-5, atol=1e-6)
    assert got.zeroth.sum() == pytest.approx(200)
    assert (got.zeroth == 0).any()  # something was pruned away entirely


def test_sparse_file_reads_back_the_pruned_statistics(tmp_path):
    ubm = _ubm(k=64)
    rng = np.random.default_rng(2)
    feats = {f"u{i}": ubm.sample(int(rng.integers(20, 80)), i)[0] for i in range(9)}
    mem = compute_stats(ubm, feats, min_post=0.025, batch_size=4)
    path = tmp_path / "stats.h5"
    f = compute_stats(ubm, feats, min_post=0.025, batch_size=4, out=path)
    assert isinstance(f, StatsFile) and f.sparse and len(f) == 9
    n = np.concatenate([load_task(t)[0] for t in f.tasks(2)])
    first = np.concatenate([load_task(t)[1] for t in f.tasks(2)])
    np.testing.assert_array_equal(n, mem.zeroth)
    np.testing.assert_array_equal(first, mem.first)
    sub = f.select(["u3", "u7"])
    n_sub, f_sub = load_task(sub.tasks(5)[0])
    np.testing.assert_array_equal(n_sub, mem.zeroth[[3, 7]])
    np.testing.assert_array_equal(f_sub, mem.first[[3, 7]])
    dense = compute_stats(ubm, feats, batch_size=4, out=tmp_path / "dense.h5")
    assert not dense.sparse


@pytest.mark.parametrize("bad", [0, 1.0, -0.1, "x", True])
def test_min_post_is_checked(bad):
    with pytest.raises(DataError, match="min_post"):
        utterance_stats(_ubm(), np.zeros((3, 3)), min_post=bad)
