"""Never destroy: outputs, inputs, --overwrite, experiment folders, SIGTERM, I/O errors, umask.

Every command that writes is driven through the real CLI. What "replaced" means is checked
on the file system itself (bytes and inode), not through gmmspeech's own readers.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers_audio import make_datadir, utterance, write_wav

from gmmspeech import DiagGMM
from gmmspeech.cli.main import Terminated, _sigterm_raises, main
from gmmspeech.features.store import FeatureStore, write_store
from gmmspeech.storage.atomic import atomic_path

Argv = Callable[[dict[str, Path], Path], list[str]]


# ------------------------------------------------------------------------ a small world
@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """A UBM, a feature store, enrolment and test data dirs with labels, trials, models and
    scores written by the CLI, and a folder of audio for ``prepare``."""
    rng = np.random.default_rng(0)
    k, d = 8, 3
    ubm = DiagGMM(np.full(k, 1 / k), rng.normal(0, 2, (k, d)), np.ones((k, d)))
    ubm.save(tmp_path / "ubm.h5")
    feats: dict[str, np.ndarray] = {}
    enroll = tmp_path / "enroll"
    test = tmp_path / "test"
    enroll.mkdir()
    test.mkdir()
    e_lines, t_lines, trials = [], [], []
    for s in range(3):
        off = rng.normal(0, 1.0, d)
        for j in range(2):
            u = f"spk{s}-e{j}"
            feats[u] = (ubm.sample(120, rng)[0] + off).astype(np.float32)
            e_lines.append(f"{u} spk{s}")
            u = f"spk{s}-t{j}"
            feats[u] = (ubm.sample(80, rng)[0] + off).astype(np.float32)
            t_lines.append(f"{u} spk{s}")
    for m in range(3):
        for line in t_lines:
            u = line.split()[0]
            trials.append(f"spk{m} {u} {'target' if u.startswith(f'spk{m}-') else 'nontarget'}")
    write_store(tmp_path / "feats.h5", feats)
    for folder, lines in ((enroll, e_lines), (test, t_lines)):
        (folder / "utt2spk").write_text("\n".join(lines) + "\n")
        (folder / "utt2label").write_text("\n".join(lines) + "\n")
    (tmp_path / "trials").write_text("\n".join(trials) + "\n")
    w = {
        "root": tmp_path,
        "ubm": tmp_path / "ubm.h5",
        "feats": tmp_path / "feats.h5",
        "enroll": enroll,
        "test": test,
        "trials": tmp_path / "trials",
        "models": tmp_path / "models.h5",
        "scores": tmp_path / "scores.txt",
        "audio": tmp_path / "audio",
    }
    assert main(["enroll", *_s(w["ubm"], w["feats"], enroll, w["models"]), "--no-progress"]) == 0
    assert main(["score", *_s(w["ubm"], w["models"], w["feats"], w["trials"], w["scores"])]) == 0
    for i in range(4):
        write_wav(w["audio"] / f"s{i % 2}" / f"u{i}.wav", utterance(i, 0.2))
    return w


def _s(*paths: Path) -> list[str]:
    return [str(p) for p in paths]


#: command -> (argv writing OUT, the input that OUT is made to be)
COMMANDS: dict[str, tuple[Argv, str]] = {
    "train-ubm": (
        lambda w, out: [
            "train-ubm",
            *_s(w["feats"], out),
            "--set",
            "ubm.n_components=2",
            "--no-progress",
        ],
        "feats",
    ),
    "enroll": (
        lambda w, out: ["enroll", *_s(w["ubm"], w["feats"], w["enroll"], out), "--no-progress"],
        "ubm",
    ),
    "score": (
        lambda w, out: [
            "score",
            *_s(w["ubm"], w["models"], w["feats"], w["trials"], out),
            "--no-progress",
        ],
        "models",
    ),
    "evaluate --json": (
        lambda w, out: ["evaluate", *_s(w["scores"], w["trials"]), "--json", str(out)],
        "trials",
    ),
    "evaluate --plot": (
        lambda w, out: ["evaluate", *_s(w["scores"], w["trials"]), "--plot", str(out)],
        "scores",
    ),
    "evaluate --write-calibrated": (
        lambda w, out: [
            "evaluate",
            *_s(w["scores"], w["trials"]),
            "--calibrate-on",
            *_s(w["scores"], w["trials"]),
            "--write-calibrated",
            str(out),
        ],
        "scores",
    ),
    "classify --json": (
        lambda w, out: [
            "classify",
            *_s(w["feats"], w["enroll"], w["test"]),
            "--mode",
            "ml",
            "--n-components",
            "1",
            "--json",
            str(out),
        ],
        "feats",
    ),
    "classify --predictions": (
        lambda w, out: [
            "classify",
            *_s(w["feats"], w["enroll"], w["test"]),
            "--mode",
            "ml",
            "--n-components",
            "1",
            "--predictions",
            str(out),
        ],
        "test/utt2label",
    ),
    "prepare": (
        lambda w, out: ["prepare", *_s(w["audio"], out), "--pattern", "{spk}/{utt}.wav"],
        "audio",
    ),
}
if importlib.util.find_spec("matplotlib") is None:
    del COMMANDS["evaluate --plot"]
NAMES = list(COMMANDS)


def _input(w: dict[str, Path], key: str) -> Path:
    first, _, rest = key.partition("/")
    return w[first] / rest if rest else w[first]


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The error of a command: one line on stderr (besides progress bars)."""
    lines = capsys.readouterr().err.splitlines()
    lines = [x for x in lines if x.strip() and not re.search(r"\d+/\d+ \[", x)]
    assert len(lines) == 1, lines
    return lines[0]


