import json

from gmmspeech.cli.main import main


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


def test_bench_features_small_writes_consistent_figures(tmp_path, capsys):
    out = tmp_path / "f.json"
    args = ["--n-utts", "8", "--seconds", "1", "--rtf-utts", "2", "--repeat", "1"]
    assert main(["bench", "features", *args, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    runs = data["extract"]
    assert set(runs) == {"local", "jobs1", "jobs2"}
    assert (
        runs["local"]["store_bytes"] == runs["jobs1"]["store_bytes"] == runs["jobs2"]["store_bytes"]
    )
    assert all(r["n_extracted"] == 8 for r in runs.values())
    assert all(0 < r["peak_rss_mib"] < 2000 for r in runs.values())
    assert runs["local"]["worker_peak_rss_mib"] == {}
    assert all(0 < m < 2000 for m in runs["jobs2"]["worker_peak_rss_mib"].values())
    for r in runs.values():
        assert r["fixed_seconds"] == r["seconds"] - r["work_seconds"]
        assert 0 < r["work_seconds"] < r["seconds"]
    assert data["speedup"]["work"] == runs["jobs1"]["work_seconds"] / runs["jobs2"]["work_seconds"]
    assert data["speedup"]["end_to_end"] == runs["jobs1"]["seconds"] / runs["jobs2"]["seconds"]
    assert data["rtf"]["n_signals"] == 2
    best = data["rtf"]["seconds_best"]
    assert data["rtf"]["overhead_vs_librosa"] == best["extract_features"] / best["librosa_mfcc"] - 1
    text = capsys.readouterr().out
    assert "faster on the per-utterance work" in text and "vs bare librosa.feature.mfcc" in text
