"""Pruned posteriors stored sparse (``layout: posteriors``) and the statistics formed from them."""

import json
import math

import h5py
import numpy as np
import pytest

from gmmspeech import DiagGMM
from gmmspeech.cli.main import main
from gmmspeech.errors import DataError, ModelFormatError
from gmmspeech.features.store import write_store
from gmmspeech.ivector.posteriors import POSTERIORS_FORMAT_VERSION
from gmmspeech.ivector.stats import StatsFile, compute_stats, load_task
from gmmspeech.ivector.tv import TotalVariability


def _ubm(k=32, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return DiagGMM(
        rng.dirichlet(np.ones(k)), rng.normal(0, 1.5, (k, d)), rng.uniform(0.5, 2, (k, d))
    )


def _feats(ubm, n=7, seed=1):
    rng = np.random.default_rng(seed)
    return {
        f"utt{i}": ubm.sample(int(rng.integers(30, 90)), 100 + i)[0].astype(np.float32)
        for i in range(n)
    }


def _oracle_posteriors(ubm, x):
    """Float64 posteriors, one frame and one component at a time (no shared kernel)."""
    k, d = ubm.n_components, ubm.n_features
    out = np.zeros((x.shape[0], k))
    for t in range(x.shape[0]):
        logs = []
        for j in range(k):
            s = math.log(ubm.weights[j])
            for i in range(d):
                v, diff = ubm.variances[j, i], float(x[t, i]) - ubm.means[j, i]
                s -= 0.5 * (math.log(2 * math.pi * v) + diff * diff / v)
            logs.append(s)
        top = max(logs)
        e = [math.exp(s - top) for s in logs]
        out[t] = np.array(e) / sum(e)
    return out


def _oracle_stats(ubm, x, min_post):
    """``N`` and centred ``F`` of one utterance, with the posteriors pruned and renormalised
    frame by frame, summed in plain float64 loops."""
    k, d = ubm.n_components, ubm.n_features
    n, f = np.zeros(k), np.zeros((k, d))
    for t, row in enumerate(_oracle_posteriors(ubm, x)):
        best = int(np.argmax(row))
        kept = {j: p for j, p in enumerate(row) if p >= min_post or j == best}
        total = sum(kept.values())
        for j, p in kept.items():
            n[j] += p / total
            for i in range(d):
                f[j, i] += p / total * (float(x[t, i]) - ubm.means[j, i])
    return n, f


def _threshold_in_a_gap(ubm, feats, near=0.025):
    """A ``min_post`` near ``near`` that no posterior comes close to, so that float32
    and float64 posteriors prune the same components."""
    p = np.sort(np.concatenate([_oracle_posteriors(ubm, x).ravel() for x in feats.values()]))
    p = p[(p > near * 0.8) & (p < near * 1.2)]
    gaps = np.diff(p)
    i = int(np.argmax(gaps))
    # float32 posteriors are off by ~1e-7 here: a gap of 2e-5 leaves no doubt
    assert gaps[i] > 2e-5, "no clear gap in the posteriors: change the seed"
    return float((p[i] + p[i + 1]) / 2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("post")
    ubm = _ubm()
    feats = _feats(ubm)
    store = tmp / "feats.h5"
    write_store(store, feats)
    min_post = _threshold_in_a_gap(ubm, feats)
    path = tmp / "stats" / "post.h5"
    path.parent.mkdir()
    src = compute_stats(ubm, store, min_post=min_post, batch_size=3, out=path)
    return ubm, feats, store, min_post, src


def _read(src, batch):
    parts = [load_task(t) for t in src.tasks(batch)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_statistics_from_stored_posteriors_equal_a_float64_oracle(setup):
    ubm, feats, _, min_post, src = setup
    assert src.layout == "posteriors" and src.utt_ids == sorted(feats)
    with h5py.File(src.path, "r") as h:
        assert int(h.attrs["format_version"]) == POSTERIORS_FORMAT_VERSION
        assert h.attrs["min_post"] == min_post
        # the pruning really pruned: fewer than a fifth of the components per frame
        assert h["components"].shape[0] < 0.2 * ubm.n_components * h["counts"].shape[0]
    n, f = _read(src, 2)
    for row, u in enumerate(src.utt_ids):
        want_n, want_f = _oracle_stats(ubm, feats[u], min_post)
        np.testing.assert_allclose(n[row], want_n, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f[row], want_f, rtol=1e-5, atol=1e-5)
        assert n[row].sum() == pytest.approx(len(feats[u]), rel=1e-6)


def test_statistics_from_stored_posteriors_equal_those_computed_directly(setup):
    ubm, feats, _, min_post, src = setup
    direct = compute_stats(ubm, feats, min_post=min_post)
    n, f = _read(src, 4)
    # float32 weights on disk (as Kaldi's): relative differences at float32 resolution
    np.testing.assert_allclose(n, direct.zeroth, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(f, direct.first, rtol=1e-6, atol=1e-6 * np.abs(direct.first).max())
    sub = src.select(["utt5", "utt1"])
    n_sub, f_sub = load_task(sub.tasks(5)[0])
    np.testing.assert_allclose(n_sub, direct.zeroth[[1, 5]], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(f_sub, direct.first[[1, 5]], rtol=1e-6, atol=1e-5)


def test_tv_model_on_stored_posteriors_matches_direct_statistics(setup):
    ubm, feats, _, min_post, src = setup
    direct = compute_stats(ubm, feats, min_post=min_post)
    a = TotalVariability(rank=3, n_iter=2, batch_size=3).fit(src)
    b = TotalVariability(rank=3, n_iter=2, batch_size=3).fit(direct)
    np.testing.assert_allclose(a.T_, b.T_, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.transform(src), b.transform(direct), rtol=1e-5, atol=1e-7)


def test_changed_or_missing_feature_store_is_refused(setup, tmp_path):
    ubm, feats, store, min_post, src = setup
    # a store of the same ids with one utterance's frames changed
    changed = dict(feats)
    changed["utt3"] = feats["utt3"] + np.float32(0.5)
    other = tmp_path / "changed.h5"
    write_store(other, changed)
    with pytest.raises(DataError, match="utt3.*recompute"):
        _read(StatsFile(src.path, features=other), 10)
    fewer = tmp_path / "fewer.h5"
    write_store(fewer, {u: x for u, x in feats.items() if u != "utt4"})
    with pytest.raises(DataError, match="no utterance 'utt4'"):
        _read(StatsFile(src.path, features=fewer), 10)
    with pytest.raises(DataError, match="not there"):
        StatsFile(src.path, features=tmp_path / "nowhere.h5")


def test_workspace_moved_as_a_whole_finds_its_features(setup, tmp_path):
    ubm, feats, store, min_post, src = setup
    moved = tmp_path / "moved"
    (moved / "stats").mkdir(parents=True)
    (moved / "feats.h5").write_bytes(store.read_bytes())
    (moved / "stats" / "post.h5").write_bytes(open(src.path, "rb").read())
    again = StatsFile(moved / "stats" / "post.h5", ubm)
    assert again.features == str((moved / "feats.h5").resolve())
    np.testing.assert_array_equal(_read(again, 3)[1], _read(src, 3)[1])


@pytest.mark.parametrize("name", ["weights", "counts", "offsets", "frame_offsets"])
def test_inconsistent_posteriors_file_is_refused(setup, tmp_path, name):
    ubm, feats, store, min_post, src = setup
    bad = tmp_path / "stats" / "post.h5"
    bad.parent.mkdir()
    bad.write_bytes(open(src.path, "rb").read())
    with h5py.File(bad, "a") as h:
        data = h[name][()]
        del h[name]
        h.create_dataset(name, data=data[:-1] if name != "frame_offsets" else data + 1)
    with pytest.raises(ModelFormatError, match=r"dataset '\w+'"):
        StatsFile(bad, features=store)


def test_bench_ivstats_reports_sizes_timings_and_agreement(tmp_path, capsys):
    ubm = _ubm(k=64, d=8, seed=3)
    rng = np.random.default_rng(4)
    feats = {f"s{i}": ubm.sample(int(rng.integers(150, 250)), i)[0] for i in range(6)}
    write_store(tmp_path / "f.h5", feats)
    ubm.save(tmp_path / "ubm.h5")
    out = tmp_path / "b.json"
    args = ["--features", str(tmp_path / "f.h5"), "--ubm", str(tmp_path / "ubm.h5")]
    args += ["--frames", "60", "--rank", "3", "--repeat", "1", "--json", str(out)]
    assert main(["bench", "ivstats", *args]) == 0
    r = json.loads(out.read_text())
    assert set(r["ratio"]) == {"dense", "sparse", "posteriors"} and r["ratio"]["dense"] == 1
    # 64 x 9 float64 statistics against about 3 x (2 + 4) bytes a frame, 60 frames
    assert r["data_ratio"]["posteriors"] < 0.5 and r["ratio"]["posteriors"] > 0
    assert r["max_rel_diff_f"] < 1e-6 and all(t > 0 for t in r["tv_seconds"].values())
    assert "posteriors" in capsys.readouterr().out
