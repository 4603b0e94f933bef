"""Temporaries of killed runs (scratch folders, atomic-write files) are removed by the next
run; those of live processes, of other hosts and the user's own dot-files are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_output_gate import W
from test_output_gate import world as world  # the fixture

from gmmspeech.cli.main import main
from gmmspeech.storage.scratch import owner_tag, remove_stale


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def plant(folder: Path, target: str) -> dict[str, Path]:
    """Leftovers of a dead process, and look-alikes that must stay."""
    host = owner_tag().rsplit("-", 1)[0]
    dead = dead_pid()
    made = {
        "dead scratch": folder / f".gmmspeech-stats-{host}-{dead}-abc123",
        "dead temp": folder / f".{target}.{host}-{dead}.k2j4h5.tmp",
        "live scratch": folder / f".gmmspeech-stats-{host}-{os.getpid()}-abc123",
        "other host": folder / f".gmmspeech-stats-otherhost-{dead}-abc123",
        "user's": folder / ".gmmspeech-notes",
    }
    for name, p in made.items():
        if "temp" in name:
            p.write_bytes(b"partial")
        else:
            p.mkdir(parents=True)
            (p / "stats.h5").write_bytes(b"x" * 1000)
    return made


def test_remove_stale_takes_only_dead_leftovers(tmp_path: Path) -> None:
    made = plant(tmp_path, "tv.h5")
    assert remove_stale(tmp_path) == 2
    assert sorted(k for k, p in made.items() if p.exists()) == [
        "live scratch",
        "other host",
        "user's",
    ]


def test_train_tv_removes_what_a_killed_train_tv_left(world: W, tmp_path: Path) -> None:
    made = plant(tmp_path, "tv.h5")
    out = tmp_path / "tv.h5"
    argv = ["train-tv", str(world["ubm"]), str(world["feats"]), str(out), "--set", "ivector.rank=2"]
    assert main([*argv, "--set", "ivector.n_iter=1"]) == 0
    assert out.is_file()
    assert not made["dead scratch"].exists() and not made["dead temp"].exists()
    assert made["live scratch"].exists() and made["other host"].exists() and made["user's"].exists()
    leftovers = [
        p.name for p in tmp_path.iterdir() if p.name.startswith(".") and p not in made.values()
    ]
    assert not leftovers  # its own scratch is gone too


def test_run_removes_temporaries_anywhere_in_its_experiment(world: W, tmp_path: Path) -> None:
    out = tmp_path / "exp"
    assert main(["run", str(world["fusion_cfg"]), "--out", str(out), "--no-progress"]) == 0
    made = plant(out / "scores", "fused.txt")
    assert main(["run", str(world["fusion_cfg"]), "--out", str(out), "--no-progress"]) == 0
    assert not made["dead scratch"].exists() and not made["dead temp"].exists()
    assert made["live scratch"].exists() and made["user's"].exists()
