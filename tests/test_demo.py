"""The bundled demo: data shipped with the package, and `gmmspeech demo` at tiny settings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import soundfile as sf

from gmmspeech.cli.main import main
from gmmspeech.demo.bundle import demo_config, demo_data_dir


def test_bundled_data_is_small_licensed_and_complete() -> None:
    folder = demo_data_dir()
    flacs = sorted(folder.rglob("*.flac"))
    assert len(flacs) == 84
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert total <= 15 * 2**20
    assert "Creative Commons Attribution 4.0" in (folder / "LICENSE.TXT").read_text()
    assert "LibriSpeech" in (folder / "ATTRIBUTION.md").read_text()
    info = sf.info(str(flacs[0]))
    assert (info.samplerate, info.channels) == (16000, 1)
    # 24 background speakers with one file each, 10 target speakers with 6 each
    assert len(list((folder / "background").glob("*.flac"))) == 24
    targets = sorted(p for p in (folder / "targets").iterdir() if p.is_dir())
    assert len(targets) == 10 and all(len(list(t.glob("*.flac"))) == 6 for t in targets)
    cfg = demo_config()
    assert Path(cfg.data.root) == folder


def test_demo_runs_in_the_current_directory(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    rc = main(
        [
            "demo",
            "--no-progress",
            "--set",
            "ubm.n_components=8",
            "--set",
            "ubm.iterations_per_stage=[1, 2]",
            "--set",
            "ubm.final_max_iterations=2",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    exp = tmp_path / "gmmspeech_demo"
    res = json.loads((exp / "results.json").read_text())
    # 10 models x 50 test utterances (5 per speaker), 50 target trials
    assert (res["n_trials"], res["n_target"], res["n_models"]) == (500, 50, 10)
    assert 0.0 <= res["eer"] < 0.2  # real speakers, even 8 components separate most
    assert f"EER {100 * res['eer']:.2f}%" in out and "minDCF" in out
    assert "gmmspeech_demo/det.png" in out and "gmmspeech_demo/report.md" in out
    assert (exp / "det.png").is_file() and (exp / "report.md").is_file()


def test_the_demo_at_its_own_settings_is_calibrated(tmp_path: Path, caplog, recwarn) -> None:
    """What a new user reads first: calibrated LLRs, with no fallback to the raw scores."""
    assert main(["demo", "--no-progress", "--out", str(tmp_path / "d")]) == 0
    res = json.loads((tmp_path / "d" / "results.json").read_text())
    cal = res["calibration"]
    assert cal.get("fallback") in (None, ""), cal
    assert (cal["slope"], cal["offset"]) != (1.0, 0.0)
    assert res["calibrated"]["act_dcf"] <= 1.3 * res["calibrated"]["min_dcf"]
    assert res["calibrated"]["cllr"] < res["cllr_uncalibrated"]
    assert not [r for r in caplog.records if "not calibrating" in r.getMessage()]
    # nothing to worry a new user: no fallback, no ConvergenceWarning, no warning at all
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [str(w.message) for w in recwarn], "the demo warns"


def test_demo_on_a_dask_cluster_gives_the_same_experiment(tmp_path: Path) -> None:
    """compute.backend=dask runs extraction, the UBM E-step and scoring on 2 local workers."""
    import pytest

    pytest.importorskip("dask.distributed")
    tiny = [
        "--set",
        "ubm.n_components=8",
        "--set",
        "ubm.iterations_per_stage=[1, 2]",
        "--set",
        "ubm.final_max_iterations=2",
        "--no-progress",
    ]
    assert main(["demo", "--out", str(tmp_path / "local"), *tiny]) == 0
    dask = ["--set", "compute.backend=dask", "--set", "compute.n_workers=2"]
    assert main(["demo", "--out", str(tmp_path / "dask"), *tiny, *dask]) == 0
    for name in ("features/background.h5", "features/test.h5"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes()
    local = (tmp_path / "local" / "scores" / "raw.txt").read_text().split("\n")
    dist = (tmp_path / "dask" / "scores" / "raw.txt").read_text().split("\n")
    assert len(local) > 300
    for a, b in zip(local, dist, strict=True):
        if a and not a.startswith("#"):  # the provenance header names each run's UBM
            ma, ta, sa = a.split()
            mb, tb, sb = b.split()
            # Scores are frame means of float32 log-likelihood differences; each term has
            # log-likelihoods of magnitude ~1e2, so BLAS blocking that differs between a
            # multi-threaded local process and one-thread workers moves a score by up to
            # ~eps32 * 1e2 = 6e-6. Anything larger is a real difference.
            assert (ma, ta) == (mb, tb) and abs(float(sa) - float(sb)) <= 1e-5 * max(
                1.0, abs(float(sa))
            )
