"""i-vector artefacts know where they came from and are checked on load (#18 points 2-3)."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_output_gate import W
from test_output_gate import world as world  # the fixture

from gmmspeech.cli.main import main
from gmmspeech.config.ivector import BackendConfig
from gmmspeech.errors import DataError, ModelFormatError
from gmmspeech.ivector.backend import Backend
from gmmspeech.ivector.tv import IVectorSet, TotalVariability


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    lines = [x for x in lines if not re.match(r"^\d\d:\d\d:\d\d ", x)]
    assert len(lines) == 1, lines
    return lines[0]


def test_ivectors_of_two_tv_models_are_not_scored_together(world: W, tmp_path: Path, capsys):
    tv2, iv2 = tmp_path / "tv2.h5", tmp_path / "iv2.h5"
    args = [
        "--set",
        "ivector.rank=2",
        "--set",
        "ivector.n_iter=1",
        "--set",
        "ivector.random_state=7",
    ]
    assert main(["train-tv", str(world["ubm"]), str(world["feats"]), str(tv2), *args]) == 0
    assert main(["extract-ivectors", str(tv2), str(world["feats"]), str(iv2)]) == 0
    a, b = TotalVariability.load(world["tv"]), TotalVariability.load(tv2)
    assert not np.array_equal(a.T_, b.T_)  # the oracle: two different models
    assert IVectorSet.load(iv2).tv == b.fingerprint != IVectorSet.load(world["ivectors"]).tv
    assert Backend.load(world["backend"]).tv_fingerprint_ == a.fingerprint
    for enroll, test in ((world["ivectors"], iv2), (iv2, world["ivectors"]), (iv2, iv2)):
        argv = ["score-ivectors", str(world["backend"]), str(enroll), str(world["enroll"])]
        argv += [str(test), str(world["trials"]), str(tmp_path / "s.txt")]
        capsys.readouterr()
        assert main(argv) == 1
        err = _err(capsys)
        assert "different total-variability models" in err and str(iv2) in err
    assert not (tmp_path / "s.txt").exists()


def _backend_file(tmp_path: Path, cfg: BackendConfig) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    y = np.repeat(np.arange(8), 5)
    path = tmp_path / "be.h5"
    Backend(cfg).fit(x, y).save(path)
    return path


def _edit(path: Path, **changes: object) -> None:
    with h5py.File(path, "r+") as f:
        for name, value in changes.items():
            if name in f:
                del f[name]
            if value is not None:
                f.create_dataset(name, data=value)


@pytest.mark.parametrize(
    ("cfg", "change", "why"),
    [
        (BackendConfig(scorer="plda"), {"plda_between": None}, "asks for PLDA"),
        (BackendConfig(scorer="cosine"), {"plda_mean": np.zeros(4)}, "has no PLDA"),
        (BackendConfig(lda_dim=3, scorer="cosine"), {"lda_scalings": np.ones((4, 2))}, "lda_dim 3"),
        (
            BackendConfig(wccn=True, scorer="cosine"),
            {"wccn_projection": np.eye(3)},
            "projections give dimension 3",
        ),
        (BackendConfig(scorer="plda"), {"plda_within": np.eye(3)}, "'plda_within' has shape"),
        (BackendConfig(scorer="cosine"), {"mean": np.array([0.0, np.nan, 0, 0])}, "NaN"),
    ],
)
def test_a_back_end_whose_arrays_disagree_with_its_config_is_refused(tmp_path, cfg, change, why):
    path = _backend_file(tmp_path, cfg)
    Backend.load(path)  # as written: fine
    _edit(path, **change)
    with pytest.raises(ModelFormatError, match=re.escape(why)):
        Backend.load(path)


def test_a_huge_compressed_matrix_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = _backend_file(tmp_path, BackendConfig(scorer="plda"))
    with h5py.File(path, "r+") as f:
        for name in ("mean", "plda_mean", "plda_between", "plda_within"):
            del f[name]
        n = 16000
        f.create_dataset("mean", data=np.zeros(n))
        f.create_dataset("plda_mean", data=np.zeros(n))
        for name in ("plda_between", "plda_within"):  # 2 GB each once read; a few kB stored
            f.create_dataset(name, shape=(n, n), dtype="f8", compression="gzip", chunks=True)
    assert path.stat().st_size < 2_000_000
    with pytest.raises(ModelFormatError, match=r"expected 1 dimension\(s\) of 1\.\.4096"):
        Backend.load(path)


def test_statistics_of_another_store_are_refused(tmp_path: Path) -> None:
    from gmmspeech import DiagGMM
    from gmmspeech.ivector.stats import StatsFile, StatsSet

    rng = np.random.default_rng(0)
    ubm = DiagGMM(np.full(2, 0.5), rng.normal(size=(2, 3)), np.ones((2, 3)))
    StatsSet(np.ones((2, 2)), np.zeros((2, 2, 3)), ubm, ["a", "b"], {}).save(tmp_path / "s.h5")
    src = StatsFile(tmp_path / "s.h5", ubm)
    src.check_utterances(["a", "b"], "store")
    with pytest.raises(DataError, match="the same utterances in another order"):
        src.check_utterances(["b", "a"], "store")
    with pytest.raises(DataError, match=r"do not belong to store: 1 utterance\(s\) not in it"):
        src.check_utterances(["a", "c"], "store")
