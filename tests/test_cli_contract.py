"""The uniform CLI contract: help with an example, --log-level, exit codes 0 / 1 / 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gmmspeech.cli.common import COMMANDS
from gmmspeech.cli.main import build_parser, main

EXPECTED = {
    "prepare",
    "extract",
    "train-ubm",
    "enroll",
    "score",
    "evaluate",
    "classify",
    "run",
    "demo",
    "bench",
}


def test_every_issue_command_is_registered() -> None:
    assert set(COMMANDS) >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_help_has_an_example_and_log_level(name: str, capsys) -> None:
    assert main([name, "--help"]) == 0
    text = capsys.readouterr().out
    assert "example:" in text and f"gmmspeech {name}" in text.split("example:")[1]
    assert "--log-level" in text


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_usage_errors_exit_2(name: str, capsys) -> None:
    assert main([name, "--no-such-option"]) == 2
    capsys.readouterr()


def test_unknown_command_exits_2(capsys) -> None:
    assert main(["no-such-command"]) == 2
    assert main([]) == 2
    capsys.readouterr()


def test_data_error_exits_1_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["run", str(tmp_path / "missing.yaml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.yaml: no such config file" in err[0]
    assert main(["train-ubm", str(tmp_path / "none.h5"), str(tmp_path / "ubm.h5")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.h5" in err[0]
    assert not (tmp_path / "ubm.h5").exists()


def test_log_level_is_honoured(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ubm: {n_componets: 3}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gmmspeech.cli.main",
            "train-ubm",
            "--log-level",
            "ERROR",
            "a.h5",
            "b",
        ]
        + ["--config", str(cfg)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "c.yaml:1: unknown key 'ubm.n_componets'; did you mean 'ubm.n_components'?" in (
        proc.stderr
    )


def test_parser_builds_without_heavy_imports() -> None:
    # `import librosa` itself is lazy (a few ms: submodules load at first use); what costs
    # seconds is librosa's feature/spectrum modules with numba, and scipy.signal/optimize/special.
    # The CLI imports only the module of the command being run: `gmmspeech --help` and the
    # commands that do not plot or calibrate start without any of them.
    heavy = ("librosa.feature", "librosa.core.spectrum", "numba", "scipy.optimize")
    heavy += ("scipy.signal", "scipy.special")
    for command in ("", "prepare", "extract", "enroll", "score", "train-ubm"):
        code = (
            f"import sys; from gmmspeech.cli.main import build_parser; build_parser({command!r}); "
            f"print(*[int(m in sys.modules) for m in {heavy!r}])"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        assert out == ["0"] * len(heavy), f"'gmmspeech {command}' loads {out} of {heavy}"
    assert build_parser().prog == "gmmspeech"


def test_run_and_demo_start_without_scikit_learn() -> None:
    # scikit-learn's import costs about 0.6 s, a fifth of the demo's budget; only the
    # classification back ends and the estimators use it, and they import it themselves.
    for command in ("run", "demo"):
        code = (
            f"import sys; from gmmspeech.cli.main import build_parser; build_parser({command!r}); "
            "import gmmspeech.pipeline; print(int('sklearn' in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        assert out == ["0"], f"'gmmspeech {command}' loads scikit-learn"


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["bench", "ubm"], "INFO"),
        (["bench", "ubm", "--log-level", "WARNING"], "WARNING"),
        (["--log-level", "ERROR", "bench", "ubm"], "ERROR"),
        (["bench", "--log-level", "ERROR", "ubm"], "ERROR"),
        (["--log-level", "ERROR", "bench", "ubm", "--log-level", "DEBUG"], "DEBUG"),
        (["extract", "data", "feats.h5", "--log-level", "WARNING"], "WARNING"),
        (["--log-level", "WARNING", "extract", "data", "feats.h5"], "WARNING"),
        (["--log-level=ERROR", "train-ubm", "f.h5", "ubm.h5"], "ERROR"),
        (["train-ubm", "f.h5", "ubm.h5", "--log-level=DEBUG"], "DEBUG"),
        (["--log-level", "ERROR", "run", "exp.yaml"], "ERROR"),
        (["demo", "--log-level", "WARNING"], "WARNING"),
    ],
)
def test_global_options_before_or_after_the_command(argv: list[str], level: str) -> None:
    command = next(a for a in argv if a in COMMANDS)
    assert build_parser(command).parse_args(argv).log_level == level


@pytest.mark.parametrize(
    "argv", [["--version"], ["extract", "--version"], ["bench", "ubm", "--version"]]
)
def test_version_anywhere(argv: list[str], capsys) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("gmmspeech ")


def test_log_level_after_a_nested_subcommand_is_honoured() -> None:
    """`bench ubm --log-level WARNING` runs and hides the INFO lines the same run shows."""
    cmd = [sys.executable, "-m", "gmmspeech.cli.main", "bench", "ubm", "--n", "2000", "--d", "2"]
    cmd += ["--k", "4", "--no-progress"]
    runs = [
        subprocess.run(cmd + extra, capture_output=True, text=True, check=False)
        for extra in ([], ["--log-level", "WARNING"])
    ]
    assert [r.returncode for r in runs] == [0, 0]
    assert " INFO " in runs[0].stderr
    assert " INFO " not in runs[1].stderr and "UBM N=2000" in runs[1].stdout
