import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers_audio import make_datadir

from gmmspeech import ProcessEngine
from gmmspeech.config.sections import FeatureConfig
from gmmspeech.features.extraction import extract_to_store


def test_extraction_on_engines_gives_the_identical_store(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=10)
    cfg = FeatureConfig(n_mfcc=13)
    extract_to_store(data, tmp_path / "local.h5", cfg)
    with ProcessEngine(n_workers=2) as engine:
        report = extract_to_store(data, tmp_path / "pool.h5", cfg, engine=engine)
    assert report.n_extracted == 10 and report.n_failed == 0
    assert (tmp_path / "pool.h5").read_bytes() == (tmp_path / "local.h5").read_bytes()
    pytest.importorskip("dask.distributed")
    from gmmspeech import DaskEngine

    with DaskEngine(n_workers=2) as engine:
        extract_to_store(data, tmp_path / "dask.h5", cfg, engine=engine)
    assert (tmp_path / "dask.h5").read_bytes() == (tmp_path / "local.h5").read_bytes()


def _marked(token: str) -> list[int]:
    """Pids of live processes whose environment holds ``FORKGUARD_TEST=token``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"FORKGUARD_TEST={token}".encode() in env and state != "Z":
            found.append(int(entry))
    return found


def _is_forkserver(pid: int) -> bool:
    try:
        return b"multiprocessing.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_forkserver_killed_with_its_command_during_its_imports(tmp_path: Path) -> None:
    """`kill -9` of `extract --jobs 2` as soon as its forkserver exists (still importing
    librosa for about a second, longer on a busy machine): nothing it started outlives it
    by more than 1.5 s. Without forkguard the forkserver lived until its imports ended."""
    data = make_datadir(tmp_path, n_utts=4)
    token = uuid.uuid4().hex
    env = dict(os.environ, FORKGUARD_TEST=token)
    env.pop("PYTEST_CURRENT_TEST", None)
    cmd = [sys.executable, "-m", "gmmspeech.cli.main", "extract", str(data)]
    cmd += [str(tmp_path / "f.h5"), "--jobs", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60.0
        while not any(_is_forkserver(p) for p in _marked(token)):
            assert proc.poll() is None, "extract ended before starting its forkserver"
            assert time.monotonic() < deadline, "no forkserver after 60 s"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 1.5
    while (alive := _marked(token)) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in alive:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"{len(alive)} process(es) outlived the killed command by 1.5 s"


def test_forkguard_watch_returns_once_imported_and_exits_without_parent() -> None:
    from gmmspeech.forkguard import WORKER_PRELOAD, watch_parent

    assert WORKER_PRELOAD[0] == "gmmspeech.forkguard"  # first: up before the slow imports
    assert watch_parent(os.getppid(), None, ("os", "sys")) is True
    code = "from gmmspeech.forkguard import watch_parent; watch_parent(-5, None, ('no.such',))"
    proc = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert proc.returncode == 1  # "parent" -5 is not ours: the watch ends the process