def _snapshot(path: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``path`` (or ``path`` itself): relative name -> (bytes, inode)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path.parent)): (p.read_bytes(), p.stat().st_ino) for p in files}


# --------------------------------------------------------------------------- the rules
@pytest.mark.parametrize("name", NAMES)
def test_a_file_it_did_not_write_is_never_replaced(world, capsys, name) -> None:
    argv, _ = COMMANDS[name]
    out = world["root"] / "mine"
    if name == "prepare":
        out.mkdir()
        (out / "notes.txt").write_text("my notes\n")
    else:
        out.write_text("my notes, not gmmspeech's\n")
    before = _snapshot(out)
    capsys.readouterr()
    for extra in ([], ["--overwrite"]):
        assert main([*argv(world, out), *extra]) == 1
        err = _one_line(capsys)
        assert str(out) in err and "will not be replaced" in err
        assert _snapshot(out) == before


@pytest.mark.parametrize("name", NAMES)
def test_an_earlier_output_is_replaced_only_with_overwrite(world, capsys, name) -> None:
    argv, _ = COMMANDS[name]
    out = world["root"] / ("again" if name == "prepare" else "again.out")
    assert main(argv(world, out)) == 0
    first = _snapshot(out)
    capsys.readouterr()
    assert main(argv(world, out)) == 1
    err = _one_line(capsys)
    assert str(out) in err and "--overwrite" in err
    assert _snapshot(out) == first  # same bytes, same inodes: untouched
    assert main([*argv(world, out), "--overwrite"]) == 0
    second = _snapshot(out)
    assert second.keys() == first.keys()
    # written anew (atomic rename: a new inode for every file)
    assert all(second[k][1] != first[k][1] for k in first)


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
@pytest.mark.parametrize("name", NAMES)
def test_an_input_is_never_written_over(world, capsys, name, link) -> None:
    argv, key = COMMANDS[name]
    target = _input(world, key)
    if link == "hardlink" and target.is_dir():
        pytest.skip("folders have no hard links")
    out = target
    if link == "symlink":
        out = world["root"] / "link"
        out.symlink_to(target)
    elif link == "hardlink":
        out = world["root"] / "link"
        os.link(target, out)
    before = _snapshot(target)
    capsys.readouterr()
    assert main([*argv(world, out), "--overwrite"]) == 1
    err = _one_line(capsys)
    assert "also an input" in err
    assert _snapshot(target) == before


def test_train_ubm_removes_only_its_checkpoints(world) -> None:
    ckpt = world["root"] / "u.h5.ckpt"
    ckpt.mkdir()
    (ckpt / "notes.txt").write_text("mine\n")
    out = world["root"] / "u.h5"
    assert main(COMMANDS["train-ubm"][0](world, out)) == 0
    assert sorted(p.name for p in ckpt.iterdir()) == ["notes.txt"]


