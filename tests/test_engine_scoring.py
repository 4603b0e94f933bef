import numpy as np
import pytest

from gmmspeech import FeatureStore, LocalEngine, ProcessEngine, enroll, score_trials, train_ubm
from gmmspeech.features.store import write_store


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    rng = np.random.default_rng(0)
    feats = {}
    for spk in range(4):
        centre = rng.normal(size=3) * 2
        for u in range(5):
            feats[f"s{spk}_u{u}"] = (centre + rng.normal(size=(120, 3))).astype(np.float32)
    ubm = train_ubm(
        list(feats.values()), 8, iterations_per_stage=(2,), final_max_iterations=2, progress=False
    )
    spk2utt = {f"s{s}": [f"s{s}_u0", f"s{s}_u1"] for s in range(4)}
    models = enroll(ubm, feats, spk2utt)
    tests = [u for u in feats if not u.endswith(("_u0", "_u1"))]
    trials = [(m, t, m == t.split("_")[0]) for m in spk2utt for t in tests]
    path = tmp_path_factory.mktemp("feats") / "feats.h5"
    write_store(path, feats)
    return ubm, models, feats, trials, path


@pytest.mark.parametrize("method", ["exact", "topc", "linear"])
def test_scores_identical_on_every_engine(setup, method):
    ubm, models, feats, trials, path = setup
    local = score_trials(ubm, models, feats, trials, method=method, top_c=3)
    with ProcessEngine(n_workers=2) as engine, FeatureStore(path) as store:
        from_store = score_trials(ubm, models, store, trials, method=method, top_c=3, engine=engine)
        from_dict = score_trials(ubm, models, feats, trials, method=method, top_c=3, engine=engine)
    np.testing.assert_allclose(from_store, local, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(from_dict, local, rtol=1e-6, atol=1e-7)
    assert (
        score_trials(
            ubm, models, feats, trials, method=method, top_c=3, engine=LocalEngine()
        ).tolist()
        == local.tolist()
    )
    # targets score higher on average: the scores mean something
    is_target = np.array([t[2] for t in trials])
    assert local[is_target].mean() > local[~is_target].mean()


def test_scores_on_dask_match(setup):
    pytest.importorskip("dask.distributed")
    from gmmspeech import DaskEngine

    ubm, models, feats, trials, path = setup
    local = score_trials(ubm, models, feats, trials, method="topc", top_c=3)
    with DaskEngine(n_workers=2) as engine, FeatureStore(path) as store:
        got = score_trials(ubm, models, store, trials, method="topc", top_c=3, engine=engine)
    np.testing.assert_allclose(got, local, rtol=1e-6, atol=1e-7)
