import json

from gmmspeech.cli import main


def test_bench_em_small_writes_json(tmp_path, capsys):
    out = tmp_path / "em.json"
    rc = main(
        ["bench", "em", "--n", "3000", "--d", "5", "--k", "16", "--repeat", "1", "--json", str(out)]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["n"] == 3000 and data["k"] == 16
    assert data["gmmspeech_seconds_per_iteration"] > 0
    assert (
        data["gmmspeech_frames_x_components_per_second"]
        == 3000 * 16 / data["gmmspeech_seconds_per_iteration"]
    )
    assert "s/it" in capsys.readouterr().out


def test_bench_em_vs_sklearn_reports_ratio(tmp_path, capsys):
    out = tmp_path / "em.json"
    rc = main(
        [
            "bench",
            "em",
            "--n",
            "2000",
            "--d",
            "3",
            "--k",
            "8",
            "--repeat",
            "1",
            "--vs",
            "sklearn",
            "--sklearn-dtypes",
            "float64",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    assert (
        data["speedup_vs_sklearn_float64"]
        == data["sklearn_float64_seconds_per_iteration"] / data["gmmspeech_seconds_per_iteration"]
    )


def test_usage_and_value_errors(capsys):
    assert main(["bench", "em", "--n", "0"]) == 1
    assert "--n: must be >= 1" in capsys.readouterr().err
    assert main(["bench", "nope"]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["--version"]) == 0
