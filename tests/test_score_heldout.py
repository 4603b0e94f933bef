"""``gmmspeech score --norm ... --heldout-ubm`` gives the pipeline's normalize-stage scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_pipeline import CONFIG, make_corpus

from gmmspeech.cli.main import main


def _scores(path: Path) -> dict[tuple[str, str], float]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            m, t, v = line.split()
            out[(m, t)] = float(v)
    return out


@pytest.mark.parametrize("norm", ["s", "zt"])
def test_score_heldout_ubm_reproduces_the_normalize_stage(tmp_path: Path, norm: str) -> None:
    make_corpus(tmp_path / "corpus")
    extra = f"  norm: {norm}\n  calibrate: false\n"
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(CONFIG.format(extra=extra), encoding="utf-8")
    out = tmp_path / "exp"
    assert main(["run", str(cfg), "--out", str(out), "--no-progress"]) == 0
    common = [
        str(out / "ubm/ubm.h5"), str(out / "models/models.h5"),
        str(out / "features/test.h5"), str(out / "data/test/trials"),
    ]  # fmt: skip
    cohort = [
        "--config", str(cfg), "--no-progress",
        "--cohort-dir", str(out / "data/background"),
        "--cohort-feats", str(out / "features/background.h5"),
    ]  # fmt: skip
    held = [
        "--heldout-ubm", str(out / "ubm/heldout_1.h5"), str(out / "ubm/heldout_2.h5"),
        "--enroll-dir", str(out / "data/enroll"), "--enroll-feats", str(out / "features/enroll.h5"),
    ]  # fmt: skip
    assert main(["score", *common, str(tmp_path / "cli.txt"), *cohort, *held]) == 0
    want = _scores(out / "scores/scores.txt")
    got = _scores(tmp_path / "cli.txt")
    assert set(got) == set(want)
    keys = sorted(want)
    np.testing.assert_allclose([got[k] for k in keys], [want[k] for k in keys], rtol=1e-6)
    # and the plain cohort normalisation (the UBM has seen the cohort) differs
    assert main(["score", *common, str(tmp_path / "plain.txt"), *cohort]) == 0
    plain = _scores(tmp_path / "plain.txt")
    assert max(abs(plain[k] - want[k]) for k in keys) > 1e-3
