"""``gmmspeech extract``: config files, errors, and kill -9 followed by a resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers_audio import make_datadir

from gmmspeech.cli.main import main
from gmmspeech.config.sections import FeatureConfig
from gmmspeech.errors import DataError
from gmmspeech.features.extraction import extract_to_store
from gmmspeech.features.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]


def test_extract_with_yaml_config_and_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = make_datadir(tmp_path, n_utts=3)
    cfg_file = tmp_path / "feat.yaml"
    cfg_file.write_text("features:\n  n_mfcc: 13\n  normalization: cmn\n")
    out = tmp_path / "f.h5"
    code = main(
        [
            "extract",
            str(data),
            str(out),
            "--config",
            str(cfg_file),
            "--set",
            "deltas=1",
            "--no-progress",
            "--log-level",
            "ERROR",
        ]
    )
    assert code == 0
    assert "3 extracted" in capsys.readouterr().out
    with FeatureStore(out) as store:
        assert store.config == FeatureConfig(n_mfcc=13, normalization="cmn", deltas=1)
        assert store.n_features == 26


@pytest.mark.parametrize(
    "yaml_text,extra,needle",
    [
        (
            "n_mfc: 13\n",
            [],
            "c.yaml:1: unknown key 'features.n_mfc'; did you mean 'features.n_mfcc'?",
        ),
        (
            "features:\n  n_mfcc: 13\nubmm: {}\n",
            [],
            "c.yaml:3: unknown section 'ubmm'; did you mean 'ubm'?",
        ),
        ("n_mfcc: [1, 2\n", [], "not valid YAML"),
        ("", ["--set", "vad=maybe"], "vad: must be one of"),
        ("", ["--set", "novalue"], "expected KEY=VALUE"),
        (
            "extract:\n  max_failed_fraction: 2\n",
            [],
            "max_failed_fraction: must be in [0, 1], got 2",
        ),
        ("", ["--set", "extract.batch_size=0"], "batch_size: must be an integer >= 1, got 0"),
    ],
)
def test_config_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, yaml_text: str, extra: list, needle: str
) -> None:
    data = make_datadir(tmp_path, n_utts=1)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml_text)
    code = main(
        [
            "extract",
            str(data),
            str(tmp_path / "f.h5"),
            "--config",
            str(cfg_file),
            *extra,
            "--log-level",
            "ERROR",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and needle in err
    assert err.startswith("gmmspeech extract: error:") and "Traceback" not in err
    assert not (tmp_path / "f.h5").exists()


def _add_missing_audio(data: Path, n: int) -> None:
    """Append utterances whose audio files do not exist (wav.scp stays sorted)."""
    for name in ("wav.scp", "utt2spk"):
        lines = (data / name).read_text().splitlines()
        for i in range(n):
            value = str(data / f"gone{i}.wav") if name == "wav.scp" else "spkz"
            lines.append(f"zz-gone{i} {value}")
        (data / name).write_text("\n".join(sorted(lines)) + "\n")
    (data / "spk2utt").unlink(missing_ok=True)


def test_missing_audio_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = make_datadir(tmp_path, n_utts=3)
    _add_missing_audio(data, 2)
    out = tmp_path / "f.h5"
    code = main(["extract", str(data), str(out), "--no-progress", "--log-level", "ERROR"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{data / 'wav.scp'}: 2 of 5 audio files do not exist" in err
    assert "gone0.wav" in err and "max_failed_fraction=0.05" in err
    assert not out.exists() and not (tmp_path / "f.h5.parts").exists()


def test_a_few_missing_audio_files_are_skipped_and_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    data = make_datadir(tmp_path, n_utts=3)
    _add_missing_audio(data, 1)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("extract:\n  max_failed_fraction: 0.3\n")
    out = tmp_path / "f.h5"
    args = ["extract", str(data), str(out), "--config", str(cfg_file), "--no-progress"]
    assert main([*args, "--log-level", "WARNING"]) == 0
    captured = capsys.readouterr()
    assert "3 extracted" in captured.out and "1 failed" in captured.out
    assert "1 audio file(s) do not exist" in caplog.text
    assert "zz-gone0\t" in (tmp_path / "f.h5.log").read_text()
    with FeatureStore(out) as store:
        assert len(store) == 3
    # the command-line flag wins over the config file
    out2 = tmp_path / "g.h5"
    code = main(["extract", str(data), str(out2), "--config", str(cfg_file), "--max-failed", "0.1"])
    assert code == 1 and "1 of 4 audio files do not exist" in capsys.readouterr().err


def test_config_mismatch_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = make_datadir(tmp_path, n_utts=2)
    out = tmp_path / "f.h5"
    assert main(["extract", str(data), str(out), "--no-progress", "--log-level", "ERROR"]) == 0
    capsys.readouterr()
    assert main(["extract", str(data), str(out), "--set", "n_mels=24", "--log-level", "ERROR"]) == 1
    assert "n_mels: 40 in the store vs 24 requested" in capsys.readouterr().err


def _cli(*args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gmmspeech.cli.main",
        "extract",
        *args,
        "--no-progress",
        "--log-level",
        "WARNING",
    ]


def test_kill_9_then_resume_gives_the_uninterrupted_store(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=150, n_spk=5, seconds=0.4)
    ref = tmp_path / "ref.h5"
    extract_to_store(data, ref, batch_size=10)
    out = tmp_path / "f.h5"
    parts = tmp_path / "f.h5.parts"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    kills = 0
    # Kill at several moments: before any part exists, and after some parts exist.
    for wait_for_parts in (0, 2, 5):
        proc = subprocess.Popen(
            _cli(str(data), str(out), "--batch-size", "10"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            n_parts = len(list(parts.glob("part-*.h5"))) if parts.is_dir() else 0
            if (wait_for_parts == 0 and parts.is_dir()) or (
                wait_for_parts and n_parts >= wait_for_parts + kills
            ):
                break
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        assert not out.exists() or proc.returncode == 0
        if proc.returncode != 0:
            with pytest.raises(DataError, match="interrupted"):
                FeatureStore(out)
    assert kills >= 2, "the extraction finished before it could be killed"
    done = subprocess.run(
        _cli(str(data), str(out), "--batch-size", "10"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert not parts.exists()
    with FeatureStore(out) as a, FeatureStore(ref) as b:
        assert list(a) == list(b) and len(a) == 150
        for u in a:
            np.testing.assert_array_equal(a[u], b[u])


def test_compute_section_chooses_the_workers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = make_datadir(tmp_path, n_utts=4)
    assert main(["extract", str(data), str(tmp_path / "a.h5"), "--no-progress"]) == 0
    opts = ["--set", "compute.backend=processes", "--set", "compute.n_workers=2", "--no-progress"]
    assert main(["extract", str(data), str(tmp_path / "b.h5"), *opts]) == 0
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    capsys.readouterr()
    assert main(["extract", str(data), str(tmp_path / "c.h5"), "--set", "compute.backend=mpi"]) == 1
    assert "compute.backend" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_extraction_processes_reuse_freed_memory() -> None:
    """Memory freed between utterances stays in the process instead of being returned to
    the kernel and page-faulted in again (minor page faults counted, not time)."""
    code = (
        "import resource, sys, numpy as np\n"
        "from gmmspeech.features.extraction_worker import keep_freed_memory\n"
        "from gmmspeech.features.frontend import extract_features\n"
        "if sys.argv[1] == '1':\n"
        "    keep_freed_memory()\n"
        "rng = np.random.default_rng(0)\n"
        "ys = [(0.1 * rng.standard_normal(int(16000 * s))).astype(np.float32)\n"
        "      for s in rng.uniform(20, 60, size=12)]  # utterances of varied length\n"
        # warm-up on the longest: later faults are then re-use, not growth of the heap
        "extract_features(max(ys, key=len), 16000)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for y in ys[1:]:\n"
        "    extract_features(y, 16000)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {}
    for flag in ("0", "1"):
        out = subprocess.run(
            [sys.executable, "-c", code, flag], capture_output=True, text=True, check=True
        )
        faults[flag] = int(out.stdout.strip())
    assert faults["1"] * 3 < faults["0"], faults
