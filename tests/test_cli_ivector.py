"""The i-vector subcommands: train-tv, extract-ivectors, train-backend, score-ivectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_pipeline import make_corpus
from test_pipeline_ivector import write_config

from gmmspeech.cli.main import main
from gmmspeech.config.loader import load_config
from gmmspeech.features.store import FeatureStore
from gmmspeech.ivector.stats import compute_stats
from gmmspeech.ivector.tv import IVectorSet, TotalVariability
from gmmspeech.pipeline import Experiment


def read(path: Path) -> dict[tuple[str, str], float]:
    rows = (line.split() for line in path.read_text().splitlines() if not line.startswith("#"))
    return {(r[0], r[1]): float(r[2]) for r in rows}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ivcli")
    make_corpus(root / "corpus", n_bg=10)
    cfg = write_config(root, "scoring: {calibrate: false}\n")
    cfg.write_text(cfg.read_text().replace("scoring:\n  top_c: 2\n", ""), encoding="utf-8")
    Experiment(load_config(cfg), root / "exp").run()
    return root, cfg


def test_the_commands_reproduce_the_pipeline(experiment: tuple[Path, Path], capsys) -> None:
    root, cfg = experiment
    exp, w = root / "exp", root / "cli"
    w.mkdir()
    c = ["--config", str(cfg)]
    assert main(["train-tv", str(exp / "ubm/ubm.h5"), str(exp / "features/background.h5"),
                 str(w / "tv.h5"), *c]) == 0  # fmt: skip
    for name in ("background", "enroll", "test"):
        args = ["extract-ivectors", str(w / "tv.h5"), str(exp / f"features/{name}.h5")]
        assert main([*args, str(w / f"{name}.h5"), *c]) == 0
        got = IVectorSet.load(w / f"{name}.h5")
        want = IVectorSet.load(exp / f"ivectors/{name}.h5")
        assert got.utt_ids == want.utt_ids
        np.testing.assert_allclose(got.vectors, want.vectors, rtol=1e-9, atol=1e-12)
    args = ["train-backend", str(w / "background.h5"), str(exp / "data/background")]
    assert main([*args, str(w / "backend.h5"), *c]) == 0
    args = ["score-ivectors", str(w / "backend.h5"), str(w / "enroll.h5"), str(exp / "data/enroll")]
    args += [str(w / "test.h5"), str(exp / "data/test/trials"), str(w / "scores.txt")]
    assert main(args) == 0
    assert "wrote 32 score(s)" in capsys.readouterr().out
    got, want = read(w / "scores.txt"), read(exp / "scores/raw.txt")
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12)
    # an existing output is refused without --overwrite, replaced with it
    assert main(args) != 0
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_train_backend_names_the_single_utterance_speakers(
    experiment: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    root, cfg = experiment
    exp = root / "exp"
    iv = IVectorSet.load(exp / "ivectors/background.h5")
    keep = [i for i, u in enumerate(iv.utt_ids) if not u.startswith("b3-")][:-1]
    IVectorSet([iv.utt_ids[i] for i in keep], iv.vectors[keep]).save(tmp_path / "bg.h5")
    args = ["train-backend", str(tmp_path / "bg.h5"), str(exp / "data/background")]
    assert main([*args, str(tmp_path / "be.h5"), "--config", str(cfg)]) != 0
    err = capsys.readouterr().err
    assert "single utterance ('b9')" in err and "data/background" in err
    assert not (tmp_path / "be.h5").exists()
    assert main([*args, str(tmp_path / "be.h5"), "--set", "backend.scorer=cosine"]) == 0


def test_commands_prune_with_ivector_min_post(experiment: tuple[Path, Path], tmp_path) -> None:
    root, cfg = experiment
    exp = root / "exp"
    c = ["--config", str(cfg), "--set", "ivector.min_post=0.025"]
    feats = exp / "features/test.h5"
    assert main(["train-tv", str(exp / "ubm/ubm.h5"), str(exp / "features/background.h5"),
                 str(tmp_path / "tv.h5"), *c]) == 0  # fmt: skip
    assert (
        main(["extract-ivectors", str(tmp_path / "tv.h5"), str(feats), str(tmp_path / "t.h5"), *c])
        == 0
    )
    model = TotalVariability.load(tmp_path / "tv.h5")
    with FeatureStore(feats) as store:
        direct = compute_stats(model.ubm_, dict(store.items()), min_post=0.025)
    got = IVectorSet.load(tmp_path / "t.h5")
    assert got.utt_ids == direct.utt_ids
    np.testing.assert_allclose(got.vectors, model.transform(direct), rtol=1e-5, atol=1e-8)
    # and the pruning changed them: not the unpruned pipeline's model
    dense = IVectorSet.load(exp / "ivectors/test.h5")
    assert np.abs(got.vectors - dense.vectors).max() > 1e-3