def test_extract_refuses_a_file_that_is_not_a_store(tmp_path, capsys) -> None:
    data = make_datadir(tmp_path, n_utts=2)
    out = tmp_path / "mine.h5"
    out.write_text("my notes\n")
    assert main(["extract", str(data), str(out), "--no-progress"]) == 1
    assert "will not be overwritten" in _one_line(capsys)
    assert out.read_text() == "my notes\n"


# ---------------------------------------------------------------------------- run
RUN_CONFIG = """\
name: trust
task: verification
data:
  root: {root}
  background: {{path: bg, pattern: "{{spk}}-{{n}}.wav"}}
  targets: {{path: tg, pattern: "{{spk}}/{{spk}}-{{n}}.wav"}}
features: {{n_mfcc: 8, deltas: 0, normalization: none}}
scoring: {{calibrate: false}}  # 3 background speakers: too few to calibrate on
"""


@pytest.fixture
def exp_config(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    for s in range(3):
        for u in range(2):
            write_wav(corpus / "bg" / f"b{s}-{u}.wav", utterance(10 * s + u, 0.3))
            write_wav(corpus / "tg" / f"t{s}" / f"t{s}-{u}.wav", utterance(50 + 10 * s + u, 0.3))
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(RUN_CONFIG.format(root=corpus), encoding="utf-8")
    return cfg


def _run(cfg: Path, out: Path, *extra: str) -> int:
    argv = ["run", str(cfg), "--out", str(out), "--stop-stage", "2", "--no-progress"]
    return main([*argv, *extra])


def test_run_refuses_a_folder_that_is_not_an_experiment(exp_config, capsys) -> None:
    out = exp_config.parent / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("my own config\n")
    assert _run(exp_config, out) == 1
    err = _one_line(capsys)
    assert str(out) in err and "--force" in err
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]


def test_run_accepts_a_folder_holding_only_its_config(exp_config) -> None:
    out = exp_config.parent / "mine"
    out.mkdir()
    cfg = out / "config.yaml"
    shutil.copy(exp_config, cfg)
    before = _snapshot(cfg)
    assert _run(cfg, out) == 0
    assert _snapshot(cfg) == before
    assert (out / ".gmmspeech" / "resolved-config.yaml").is_file()


def test_run_force_leaves_the_users_files_alone(exp_config, capsys) -> None:
    out = exp_config.parent / "mine"
    (out / "features").mkdir(parents=True)
    (out / "config.yaml").write_text("my own config\n")
    (out / "features" / "notes.txt").write_text("mine\n")
    write_store(out / "features" / "mine.h5", {"x": np.ones((3, 2), np.float32)})
    before = _snapshot(out)
    assert _run(exp_config, out, "--force") == 0
    assert _run(exp_config, out, "--set", "features.n_mfcc=6") == 0  # a new feature config
    after = _snapshot(out)
    assert {k: after[k] for k in before} == before
    with FeatureStore(out / "features" / "test.h5") as store:
        assert next(iter(store.values())).shape[1] == 6  # the stores were redone


def test_run_removes_only_its_own_stores(exp_config) -> None:
    out = exp_config.parent / "exp"
    assert _run(exp_config, out) == 0
    (out / "features" / "notes.txt").write_text("mine\n")
    write_store(out / "features" / "mine.h5", {"x": np.ones((3, 2), np.float32)})
    user = _snapshot(out / "features" / "notes.txt") | _snapshot(out / "features" / "mine.h5")
    old = (out / "features" / "test.h5").stat().st_ino
    assert _run(exp_config, out, "--set", "features.n_mfcc=6") == 0
    assert _snapshot(out / "features" / "notes.txt") | _snapshot(out / "features" / "mine.h5") == (
        user
    )
    assert (out / "features" / "test.h5").stat().st_ino != old
    assert (out / ".gmmspeech" / "resolved-config.yaml").is_file()
    assert not (out / "config.yaml").exists()


