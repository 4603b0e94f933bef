"""The output gate, over every subcommand of the CLI registry.

Every command in :data:`gmmspeech.cli.common.COMMANDS` must have a case here (a new command
without one fails :func:`test_every_command_has_a_case`). Each case runs the real CLI:

* with fresh outputs: every file that appeared or changed on disk must have been written
  through the gate (its record), so a writer that goes around it fails;
* with each output pointed at each of the command's inputs, and at a file or folder the
  toolkit did not write (also with ``--overwrite`` / ``--force``): exit 1, one line, and
  every file of the world keeps its bytes and its inode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers_audio import make_datadir, utterance, write_wav
from test_pipeline_fusion import Systems, two_experiments

import gmmspeech.cli.main as cli_main
from gmmspeech import DiagGMM
from gmmspeech.cli.common import COMMANDS
from gmmspeech.cli.main import build_parser, main
from gmmspeech.features.store import write_store
from gmmspeech.storage.gate import OutputGate

W = dict[str, Path]


@dataclasses.dataclass(frozen=True)
class Case:
    """One way of running a command: ``argv(world, outputs)`` with one path per slot.

    ``folders`` are the slots that name a folder to create.
    """

    argv: Callable[[W, dict[str, str]], list[str]]
    slots: tuple[str, ...]
    folders: tuple[str, ...] = ()


def _s(*paths: Path) -> list[str]:
    return [str(p) for p in paths]


TINY = ["--set", "ubm.n_components=2", "--no-progress"]
IV = ["--set", "ivector.rank=2", "--set", "ivector.n_iter=1"]

#: command -> its cases. Every command of the registry needs at least one.
CASES: dict[str, list[Case]] = {
    "prepare": [
        Case(
            lambda w, o: ["prepare", str(w["audio"]), o["out"], "--pattern", "{spk}/{utt}.wav"],
            ("out",),
            folders=("out",),
        ),
    ],
    "extract": [
        Case(
            lambda w, o: [
                "extract",
                str(w["data"]),
                o["out"],
                "--no-progress",
                "--config",
                str(w["feat_cfg"]),
            ],
            ("out",),
        ),
    ],
    "bench": [
        Case(
            lambda w, o: [
                "bench",
                "em",
                "--n",
                "300",
                "--d",
                "2",
                "--k",
                "2",
                "--repeat",
                "1",
                "--json",
                o["json"],
            ],
            ("json",),
        ),
    ],
    "enroll": [
        Case(
            lambda w, o: [
                "enroll",
                *_s(w["ubm"], w["feats"], w["enroll"]),
                o["out"],
                "--no-progress",
            ],
            ("out",),
        ),
    ],
    "score": [
        Case(
            lambda w, o: [
                "score",
                *_s(w["ubm"], w["models"], w["feats"], w["trials"]),
                o["out"],
                "--no-progress",
            ],
            ("out",),
        ),
    ],
    "evaluate": [
        Case(
            lambda w, o: [
                "evaluate",
                *_s(w["scores"], w["trials"]),
                "--json",
                o["json"],
                "--hist",
                o["hist"],
                "--calibrate-on",
                *_s(w["scores"], w["trials"]),
                "--write-calibrated",
                o["cal"],
            ],
            ("json", "hist", "cal"),
        ),
        Case(
            lambda w, o: ["evaluate", *_s(w["scores"], w["trials"]), "--plot", o["plot"]], ("plot",)
        ),
    ],
    "calibrate": [
        Case(
            lambda w, o: [
                "calibrate",
                "--train",
                *_s(w["scores"], w["trials"]),
                "--save",
                o["save"],
                str(w["scores"]),  # the same system's scores (another is refused)
                "-o",
                o["out"],
            ],
            ("save", "out"),
        ),
        Case(
            lambda w, o: ["calibrate", "--load", str(w["cal"]), str(w["scores"]), "-o", o["out"]],
            ("out",),
        ),
        Case(
            lambda w, o: ["calibrate", "--enroll-folds", str(w["enroll"]), o["out"]],
            ("out",),
            folders=("out",),
        ),
    ],
    "fuse": [
        Case(
            lambda w, o: [
                "fuse",
                "--train",
                *_s(w["trials"], w["scores"], w["ivscores"]),
                "--apply",
                *_s(w["scores"], w["ivscores"]),
                "--trials",
                str(w["trials"]),
                "-o",
                o["out"],
                "--save",
                o["save"],
            ],
            ("out", "save"),
        ),
        Case(
            lambda w, o: [
                "fuse",
                "--load",
                str(w["fusion"]),
                "--apply",
                *_s(w["ivscores"], w["scores"]),
                "--trials",
                str(w["trials"]),
                "-o",
                o["out"],
            ],
            ("out",),
        ),
    ],
    "classify": [
        Case(
            lambda w, o: [
                "classify",
                *_s(w["feats"], w["enroll"], w["test"]),
                "--mode",
                "ml",
                "--n-components",
                "1",
                "--json",
                o["json"],
                "--predictions",
                o["pred"],
            ],
            ("json", "pred"),
        ),
    ],
    "train-ubm": [
        Case(lambda w, o: ["train-ubm", str(w["feats"]), o["out"], *TINY], ("out",)),
        Case(
            lambda w, o: [
                "train-ubm",
                str(w["feats"]),
                o["out"],
                "--checkpoint-dir",
                o["ckpt"],
                *TINY,
            ],
            ("out", "ckpt"),
            folders=("ckpt",),
        ),
    ],
    "train-tv": [
        Case(lambda w, o: ["train-tv", *_s(w["ubm"], w["feats"]), o["out"], *IV], ("out",)),
    ],
    "extract-ivectors": [
        Case(lambda w, o: ["extract-ivectors", *_s(w["tv"], w["feats"]), o["out"], *IV], ("out",)),
    ],
    "train-backend": [
        Case(
            lambda w, o: [
                "train-backend",
                *_s(w["ivectors"], w["enroll"]),
                o["out"],
                "--set",
                "backend.scorer=cosine",
            ],
            ("out",),
        ),
    ],
    "score-ivectors": [
        Case(
            lambda w, o: [
                "score-ivectors",
                *_s(w["backend"], w["ivectors"], w["enroll"], w["ivectors"], w["trials"]),
                o["out"],
            ],
            ("out",),
        ),
    ],
    "run": [
        Case(
            lambda w, o: ["run", str(w["fusion_cfg"]), "--out", o["out"], "--no-progress"],
            ("out",),
            folders=("out",),
        ),
    ],
    "demo": [
        Case(
            lambda w, o: ["demo", "--out", o["out"], "--stop-stage", "1", "--no-progress"],
            ("out",),
            folders=("out",),
        ),
    ],
}


# ------------------------------------------------------------------------ a small world
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> W:
    """Inputs of every kind the commands read, most of them written by the CLI itself."""
    root = tmp_path_factory.mktemp("gate")
    rng = np.random.default_rng(0)
    k, d = 8, 3
    ubm = DiagGMM(np.full(k, 1 / k), rng.normal(0, 2, (k, d)), np.ones((k, d)))
    ubm.save(root / "ubm.h5")
    feats: dict[str, np.ndarray] = {}
    e_lines, t_lines, trials = [], [], []
    for s in range(3):
        off = rng.normal(0, 1.0, d)
        for j in range(3):
            for kind, lines, n in (("e", e_lines, 120), ("t", t_lines, 80)):
                u = f"spk{s}-{kind}{j}"
                feats[u] = (ubm.sample(n, rng)[0] + off).astype(np.float32)
                lines.append(f"{u} spk{s}")
    for m in range(3):
        for line in t_lines:
            u = line.split()[0]
            trials.append(f"spk{m} {u} {'target' if u.startswith(f'spk{m}-') else 'nontarget'}")
    write_store(root / "feats.h5", feats)
    for name, lines in (("enroll", e_lines), ("test", t_lines)):
        (root / name).mkdir()
        for f in ("utt2spk", "utt2label"):
            (root / name / f).write_text("\n".join(lines) + "\n")
        wav = [f"{x.split()[0]} {root / 'audio' / x.split()[0]}.wav" for x in lines]
        (root / name / "wav.scp").write_text("\n".join(wav) + "\n")
    (root / "trials").write_text("\n".join(trials) + "\n")
    for i in range(4):
        write_wav(root / "audio" / f"s{i % 2}" / f"u{i}.wav", utterance(i, 0.3))
    w = {n: root / n for n in ("ubm.h5", "feats.h5", "enroll", "test", "trials", "audio")}
    w = {n.split(".")[0]: p for n, p in w.items()}
    w["root"] = root
    w["data"] = make_datadir(root / "corpus", n_utts=2)
    w["feat_cfg"] = root / "features.yaml"
    w["feat_cfg"].write_text("features:\n  n_mfcc: 13\n")
    made = {
        "models": "models.h5",
        "scores": "scores.txt",
        "tv": "tv.h5",
        "ivectors": "iv.h5",
        "backend": "backend.h5",
        "ivscores": "ivscores.txt",
        "cal": "cal.json",
        "fusion": "fusion.json",
    }
    w.update({key: root / name for key, name in made.items()})
    steps = [
        ["enroll", *_s(w["ubm"], w["feats"], w["enroll"], w["models"]), "--no-progress"],
        ["score", *_s(w["ubm"], w["models"], w["feats"], w["trials"], w["scores"])],
        ["train-tv", *_s(w["ubm"], w["feats"], w["tv"]), *IV],
        ["extract-ivectors", *_s(w["tv"], w["feats"], w["ivectors"])],
        [
            "train-backend",
            *_s(w["ivectors"], w["enroll"], w["backend"]),
            "--set",
            "backend.scorer=cosine",
        ],
        [
            "score-ivectors",
            *_s(
                w["backend"], w["ivectors"], w["enroll"], w["ivectors"], w["trials"], w["ivscores"]
            ),
        ],
        ["calibrate", "--train", *_s(w["scores"], w["trials"]), "--save", str(w["cal"])],
        [
            "fuse",
            "--train",
            *_s(w["trials"], w["scores"], w["ivscores"]),
            "--save",
            str(w["fusion"]),
            "--apply",
            *_s(w["scores"], w["ivscores"]),
            "--trials",
            str(w["trials"]),
            "-o",
            str(root / "fused.txt"),
        ],
    ]
    for argv in steps:
        assert main(argv) == 0, argv
    w["fusion_cfg"] = two_experiments(root / "fusion", Systems())
    w["experiment"] = root / "fusion" / "a"
    return w


FileState = dict[Path, tuple[bytes, int]]


def _state(root: Path) -> FileState:
    """Every file under ``root``: its bytes and its inode."""
    return {p: (p.read_bytes(), p.stat().st_ino) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def gates(monkeypatch: pytest.MonkeyPatch) -> list[OutputGate]:
    """The gates the CLI opens, kept for inspection after the command returns."""
    seen: list[OutputGate] = []
    real_open = cli_main.open_gate

    @contextlib.contextmanager
    def keep(*args, **kwargs) -> Iterator[OutputGate]:
        with real_open(*args, **kwargs) as gate:
            seen.append(gate)
            yield gate

    monkeypatch.setattr(cli_main, "open_gate", keep)
    return seen


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.splitlines()
    lines = [x for x in lines if x.strip() and not re.search(r"\d+/\d+ \[|^\d\d:\d\d:\d\d ", x)]
    assert len(lines) == 1, lines
    return lines[0]


def _flags(command: str) -> list[str]:
    """The flag that lets the command replace an earlier output (or use a folder)."""
    opts = build_parser(command)._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    strings = {s for a in opts._actions for s in a.option_strings}
    return [f for f in ("--overwrite", "--force") if f in strings]


CASE_IDS = [(c, i) for c, cases in CASES.items() for i in range(len(cases))]


def _fresh(w: W, name: str) -> Path:
    base = w["root"] / "out" / name
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    return base


# --------------------------------------------------------------------------- the tests
def test_every_command_has_a_case() -> None:
    missing = sorted(set(COMMANDS) - set(CASES))
    assert not missing, f"commands without a case in the output-gate table: {missing}"


@pytest.mark.parametrize(("command", "i"), CASE_IDS, ids=[f"{c}-{i}" for c, i in CASE_IDS])
def test_every_write_goes_through_the_gate(world, gates, command, i, monkeypatch) -> None:
    case = CASES[command][i]
    base = _fresh(world, f"{command}-{i}")
    outs = {slot: str(base / slot) for slot in case.slots}
    monkeypatch.chdir(base)  # a write to a relative path lands where this test looks
    before = _state(world["root"])
    assert main(case.argv(world, outs)) == 0
    after = _state(world["root"])
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed, "the command wrote nothing"
    (gate,) = gates
    written = set(gate.written)
    bypass = sorted(str(p) for p in changed if Path(os.path.realpath(p)) not in written)
    assert not bypass, f"{command}: written around the output gate: {bypass}"
    assert not gate.undeclared, f"{command}: undeclared outputs {gate.undeclared}"
    assert all(p in after for p in before), "a file was deleted"


def _inputs(world: W, argv: list[str]) -> list[str]:
    """The command's inputs: the world's files and folders named in ``argv``."""
    root = str(world["root"])
    return [a for a in argv if a.startswith(root) and os.path.lexists(a)]


@pytest.fixture(scope="module")
def input_targets(world: W) -> dict[tuple[str, int], dict[str, str]]:
    """(command, case) -> the inputs it names, by file name."""
    probe = {s: "OUT" for c in CASES.values() for case in c for s in case.slots}
    table = {}
    for command, cases in CASES.items():
        for i, case in enumerate(cases):
            named = {f"input:{Path(n).name}": n for n in _inputs(world, case.argv(world, probe))}
            if command == "run":  # the experiments a fusion reads
                named["input:experiment"] = str(world["experiment"])
            table[(command, i)] = named
    return table


#: The targets each output slot is pointed at (the world's file names are fixed).
REFUSALS = [
    (c, i, slot, t)
    for c, cases in CASES.items()
    for i, case in enumerate(cases)
    for slot in case.slots
    for t in ("inputs", "foreign")
]


@pytest.mark.parametrize(
    ("command", "i", "slot", "what"), REFUSALS, ids=[f"{c}-{i}-{s}-{t}" for c, i, s, t in REFUSALS]
)
def test_outputs_at_inputs_and_foreign_files_are_refused(
    world, input_targets, command, i, slot, what, capsys, monkeypatch
) -> None:
    case = CASES[command][i]
    base = _fresh(world, f"refuse-{command}-{i}-{slot}")
    monkeypatch.chdir(base)
    if what == "inputs":
        targets = input_targets[(command, i)]
        if not targets:
            pytest.skip(f"{command} names no input")
    else:  # made anew for each test: a --force run may turn a folder into an experiment
        notes = base / "notes.txt"
        notes.write_text("my notes, not gmmspeech's\n")
        targets = {"foreign file": str(notes)}
        if slot in case.folders:
            (base / "my folder").mkdir()
            (base / "my folder" / "notes.txt").write_text("mine\n")
            targets["foreign folder"] = str(base / "my folder")
    for name, target in targets.items():
        for extra in ([], *([f] for f in _flags(command))):
            outs = {s: str(base / s) for s in case.slots} | {slot: target}
            before = _state(world["root"])
            capsys.readouterr()
            code = main([*case.argv(world, outs), *extra])
            after = _state(world["root"])
            if code == 0 and name == "foreign folder" and (extra or slot == "ckpt"):
                # documented: --force uses a folder that holds other files, and checkpoints
                # go into the folder given; what was there is never replaced nor deleted
                own = [str(base / s) for s in case.slots]  # an earlier run's outputs
                kept = {p: v for p, v in before.items() if not str(p).startswith(tuple(own))}
                assert {p: after.get(p) for p in kept} == kept, (name, extra)
                continue
            assert code == 1, (name, extra)
            err = _one_line(capsys)
            assert "error:" in err, err
            assert after == before, (name, extra)
