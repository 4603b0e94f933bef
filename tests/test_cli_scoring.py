"""End to end through the CLI: enroll -> score -> evaluate; classify; bad input exits 1."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from gmmspeech import DiagGMM, SpeakerModels, llr
from gmmspeech.cli.main import main
from gmmspeech.corpus.scorefiles import read_scores


def _world(tmp: Path, wav_scp: bool) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    k, d = 8, 3
    ubm = DiagGMM(np.full(k, 1 / k), rng.normal(0, 2, (k, d)), np.ones((k, d)))
    ubm.save(tmp / "ubm.h5")
    offsets = {f"spk{i}": rng.normal(0, 1.0, d) for i in range(4)}
    feats: dict[str, np.ndarray] = {}
    enroll_lines, test_lines = [], []
    for spk, off in offsets.items():
        for j in range(2):
            u = f"{spk}-e{j}"
            feats[u] = (ubm.sample(150, rng)[0] + off).astype(np.float32)
            enroll_lines.append(f"{u} {spk}")
        for j in range(3):
            u = f"{spk}-t{j}"
            feats[u] = (ubm.sample(100, rng)[0] + off).astype(np.float32)
            test_lines.append(u)
    with h5py.File(tmp / "feats.h5", "w") as f:
        for u, x in feats.items():
            f.create_dataset(u, data=x)
    enroll_dir = tmp / "enroll"
    enroll_dir.mkdir()
    (enroll_dir / "utt2spk").write_text("\n".join(sorted(enroll_lines)) + "\n")
    if wav_scp:
        (enroll_dir / "wav.scp").write_text(
            "".join(
                f"{line.split()[0]} /nowhere/{line.split()[0]}.wav\n"
                for line in sorted(enroll_lines)
            )
        )
    trials = [
        f"{spk} {u} {'target' if u.startswith(spk + '-') else 'nontarget'}"
        for spk in offsets
        for u in test_lines
    ]
    (tmp / "trials").write_text("\n".join(trials) + "\n")
    return {
        "ubm": tmp / "ubm.h5",
        "feats": tmp / "feats.h5",
        "enroll": enroll_dir,
        "trials": tmp / "trials",
        "models": tmp / "models.h5",
    }


@pytest.mark.parametrize("wav_scp", [False, True])
def test_enroll_score_evaluate(tmp_path: Path, wav_scp: bool, capsys) -> None:
    w = _world(tmp_path, wav_scp)
    assert (
        main(
            [
                "enroll",
                str(w["ubm"]),
                str(w["feats"]),
                str(w["enroll"]),
                str(w["models"]),
                "--no-progress",
            ]
        )
        == 0
    )
    ubm = DiagGMM.load(w["ubm"])
    models = SpeakerModels.load(w["models"], ubm)
    assert models.ids == ["spk0", "spk1", "spk2", "spk3"]
    with h5py.File(w["feats"], "r") as f:
        x = f["spk2-t1"][()]
    for method in ("exact", "topc", "linear"):
        out = tmp_path / f"scores_{method}.txt"
        assert (
            main(
                [
                    "score",
                    str(w["ubm"]),
                    str(w["models"]),
                    str(w["feats"]),
                    str(w["trials"]),
                    str(out),
                    "--method",
                    method,
                    "--top-c",
                    "3",
                    "--no-progress",
                ]
            )
            == 0
        )
        scores = read_scores(out)
        assert len(scores) == 4 * 12
        ref = llr(ubm, models["spk1"], x, method=method, top_c=3 if method == "topc" else None)
        assert scores[("spk1", "spk2-t1")] == pytest.approx(ref, abs=1e-5)
    js = tmp_path / "m.json"
    assert (
        main(["evaluate", str(tmp_path / "scores_topc.txt"), str(w["trials"]), "--json", str(js)])
        == 0
    )
    m = json.loads(js.read_text())
    assert m["raw"]["n_target"] == 12 and m["raw"]["n_nontarget"] == 36
    assert m["raw"]["eer"] < 0.2  # speakers are well apart
    assert "EER%" in capsys.readouterr().out
    # a calibration trained on the exact scores is not applied to the top-C ones
    argv = ["evaluate", str(tmp_path / "scores_topc.txt"), str(w["trials"]), "--calibrate-on"]
    argv += [str(tmp_path / "scores_exact.txt"), str(w["trials"]), "--json", str(js)]
    argv += ["--overwrite"]  # replaces the metrics of the raw scores above
    assert main(argv) == 1
    assert "(method: topc here vs exact there)" in capsys.readouterr().err
    argv[4] = str(tmp_path / "scores_topc.txt")  # calibrated on the same system's scores
    assert main(argv) == 0
    assert "calibrated" in json.loads(js.read_text())


def test_score_with_snorm(tmp_path: Path) -> None:
    w = _world(tmp_path, False)
    assert (
        main(
            [
                "enroll",
                str(w["ubm"]),
                str(w["feats"]),
                str(w["enroll"]),
                str(w["models"]),
                "--no-progress",
            ]
        )
        == 0
    )
    out = tmp_path / "s.txt"
    # the enrolment dir doubles as the cohort here (4 speakers, 8 utterances)
    for norm in ("z", "t", "zt", "s", "as"):
        assert (
            main(
                [
                    "score",
                    str(w["ubm"]),
                    str(w["models"]),
                    str(w["feats"]),
                    str(w["trials"]),
                    str(out),
                    "--norm",
                    norm,
                    "--cohort-dir",
                    str(w["enroll"]),
                    "--top-n",
                    "3",
                    "--no-progress",
                    "--overwrite",  # one scores file, rewritten per norm
                ]
            )
            == 0
        ), norm
        assert len(read_scores(out)) == 48


def test_bad_trials_exit_1_naming_line(tmp_path: Path, capsys) -> None:
    w = _world(tmp_path, False)
    main(
        [
            "enroll",
            str(w["ubm"]),
            str(w["feats"]),
            str(w["enroll"]),
            str(w["models"]),
            "--no-progress",
        ]
    )
    bad = tmp_path / "bad_trials"
    bad.write_text("spk0 spk0-t0 target\nspk9 spk0-t1 nontarget\n")
    out = tmp_path / "s.txt"
    assert (
        main(
            [
                "score",
                str(w["ubm"]),
                str(w["models"]),
                str(w["feats"]),
                str(bad),
                str(out),
                "--no-progress",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "bad_trials:2" in err and "'spk9'" in err
    assert not out.exists()  # nothing half-written
    bad.write_text("spk0 nobody target\n")
    assert (
        main(
            [
                "score",
                str(w["ubm"]),
                str(w["models"]),
                str(w["feats"]),
                str(bad),
                str(out),
                "--no-progress",
            ]
        )
        == 1
    )
    assert "'nobody'" in capsys.readouterr().err


def test_classify(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    centres = {"a": 0.0, "b": 3.0, "c": -3.0}
    with h5py.File(tmp_path / "f.h5", "w") as f:
        for part in ("train", "test"):
            d = tmp_path / part
            d.mkdir()
            lines = []
            for lab, c in centres.items():
                for i in range(4):
                    u = f"{part}-{lab}{i}"
                    f.create_dataset(u, data=rng.normal(c, 1.0, (60, 2)).astype(np.float32))
                    lines.append(f"{u} {lab}")
            (d / "utt2label").write_text("\n".join(lines) + "\n")
    js = tmp_path / "r.json"
    assert (
        main(
            [
                "classify",
                str(tmp_path / "f.h5"),
                str(tmp_path / "train"),
                str(tmp_path / "test"),
                "--n-components",
                "2",
                "--json",
                str(js),
                "--log-level",
                "ERROR",
            ]
        )
        == 0
    )
    r = json.loads(js.read_text())
    assert r["accuracy"] == 1.0
    assert np.trace(np.array(r["confusion_matrix"])) == 12
