"""Gaussian selection in UBM training: the numba kernel against naive float64 loops, the
carried selections, the objective, and the dense path unchanged."""

import numpy as np
import pytest

from gmmspeech import DiagGMM, train_ubm
from gmmspeech.config.sections import UBMConfig
from gmmspeech.errors import ConfigError
from gmmspeech.mixture import selection as sel_mod
from gmmspeech.mixture.em import em_step, split_components, split_order, split_plan
from gmmspeech.mixture.selection import (
    N_PARTS,
    accumulate_candidates,
    expand_candidates,
    selection_quality,
    top_rows,
)
from gmmspeech.mixture.stats import accumulate, accumulate_selecting


def _random_model(k, d, rng):
    w = rng.dirichlet(np.ones(k))
    mu = rng.normal(0, 2, (k, d)) + 10.0  # off zero: the shift matters
    var = rng.uniform(0.3, 2.0, (k, d))
    return DiagGMM(w, mu, var)


def _naive(gmm, x, cand, min_post=0.0):
    """Float64 loop, written from the equations: restricted posteriors and statistics (the
    posteriors below ``min_post`` left out, the rest renormalised)."""
    k, d = gmm.n_components, gmm.n_features
    c = gmm.center
    zeroth, first, second, ll = np.zeros(k), np.zeros((k, d)), np.zeros((k, d)), 0.0
    logp_all = []
    for t in range(x.shape[0]):
        xt = x[t].astype(np.float64)
        ks = [int(j) for j in cand[t] if j >= 0]
        lp = []
        for j in ks:
            var = gmm.variances[j]
            lp.append(
                np.log(gmm.weights[j])
                - 0.5 * np.sum(np.log(2 * np.pi * var) + (xt - gmm.means[j]) ** 2 / var)
            )
        lp = np.array(lp)
        logp_all.append(dict(zip(ks, lp, strict=True)))
        m = lp.max()
        post = np.exp(lp - m) / np.exp(lp - m).sum()
        ll += m + np.log(np.exp(lp - m).sum())
        post = np.where(post >= min_post, post, 0.0)
        post /= post.sum()
        for j, g in zip(ks, post, strict=True):
            zeroth[j] += g
            first[j] += g * (xt - c)
            second[j] += g * (xt - c) ** 2
    return zeroth, first, second, ll, logp_all


