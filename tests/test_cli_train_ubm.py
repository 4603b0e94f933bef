import numpy as np

from gmmspeech import DiagGMM
from gmmspeech.cli.main import main
from gmmspeech.config.sections import FeatureConfig
from gmmspeech.corpus.datadir import DataDir
from gmmspeech.features.store import write_store


def _stores(tmp_path):
    rng = np.random.default_rng(0)
    a = {f"a{i}": rng.normal(size=(100, 3)).astype(np.float32) for i in range(6)}
    b = {f"b{i}": (rng.normal(size=(80, 3)) + 2).astype(np.float32) for i in range(4)}
    write_store(tmp_path / "a.h5", a)
    write_store(tmp_path / "b.h5", b)
    return a, b


def test_train_ubm_streams_several_stores(tmp_path, capsys):
    a, b = _stores(tmp_path)
    out = tmp_path / "ubm.h5"
    args = [str(tmp_path / "a.h5"), str(tmp_path / "b.h5"), str(out)]
    rc = main(["train-ubm", *args, "--set", "ubm.n_components=4", "--no-progress"])
    assert rc == 0
    ubm = DiagGMM.load(out)
    assert ubm.n_components == 4 and ubm.config["n_frames"] == 6 * 100 + 4 * 80
    printed = capsys.readouterr().out
    assert "10 utterances (920 frames" in printed and "0 missing" in printed
    assert not (tmp_path / "ubm.h5.ckpt").exists()


def test_train_ubm_on_the_utterances_of_a_data_dir(tmp_path, capsys):
    _stores(tmp_path)
    ids = ["a1", "a2", "b3", "zz"]
    DataDir({u: f"/x/{u}.wav" for u in ids}, {u: "s" for u in ids}).write(tmp_path / "dd")
    out = tmp_path / "ubm.h5"
    rc = main(
        [
            "train-ubm",
            str(tmp_path / "a.h5"),
            str(tmp_path / "b.h5"),
            str(out),
            "--datadir",
            str(tmp_path / "dd"),
            "--set",
            "ubm.n_components=2",
            "--no-progress",
        ]
    )
    assert rc == 0
    assert DiagGMM.load(out).config["n_frames"] == 100 + 100 + 80
    assert "3 utterances" in capsys.readouterr().out


def test_train_ubm_refuses_stores_of_different_configs(tmp_path, capsys):
    _stores(tmp_path)
    write_store(tmp_path / "c.h5", {"c0": np.zeros((50, 3))}, FeatureConfig(n_mfcc=13))
    rc = main(
        [
            "train-ubm",
            str(tmp_path / "a.h5"),
            str(tmp_path / "c.h5"),
            str(tmp_path / "u.h5"),
            "--set",
            "ubm.n_components=2",
            "--no-progress",
        ]
    )
    assert rc == 1
    assert "different feature configs" in capsys.readouterr().err
    assert not (tmp_path / "u.h5").exists()
