"""Fault injection: ``kill -9`` of ``extract``, ``train-ubm`` and ``run`` at seeded random
moments, then a rerun; the outputs must equal an uninterrupted run's byte for byte, and no
process of a killed run (a worker, a forkserver, a resource tracker) may survive it.

Every process started here carries a marker in its environment, which its children
inherit; survivors are found by walking ``/proc/*/environ`` for it (no psutil needed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from helpers_audio import make_datadir
from test_pipeline import CONFIG, make_corpus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc"),
]

ROOT = Path(__file__).resolve().parents[1]
MARKER = "GMMSPEECH_FAULT_TEST"
FEATURES = """\
features: {n_mfcc: 13, deltas: 1}
ubm: {n_components: 4, iterations_per_stage: [1, 2], final_max_iterations: 2}
"""
#: kills per command: 20 random points in all (train-ubm is the quickest to start)
KILLS = {"extract": 6, "train-ubm": 8, "run": 6}
#: files of an experiment folder that legitimately differ between runs (timings, logs)
VOLATILE = ("report.md",)


def _marked(token: str) -> list[int]:
    """Pids of live processes whose environment holds ``MARKER=token``."""
    needle = f"{MARKER}={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env.split(b"\0") and state != "Z":
            found.append(int(entry))
    return found


class Runner:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.token = uuid.uuid4().hex
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), **{MARKER: self.token})
        self.env.pop("PYTEST_CURRENT_TEST", None)

    def start(self, args: list[str]) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "gmmspeech.cli.main", *args, "--no-progress"]
        return subprocess.Popen(
            cmd, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def complete(self, args: list[str]) -> float:
        t0 = time.monotonic()
        proc = self.start(args)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        return time.monotonic() - t0

    def kill_at(self, args: list[str], delay: float) -> None:
        """Start ``args``, ``kill -9`` the command (only it) after ``delay`` s, and check
        that nothing it started outlives it by more than 5 s."""
        proc = self.start(args)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        deadline = time.monotonic() + 5.0
        while (alive := _marked(self.token)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in alive:  # clean up before failing, so that the suite goes on
            os.kill(pid, signal.SIGKILL)
        assert not alive, f"{args[0]}: {len(alive)} process(es) survived kill -9 at {delay:.2f} s"


def _same_tree(a: Path, b: Path) -> None:
    def files(root: Path) -> dict[str, Path]:
        return {
            str(p.relative_to(root)): p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix != ".log"
            and p.parent.name != "stages"
            and p.name not in VOLATILE
        }

    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        assert fa[name].read_bytes() == fb[name].read_bytes(), name


def test_kill_9_then_rerun_gives_the_uninterrupted_outputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(20261126)
    make_datadir(tmp_path, n_utts=12, n_spk=3, seconds=1.0)
    (tmp_path / "feat.yaml").write_text(FEATURES, encoding="utf-8")
    make_corpus(tmp_path / "corpus", n_bg=4, n_tg=3, n_utt=3)
    (tmp_path / "exp.yaml").write_text(CONFIG.format(extra=""), encoding="utf-8")
    r = Runner(tmp_path)
    conf = ["--config", "feat.yaml"]
    extract = ["extract", "data", "{}.h5", *conf, "--jobs", "2"]
    train = ["train-ubm", "ref.h5", "{}ubm.h5", *conf]
    run = ["run", "exp.yaml", "--out", "{}"]

    def fill(cmd: list[str], name: str) -> list[str]:
        return [a.replace("{}", name) for a in cmd]

    seconds = {
        "extract": r.complete(fill(extract, "ref")),
        "train-ubm": r.complete(fill(train, "ref")),
        "run": r.complete(fill(run, "ref")),
    }
    cases = {"extract": (extract, "cut.h5"), "train-ubm": (train, "cutubm.h5"), "run": (run, "cut")}
    n_kills = 0
    for name, (cmd, out) in cases.items():
        target = out.replace(".h5", "").replace("ubm", "")
        for _ in range(KILLS[name]):
            r.kill_at(fill(cmd, target), float(rng.uniform(0.0, seconds[name])))
            n_kills += 1
        if not (tmp_path / out).is_file():  # every kill came before the output was complete
            r.complete(fill(cmd, target))
    assert n_kills >= 20
    assert (tmp_path / "cut.h5").read_bytes() == (tmp_path / "ref.h5").read_bytes()
    assert (tmp_path / "cutubm.h5").read_bytes() == (tmp_path / "refubm.h5").read_bytes()
    _same_tree(tmp_path / "ref", tmp_path / "cut")
    assert (tmp_path / "cut" / "results.json").is_file()
    assert not _marked(r.token)