def test_kernel_accumulators_match_a_naive_float64_loop():
    rng = np.random.default_rng(0)
    k, d, n, s = 40, 5, 300, 7
    gmm = _random_model(k, d, rng)
    x, _ = gmm.sample(n, rng)
    x = x.astype(np.float32)
    cand = np.stack([rng.choice(k, s, replace=False) for _ in range(n)]).astype(np.int16)
    cand[::5, -2:] = -1  # empty slots
    acc = np.zeros((N_PARTS, k, 2 * d + 1))
    ll, keep = accumulate_candidates(gmm, x, cand, acc, n_keep=3)
    zeroth, first, second, ll_ref, logp = _naive(gmm, x, cand)
    a = acc.sum(axis=0)
    # the kernel's distances are float32 (as the dense E-step's): about 1e-7 relative
    np.testing.assert_allclose(a[:, 2 * d], zeroth, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(a[:, :d], first, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a[:, d : 2 * d], second, rtol=1e-5, atol=1e-6)
    assert ll == pytest.approx(ll_ref, rel=1e-7)
    for t in range(n):  # the kept ones: the 3 best candidates, best first
        ref = sorted(logp[t], key=lambda j: -logp[t][j])[:3]
        assert keep[t].tolist() == ref
    # the counts add to the number of frames
    assert a[:, 2 * d].sum() == pytest.approx(n)


def test_kernel_leaves_out_small_posteriors_and_renormalises():
    rng = np.random.default_rng(10)
    k, d, n = 30, 3, 400
    gmm = _random_model(k, d, rng)
    x = gmm.sample(n, rng)[0].astype(np.float32)
    cand = np.stack([rng.choice(k, 12, replace=False) for _ in range(n)]).astype(np.int16)
    acc = np.zeros((N_PARTS, k, 2 * d + 1))
    ll, _ = accumulate_candidates(gmm, x, cand, acc, min_post=0.05)
    zeroth, first, _, ll_ref, _ = _naive(gmm, x, cand, min_post=0.05)
    full = _naive(gmm, x, cand)[0]
    a = acc.sum(axis=0)
    assert np.abs(zeroth - full).max() > 0.1  # the threshold bites here
    np.testing.assert_allclose(a[:, 2 * d], zeroth, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(a[:, :d], first, rtol=1e-5, atol=1e-6)
    assert a[:, 2 * d].sum() == pytest.approx(n)  # renormalised
    assert ll == pytest.approx(ll_ref, rel=1e-7)  # every candidate is in the likelihood


def test_kernel_accumulates_into_the_given_sums():
    rng = np.random.default_rng(1)
    gmm = _random_model(8, 3, rng)
    x = gmm.sample(100, rng)[0].astype(np.float32)
    cand = np.tile(np.arange(8, dtype=np.int16), (100, 1))
    acc = np.zeros((N_PARTS, 8, 7))
    accumulate_candidates(gmm, x, cand, acc)
    once = acc.copy()
    accumulate_candidates(gmm, x, cand, acc)
    np.testing.assert_allclose(acc, 2 * once)
    # with every component a candidate the statistics are the dense ones
    dense = accumulate(gmm, x)
    np.testing.assert_allclose(once.sum(0)[:, 6], dense.zeroth, rtol=1e-5, atol=1e-6)


def test_accumulate_selecting_equals_accumulate_and_selects_the_best():
    rng = np.random.default_rng(2)
    gmm = _random_model(50, 4, rng)
    x = gmm.sample(500, rng)[0]
    st, sel = accumulate_selecting(gmm, x, 6, chunk_size=128)
    st2, sel2 = accumulate_selecting(
        gmm, x, 6, chunk_size=128, top=lambda lp, c: top_rows(lp, c)[0]
    )
    ref = accumulate(gmm, x, chunk_size=128)
    np.testing.assert_array_equal(st2.zeroth, ref.zeroth)
    np.testing.assert_array_equal(np.sort(sel2, axis=1), np.sort(sel, axis=1))
    np.testing.assert_array_equal(st.zeroth, ref.zeroth)
    np.testing.assert_array_equal(st.second, ref.second)
    assert st.log_likelihood == ref.log_likelihood
    logp = gmm.component_log_likelihoods(x)
    best = np.sort(np.argsort(-logp, axis=1)[:, :6], axis=1)
    np.testing.assert_array_equal(np.sort(sel, axis=1), best)


def test_expand_candidates_adds_children():
    sel = np.array([[0, 2, -1], [1, 3, 0]], dtype=np.int16)
    children = np.array([4, -1, 5, -1])
    out = expand_candidates(sel, children)
    assert out.tolist() == [[0, 2, -1, 4, 5, -1], [1, 3, 0, -1, -1, 4]]


def test_expand_candidates_with_several_children_and_moved_components():
    # component 3 was re-seeded by splitting 0, which also gets child 4 from a split
    sel = np.array([[0, 3, 2], [3, 1, -1]], dtype=np.int16)
    children = np.array([[4, 3], [-1, -1], [5, -1], [-1, -1]])
    out = expand_candidates(sel, children, dropped=np.array([3]))
    assert out.tolist() == [[0, -1, 2, 4, -1, 5, 3, -1, -1], [-1, 1, -1, -1, -1, -1, -1, -1, -1]]
    for row in out:  # no frame holds a component twice
        got = row[row >= 0]
        assert len(got) == len(set(got.tolist()))


def test_estimate_reports_its_reseedings_and_is_unchanged_by_asking():
    from gmmspeech.mixture.em import estimate
    from gmmspeech.mixture.stats import SufficientStats

    rng = np.random.default_rng(11)
    gmm = _random_model(6, 2, rng)
    st = accumulate(gmm, gmm.sample(500, rng)[0])
    st = SufficientStats(st.zeroth.copy(), st.first, st.second, st.shift, st.log_likelihood, 500)
    st.zeroth[[1, 4]] = 0.5  # two dead components
    opts = dict(var_floor=np.full(2, 1e-3), min_count=2.0, min_weight=1e-5, split_epsilon=0.5)
    pairs: list = []
    with_pairs = estimate(st, reseeded=pairs, **opts)
    plain = estimate(st, **opts)
    for a, b in zip(with_pairs, plain, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [d for _, d in pairs] == [1, 4]
    # the first is split off a live component; a later one may be split off an earlier
    # re-seeded one (which the trainer resolves to that one's parent)
    assert pairs[0][0] not in (1, 4) and pairs[1][0] != 4
    assert (with_pairs[0][[1, 4]] > 0).all()


def test_split_order_is_the_split():
    rng = np.random.default_rng(3)
    gmm = _random_model(6, 2, rng)
    order = split_order(gmm, 3)
    grown = split_components(gmm, 3, 0.5)
    for j, src in enumerate(order):
        assert grown.weights[6 + j] == pytest.approx(gmm.weights[src] / 2)


def _speechlike(n=30000, d=6, seed=0):
    """Frames from a broad 64-bump mixture: posteriors overlap, as in speech."""
    rng = np.random.default_rng(seed)
    true = DiagGMM(
        rng.dirichlet(np.ones(64) * 2), rng.normal(0, 1.5, (64, d)), rng.uniform(0.3, 1, (64, d))
    )
    return true.sample(n, rng)[0]


@pytest.fixture(scope="module")
def ubms(monkeypatch_module):
    # select from 64 components on, so that the test stays small
    monkeypatch_module.setattr(sel_mod, "AUTO_MIN_COMPONENTS", 64)
    import gmmspeech.mixture.ubm as ubm_mod

    monkeypatch_module.setattr(ubm_mod, "AUTO_MIN_COMPONENTS", 64)
    x = _speechlike()
    opts = dict(iterations_per_stage=(2, 2, 2, 2, 2, 4), final_max_iterations=6)
    # auto on short utterances: streamed in packed blocks that share a buffer, as a store
    utts = np.array_split(x[:25000], 500)
    auto = train_ubm(utts, 256, selection="auto", progress=False, **opts)
    dense = train_ubm(x[:25000], 256, selection="dense", progress=False, **opts)
    return x, auto, dense


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_selected_em_never_decreases_its_objective_within_a_selection(ubms):
    _, auto, _ = ubms
    h = auto.history_
    modes = [e.get("selection") for e in h]
    assert {"dense", "expand", "reuse"} <= set(modes)
    pairs = 0
    for a, b in zip(h, h[1:], strict=False):
        # a reuse pass keeps the previous pass's selection: the objective is that of the
        # mixture restricted to it, which EM cannot decrease (no repair in between)
        if b.get("selection") == "reuse" and a.get("selection") == "reuse" and not a["n_repairs"]:
            assert b["log_likelihood"] >= a["log_likelihood"] - 1e-9 * abs(a["log_likelihood"])
            pairs += 1
    assert pairs >= 5


def test_selected_ubm_is_close_to_dense_on_held_out_frames(ubms):
    x, auto, dense = ubms
    held = x[25000:]
    assert np.isfinite(auto.means).all() and np.isfinite(auto.variances).all()
    assert abs(auto.score(held) - dense.score(held)) < 0.05
    # the run reported the mass its last selections kept: most of it
    last = auto.history_[-1]
    assert last["selection_mass_mean"] > 0.99 and last["selection_top5"] > 0.9


def test_selection_quality_against_dense_posteriors():
    rng = np.random.default_rng(5)
    gmm = _random_model(30, 2, rng)
    x = gmm.sample(400, rng)[0]
    best = np.argmax(gmm.component_log_likelihoods(x), axis=1)
    sel = np.stack(  # the best component and 5 others, so some selections hold the top 2
        [[b, *rng.choice(np.delete(np.arange(30), b), 5, replace=False)] for b in best]
    ).astype(np.int16)
    mass, top2 = selection_quality(gmm, x, sel, top=2)
    post = gmm.posteriors(x)
    ref = np.array([post[t, np.unique(sel[t])].sum() for t in range(400)])
    np.testing.assert_allclose(mass, ref, rtol=1e-5, atol=1e-6)
    order = np.argsort(-gmm.component_log_likelihoods(x).astype(np.float64), axis=1)[:, :2]
    ref_top = np.mean([set(order[t]) <= set(sel[t].tolist()) for t in range(400)])
    assert top2 == pytest.approx(ref_top)


def test_dense_training_is_the_schedule_of_em_steps():
    """``selection="dense"`` is plain EM: the same model as splitting and em_step by hand."""
    x = _speechlike(4000, 3, seed=4)
    cfg = UBMConfig(
        n_components=8, iterations_per_stage=(2,), final_max_iterations=0, selection="dense"
    )
    got = train_ubm(x, config=cfg, progress=False)
    from gmmspeech.mixture.em import floor_scale, variance_floor

    x32 = x.astype(np.float32)
    floor = variance_floor(floor_scale(x32.astype(np.float64).var(0), x32)[0], 1e-2)
    gmm = DiagGMM([1.0], x32.astype(np.float64).mean(0)[None], np.maximum(x.var(0), floor)[None])
    gmm.var_floor = floor
    gmm = em_step(gmm, x32, config=cfg)
    for size in split_plan(8)[1:]:
        gmm = split_components(gmm, size - gmm.n_components, cfg.split_epsilon)
        for _ in range(2):
            gmm = em_step(gmm, x32, config=cfg)
    np.testing.assert_allclose(got.means, gmm.means, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got.variances, gmm.variances, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.weights, gmm.weights, rtol=1e-9)


def test_selection_option_is_checked():
    with pytest.raises(ConfigError, match="selection"):
        UBMConfig(selection="sparse")


def test_top_rows_matches_a_full_sort():
    rng = np.random.default_rng(6)
    logp = rng.normal(size=(200, 97)).astype(np.float32)
    for c in (1, 5, 97):
        idx, vals = top_rows(logp, c)
        ref = np.argsort(-logp, axis=1, kind="stable")[:, :c]
        np.testing.assert_array_equal(idx, ref)
        np.testing.assert_array_equal(vals, np.take_along_axis(logp, ref, axis=1))


def test_selected_training_is_the_same_on_a_process_engine(monkeypatch):
    import gmmspeech.mixture.ubm as ubm_mod
    from gmmspeech import ProcessEngine

    monkeypatch.setattr(ubm_mod, "AUTO_MIN_COMPONENTS", 64)
    x = _speechlike(12000, 4, seed=7)
    opts = dict(iterations_per_stage=(1, 1, 1, 1, 1, 2), final_max_iterations=2, shard_frames=4000)
    opts["selection"] = "auto"
    local = train_ubm(x, 128, progress=False, **opts)
    with ProcessEngine(2) as eng:
        procs = train_ubm(x, 128, progress=False, engine=eng, **opts)
    assert local.history_[-1].get("selection") == "reuse"
    np.testing.assert_allclose(procs.means, local.means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(procs.weights, local.weights, rtol=1e-12)


def test_a_reseeding_is_followed_without_a_dense_pass(ubms):
    """The selection is made densely once; splits and re-seedings expand it."""
    _, auto, _ = ubms
    h = [e for e in auto.history_ if "selection" in e]
    assert [e["selection"] for e in h].count("dense") == 1
    repaired = [i for i, e in enumerate(h[:-1]) if e["n_repairs"]]
    assert repaired  # the fixture re-seeds: the test sees the case
    for i in repaired:
        assert h[i + 1]["selection"] == "expand"


def test_a_candidate_listed_twice_counts_once():
    rng = np.random.default_rng(12)
    gmm = _random_model(10, 2, rng)
    x = gmm.sample(50, rng)[0].astype(np.float32)
    cand = np.stack([rng.choice(10, 4, replace=False) for _ in range(50)]).astype(np.int16)
    twice = np.concatenate([cand, cand[:, :2]], axis=1)
    a1, a2 = np.zeros((N_PARTS, 10, 5)), np.zeros((N_PARTS, 10, 5))
    ll1, keep1 = accumulate_candidates(gmm, x, cand, a1, n_keep=3)
    ll2, keep2 = accumulate_candidates(gmm, x, twice, a2, n_keep=3)
    assert ll1 == ll2
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(keep1, keep2)


def test_selected_passes_see_the_frames_of_sources_that_reuse_a_buffer():
    """A list of utterances (as a feature store) is handed out in packed blocks that share
    one buffer: the carried selections must still line up with their frames."""
    from gmmspeech.features.framesource import as_source
    from gmmspeech.mixture.selection import SelectionPass, accumulate_selected_shard

    rng = np.random.default_rng(13)
    gmm = _random_model(64, 3, rng)
    x = gmm.sample(6000, rng)[0].astype(np.float32)
    utts = np.array_split(x, 300)  # short utterances, packed into 256-frame blocks
    shard = as_source(utts).shards(10**6)[0]
    _, sel = accumulate_selected_shard((shard, None), SelectionPass(gmm, 256, "dense", 16))
    reuse, _ = accumulate_selected_shard((shard, sel), SelectionPass(gmm, 256, "reuse", 16))
    ref, _ = accumulate_selected_shard(
        (as_source(x).shards(10**6)[0], sel), SelectionPass(gmm, 256, "reuse", 16)
    )
    assert reuse.log_likelihood == pytest.approx(ref.log_likelihood, rel=1e-9)
    np.testing.assert_allclose(reuse.zeroth, ref.zeroth, rtol=1e-9, atol=1e-9)
    # the 16 best of 64 keep most of each frame's likelihood
    dense = accumulate(gmm, x)
    assert reuse.log_likelihood / 6000 > dense.log_likelihood / 6000 - 0.05