def test_run_never_replaces_a_users_file_at_an_output_path(exp_config, capsys) -> None:
    out = exp_config.parent / "mine"
    (out / "data" / "test").mkdir(parents=True)
    (out / "data" / "test" / "trials").write_text("my trials\n")
    assert _run(exp_config, out, "--force") == 1
    err = _one_line(capsys)
    assert "data/test/trials" in err and "not replaced" in err
    assert (out / "data" / "test" / "trials").read_text() == "my trials\n"


def test_an_output_turned_into_a_link_to_a_users_file_is_refused(exp_config, capsys) -> None:
    # the manifest lists notes.txt as the user's; later an output path of the experiment is
    # made a symlink to it: the rerun must refuse to write there, and notes.txt stays intact
    out = exp_config.parent / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    assert _run(exp_config, out, "--force") == 0
    trials = out / "data" / "test" / "trials"
    assert trials.is_file()
    trials.unlink()
    trials.symlink_to(out / "notes.txt")
    capsys.readouterr()
    assert _run(exp_config, out, "--set", "data.seed=1") == 1  # prepare rewrites the trials
    err = _one_line(capsys)
    assert "data/test/trials" in err and "not replaced" in err
    assert (out / "notes.txt").read_text() == "mine\n"
    assert trials.is_symlink()


# ------------------------------------------------------------------------ SIGTERM
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gmmspeech.cli.main", *args]


