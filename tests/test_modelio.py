import h5py
import numpy as np
import pytest

from gmmspeech import DiagGMM, ModelFormatError, train_ubm


def small_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3))
    return train_ubm(
        X,
        4,
        iterations_per_stage=(1,),
        final_max_iterations=1,
        progress=False,
        feature_config={"n_mfcc": 20, "deltas": True},
    )


def test_round_trip_is_exact(tmp_path):
    gmm = small_model()
    path = tmp_path / "ubm.h5"
    gmm.save(path)
    back = DiagGMM.load(path)
    for name in ("weights", "means", "variances", "var_floor"):
        np.testing.assert_array_equal(getattr(back, name), getattr(gmm, name))
    assert back.history_ == gmm.history_
    assert back.config == gmm.config and back.config["n_components"] == 4
    assert back.feature_config == {"n_mfcc": 20, "deltas": True}
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "gmmspeech.DiagGMM"
        assert f.attrs["format_version"] == 1
        assert f["means"].dtype == np.float64
    assert not [p for p in tmp_path.iterdir() if p.name != "ubm.h5"]  # no temp files left


def test_missing_truncated_foreign_and_newer_files(tmp_path):
    gmm = small_model()
    good = tmp_path / "ubm.h5"
    gmm.save(good)
    with pytest.raises(ModelFormatError, match="no such file"):
        DiagGMM.load(tmp_path / "nope.h5")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:700])
    with pytest.raises(ModelFormatError, match="truncated.h5: not a readable HDF5 file"):
        DiagGMM.load(truncated)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(ModelFormatError, match="not a readable HDF5 file"):
        DiagGMM.load(text)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ModelFormatError, match="foreign.h5: no 'format' attribute"):
        DiagGMM.load(foreign)
    newer = tmp_path / "newer.h5"
    newer.write_bytes(good.read_bytes())
    with h5py.File(newer, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(ModelFormatError, match="format_version 99 is not supported"):
        DiagGMM.load(newer)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(good.read_bytes())
    with h5py.File(broken, "a") as f:
        del f["variances"]
    with pytest.raises(ModelFormatError, match="missing dataset\\(s\\) variances"):
        DiagGMM.load(broken)
    with pytest.raises(ModelFormatError, match="is a folder"):
        DiagGMM.load(tmp_path)


def test_failed_save_leaves_previous_file(tmp_path, monkeypatch):
    gmm = small_model()
    path = tmp_path / "ubm.h5"
    gmm.save(path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.File, "create_dataset", boom, raising=False)
    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        gmm.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ubm.h5"]
