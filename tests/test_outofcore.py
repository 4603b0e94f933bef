import numpy as np
import pytest

from gmmspeech import DataError, DiagGMM, FeatureStore, ProcessEngine, train_ubm
from gmmspeech.config.sections import FeatureConfig, to_dict
from gmmspeech.features.store import write_store

OPTS = dict(iterations_per_stage=(2,), final_max_iterations=2, progress=False, shard_frames=2500)


@pytest.fixture(scope="module")
def store_and_arrays(tmp_path_factory):
    rng = np.random.default_rng(0)
    truth = DiagGMM(
        rng.dirichlet(np.ones(6)), rng.normal(size=(6, 4)) * 3, rng.uniform(0.5, 2, (6, 4))
    )
    utts = {}
    for i in range(40):
        n = int(rng.integers(50, 600))
        utts[f"spk{i % 7}-utt{i:03d}"] = truth.sample(n, random_state=i)[0].astype(np.float32)
    path = tmp_path_factory.mktemp("store") / "feats.h5"
    cfg = FeatureConfig()
    write_store(path, utts, cfg)
    ordered = [utts[k] for k in sorted(utts)]
    return path, ordered, cfg


def assert_identical(a, b):
    for name in ("weights", "means", "variances"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_streaming_equals_in_memory(store_and_arrays):
    path, arrays, cfg = store_and_arrays
    with FeatureStore(path) as store:
        streamed = train_ubm(store, 8, **OPTS)
    in_memory = train_ubm(arrays, 8, **OPTS)
    assert_identical(streamed, in_memory)
    assert streamed.feature_config == to_dict(cfg)
    assert streamed.config["n_frames"] == sum(a.shape[0] for a in arrays)


def test_streaming_with_every_kth_frame(store_and_arrays):
    path, arrays, _ = store_and_arrays
    with FeatureStore(path) as store:
        streamed = train_ubm(store, 8, subsample_every=3, **OPTS)
    in_memory = train_ubm([a[::3] for a in arrays], 8, **OPTS)
    assert_identical(streamed, in_memory)
    assert streamed.config["n_frames"] == sum(len(a[::3]) for a in arrays)


def test_streaming_with_random_fraction_is_seeded(store_and_arrays):
    path, arrays, _ = store_and_arrays
    total = sum(a.shape[0] for a in arrays)
    with FeatureStore(path) as store:
        a = train_ubm(store, 4, subsample_fraction=0.3, random_state=5, **OPTS)
        b = train_ubm(store, 4, subsample_fraction=0.3, random_state=5, **OPTS)
        c = train_ubm(store, 4, subsample_fraction=0.3, random_state=6, **OPTS)
    assert_identical(a, b)
    assert not np.array_equal(a.means, c.means)
    assert abs(a.config["n_frames"] / total - 0.3) < 0.02


def test_views_and_several_stores(store_and_arrays, tmp_path):
    path, arrays, cfg = store_and_arrays
    with FeatureStore(path) as store:
        ids = sorted(store)
        first, second = store.select(ids[:25]), store.select(ids[25:])
        write_store(tmp_path / "b.h5", {u: store[u] for u in ids[25:]}, cfg)
        with FeatureStore(tmp_path / "b.h5") as other:
            two_files = train_ubm([first, other], 8, **OPTS)
        views = train_ubm([first, second], 8, **OPTS)
    whole = train_ubm(arrays, 8, **OPTS)
    # a second file starts a new shard, so blocks (float32 sums) are cut elsewhere
    np.testing.assert_allclose(two_files.means, whole.means, atol=2e-4)
    np.testing.assert_allclose(views.means, whole.means, atol=2e-4)


def test_stores_with_other_configs_are_refused(store_and_arrays, tmp_path):
    path, arrays, _ = store_and_arrays
    write_store(tmp_path / "other.h5", {"u1": arrays[0]}, FeatureConfig(n_mfcc=13))
    with FeatureStore(path) as a, FeatureStore(tmp_path / "other.h5") as b:
        with pytest.raises(DataError, match="different feature configs"):
            train_ubm([a, b], 2, **OPTS)
        with pytest.raises(DataError, match="max_frames: not available"):
            train_ubm(a, 2, max_frames=100, **OPTS)


def test_process_engine_reads_the_store_itself(store_and_arrays):
    path, arrays, _ = store_and_arrays
    with FeatureStore(path) as store, ProcessEngine(n_workers=2) as engine:
        pooled = train_ubm(store, 8, engine=engine, **OPTS)
        local = train_ubm(store, 8, **OPTS)
    for name in ("weights", "means", "variances"):
        np.testing.assert_allclose(getattr(pooled, name), getattr(local, name), rtol=1e-5)