def test_sigterm_during_extract_exits_143_and_resumes(tmp_path) -> None:
    data = make_datadir(tmp_path, n_utts=120, seconds=1.0)
    out = tmp_path / "feats" / "f.h5"
    out.parent.mkdir()
    argv = _cli("extract", str(data), str(out), "--batch-size", "4", "--no-progress")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = out.with_name(out.name + ".parts")
    deadline = time.monotonic() + 60
    while not any(parts.glob("part-*.h5")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == (
        "gmmspeech extract: terminated (SIGTERM); rerun to resume"
    )
    assert "Traceback" not in err
    # no partial file: nothing half-written, only complete part files to resume from
    left = sorted(p.name for p in out.parent.rglob("*") if p.name.startswith("."))
    assert left == []
    assert not out.exists()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "already there" in done.stdout
    with FeatureStore(out) as store:
        assert len(store) == 120


#: ``gmmspeech run`` that sends itself SIGTERM when stage 2 starts its second store: a real
#: signal at a known point, wherever the scheduler puts the parent.
_RUN_TERMINATED = """
import os, signal, sys
from gmmspeech.cli.main import Terminated, _sigterm_raises, main
from gmmspeech.pipeline import common
real, calls = common.extract_to_store, []
def extract_to_store(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)
common.extract_to_store = extract_to_store
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_during_run_exits_143_and_resumes(exp_config) -> None:
    out = exp_config.parent / "exp"
    args = ["run", str(exp_config), "--out", str(out), "--no-progress"]
    args += ["--set", "ubm.n_components=2", "--set", "scoring.top_c=2"]
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_TERMINATED, *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 143, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "gmmspeech run: terminated (SIGTERM); rerun to resume"
    assert "stage 1 prepare: done" in proc.stdout and "stage 2" not in proc.stdout
    assert (out / "features" / "background.h5").is_file()  # the first store was complete
    assert not (out / "stages" / "02_extract.json").exists()
    assert [p for p in out.rglob(".*") if p.name != ".gmmspeech"] == []  # no temporary file
    done = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "stage 1 prepare: up to date, skipped" in done.stdout
    assert "1 already there" not in done.stdout  # the interrupted store, redone from scratch
    assert "extract background: 0 extracted, 6 already there" in done.stdout
    assert (out / "report.md").is_file()


def test_a_sigterm_landing_in_a_finalizer_is_not_lost() -> None:
    """Python swallows an exception raised in ``__del__`` or a weakref callback; the signal
    must still stop the command."""

    class Finalized:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside __del__

    def work() -> None:
        Finalized()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pass

    with pytest.raises(Terminated), _sigterm_raises():
        work()


# ---------------------------------------------------------------------- I/O errors
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
@pytest.mark.parametrize("name", NAMES)
def test_io_errors_are_one_line_and_leave_nothing(world, capsys, monkeypatch, name, code):
    argv, _ = COMMANDS[name]
    folder = world["root"] / "outdir"
    folder.mkdir()
    out = folder / "out"
    real = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).parent in (folder, out):  # the output (prepare: its files)
            raise OSError(code, os.strerror(code), str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    capsys.readouterr()
    assert main(argv(world, out)) == 1
    err = _one_line(capsys)
    assert str(folder) in err and os.strerror(code) in err
    assert "Traceback" not in err
    assert not os.path.lexists(out)
    # nothing half-written (train-ubm keeps its complete checkpoints, to resume from)
    assert [p for p in folder.rglob(".*")] == []


@pytest.mark.parametrize("name", ["train-ubm", "enroll"])
def test_an_hdf5_write_error_names_the_output(world, capsys, monkeypatch, name) -> None:
    """h5py reports ENOSPC in its message only, and about the temporary file."""
    argv, _ = COMMANDS[name]
    out = world["root"] / "full" / "out.h5"
    out.parent.mkdir()
    real = h5py.File

    def file(path, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if mode == "w" and Path(path).parent == out.parent:
            raise OSError(
                f"Unable to synchronously create file (unable to open file: name = '{path}', "
                f"errno = 28, error message = 'No space left on device', flags = 13)"
            )
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", file)
    capsys.readouterr()
    assert main(argv(world, out)) == 1
    err = _one_line(capsys)
    assert f"{out}: {os.strerror(errno.ENOSPC)}" in err
    assert not out.exists()
    # nothing half-written (train-ubm keeps its complete checkpoints, to resume from)
    assert [p for p in out.parent.rglob(".*")] == []


def test_an_io_error_in_run_is_one_line(exp_config, capsys, monkeypatch) -> None:
    out = exp_config.parent / "exp"
    real = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == "wav.scp":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert _run(exp_config, out) == 1
    err = _one_line(capsys)
    assert "wav.scp" in err and os.strerror(errno.ENOSPC) in err
    assert [p for p in out.rglob("*") if p.is_file()] == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("name", NAMES)
def test_a_read_only_folder_is_one_line(world, capsys, name) -> None:
    argv, _ = COMMANDS[name]
    folder = world["root"] / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        capsys.readouterr()
        assert main(argv(world, folder / "out")) == 1
        err = _one_line(capsys)
        assert "Permission denied" in err
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


# ---------------------------------------------------------------------------- umask
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_honour_the_umask(world, mask, mode) -> None:
    old = os.umask(mask)
    try:
        with atomic_path(world["root"] / "plain.txt") as tmp:
            tmp.write_text("x\n")
        for name in ("score", "enroll", "evaluate --json"):
            assert main(COMMANDS[name][0](world, world["root"] / f"{name[:5]}.out")) == 0
    finally:
        os.umask(old)
    written = [world["root"] / "plain.txt"]
    written += [world["root"] / f"{n[:5]}.out" for n in ("score", "enroll", "evaluate --json")]
    for p in written:
        assert p.stat().st_mode & 0o777 == mode, p


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_feature_stores_honour_the_umask(tmp_path, mask, mode) -> None:
    data = make_datadir(tmp_path, n_utts=2)
    old = os.umask(mask)
    try:
        assert main(["extract", str(data), str(tmp_path / "f.h5"), "--no-progress"]) == 0
    finally:
        os.umask(old)
    for p in (tmp_path / "f.h5", tmp_path / "f.h5.log"):
        assert p.stat().st_mode & 0o777 == mode, p


def test_bench_json_is_guarded_like_the_other_outputs(tmp_path, capsys) -> None:
    out = tmp_path / "em.json"
    argv = ["bench", "em", "--n", "500", "--d", "2", "--k", "2", "--repeat", "1"]
    out.write_text("my notes\n")
    assert main([*argv, "--json", str(out), "--overwrite"]) == 1
    assert "will not be replaced" in _one_line(capsys)
    assert out.read_text() == "my notes\n"
    out.write_text('{"benchmark": "em"}\n')  # what an earlier run leaves, as far as the check sees
    assert main([*argv, "--json", str(out)]) == 1
    assert "--overwrite" in _one_line(capsys)
