"""gmmspeech run / pipeline: stages, skip-if-done, resume, results, bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import minicorpora
import numpy as np
import pytest
import soundfile as sf

from gmmspeech.cli.main import main
from gmmspeech.config.loader import load_config
from gmmspeech.corpus.datadir import DataDir
from gmmspeech.errors import ConfigError
from gmmspeech.pipeline import REGISTRY, STAGES, Experiment, stage_number, stages_of

SR = 16000


def voice(spk: int, seed: int, seconds: float = 1.0) -> np.ndarray:
    """The mini-corpus voice with this module's seeding and 1 s clips."""
    return minicorpora.voice(spk, seed, seconds, stride=1000)


def make_corpus(root: Path, n_bg: int = 6, n_tg: int = 4, n_utt: int = 4) -> Path:
    (root / "bg").mkdir(parents=True)
    for s in range(n_bg):
        for u in range(2):
            sf.write(root / "bg" / f"b{s}-{u}.wav", voice(s, u), SR)
    for s in range(n_tg):
        d = root / "tg" / f"t{s}"
        d.mkdir(parents=True, exist_ok=True)
        for u in range(n_utt):
            sf.write(d / f"t{s}-{u}.wav", voice(n_bg + s, u), SR)
    return root


def make_single_utterance_corpus(root: Path) -> Path:
    """Background speakers with one 2 s utterance each (the LibriSpeech samples' case) and 4
    target speakers with 8 utterances of 1 s."""
    (root / "bg").mkdir(parents=True)
    for s in range(6):
        sf.write(root / "bg" / f"b{s}-0.wav", voice(s, 0, seconds=2.0), SR)
    for s in range(4):
        (root / "tg" / f"t{s}").mkdir(parents=True)
        for u in range(8):
            sf.write(root / "tg" / f"t{s}" / f"t{s}-{u}.wav", voice(6 + s, u), SR)
    return root


CONFIG = """\
name: synth
task: verification
data:
  root: corpus
  background: {{path: bg, pattern: "{{spk}}-{{n}}.wav"}}
  targets: {{path: tg, pattern: "{{spk}}/{{spk}}-{{n}}.wav"}}
features: {{n_mfcc: 13, deltas: 1, normalization: none}}  # CMVN would remove the
# synthetic voices' only difference, their static spectral envelope
ubm:
  n_components: 4
  iterations_per_stage: [1, 2]
  final_max_iterations: 2
scoring:
  top_c: 2
{extra}"""


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    make_corpus(tmp_path / "corpus")
    (tmp_path / "exp.yaml").write_text(CONFIG.format(extra=""), encoding="utf-8")
    return tmp_path


def record_hashes(out: Path) -> dict[str, tuple[str, float]]:
    recs = {}
    for p in sorted((out / "stages").glob("*.json")):
        rec = json.loads(p.read_text())
        recs[rec["name"]] = (rec["hash"], p.stat().st_mtime_ns)
    return recs


def test_run_verification_end_to_end(setup: Path, capsys) -> None:
    out = setup / "exp"
    rc = main(["run", str(setup / "exp.yaml"), "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    for i, name in enumerate(STAGES, 1):
        assert f"stage {i} {name}: done" in printed
    assert "utterances: 28 extracted, 0 failed" in printed  # 6 x 2 bg + 4 x 4 target files
    res = json.loads((out / "results.json").read_text())
    # the trials are all (model, test) pairs: 4 models x 8 test utterances, 8 targets
    assert (res["n_trials"], res["n_target"], res["n_models"]) == (32, 8, 4)
    # recompute the metrics from the written scores and the trial list, independently
    labels = {}
    for line in (out / "data/test/trials").read_text().splitlines():
        m, t, k = line.split()
        labels[m, t] = k == "target"
    lines = (out / "scores/scores.txt").read_text().splitlines()
    rows = [line.split() for line in lines if not line.startswith("#")]  # after the header
    s = np.array([float(r[2]) for r in rows])
    t = np.array([labels[r[0], r[1]] for r in rows])
    assert t.sum() == 8 and len(s) == 32
    tar, non = s[t], s[~t]
    # EER: fraction of errors at the best threshold when the sets separate; otherwise
    # between the (miss, fa) rates at the equal-rate crossing
    if tar.min() > non.max():
        assert res["eer"] == 0.0
    else:
        thr = np.sort(s)
        miss = np.array([(tar < x).mean() for x in thr])
        fa = np.array([(non >= x).mean() for x in thr])
        assert np.min(np.maximum(miss, fa)) >= res["eer"] - 1e-12
    assert res["eer"] < 0.25  # the synthetic speakers are easy to tell apart
    # calibration: trained on background speakers only (b0..b5: one enrolment and one test
    # utterance each) in two groups (b0 b2 b4 | b1 b3 b5) with trials inside a group,
    # targets where the speakers agree; llr = a s + b of the written scores
    cal = json.loads((out / "calibration/calibration.json").read_text())
    cal_trials = [line.split() for line in (out / "calibration/trials").read_text().splitlines()]
    assert {m for m, _, _ in cal_trials} == {f"b{i}" for i in range(6)}
    assert len(cal_trials) == 18
    assert all(int(m[1]) % 2 == int(t[1]) % 2 for m, t, _ in cal_trials)
    assert all((k == "target") == (t.split("-")[0] == m) for m, t, k in cal_trials)
    llr = {
        tuple(r[:2]): float(r[2])
        for r in (line.split() for line in (out / "scores/calibrated.txt").read_text().splitlines())
        if r[0] != "#"
    }
    for r in rows:
        assert llr[r[0], r[1]] == pytest.approx(cal["slope"] * float(r[2]) + cal["offset"],
                                                rel=1e-7, abs=1e-7)  # fmt: skip
    assert res["calibrated"]["act_dcf"] == res["act_dcf"]
    assert res["act_dcf_uncalibrated"] == res["raw"]["act_dcf"]
    assert "| calibrated |" in (out / "report.md").read_text()
    assert (out / "det.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "EER %" in report and "| 3 | ubm |" in report
    assert "n_components: 4" in report  # the resolved config is in the report
    cfg_text = (out / ".gmmspeech" / "resolved-config.yaml").read_text()
    assert cfg_text.startswith("# resolved gmmspeech config; config_hash: ")


def test_skip_when_done_and_partial_rerun(setup: Path, capsys) -> None:
    out = setup / "exp"
    args = ["run", str(setup / "exp.yaml"), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    before = record_hashes(out)
    model_mtime = (out / "ubm/ubm.h5").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("up to date, skipped") == len(STAGES)
    assert "utterances:" not in printed  # nothing was extracted by this invocation
    assert record_hashes(out) == before
    # a scoring change reruns normalise.. only: stages 1-5 keep their records and files
    assert main([*args, "--set", "scoring.norm=z"]) == 0
    printed = capsys.readouterr().out
    for i in range(1, 6):
        assert f"stage {i} {STAGES[i - 1]}: up to date" in printed
    for i in range(6, len(STAGES) + 1):
        assert f"stage {i} {STAGES[i - 1]}: done" in printed
    assert (out / "ubm/ubm.h5").stat().st_mtime_ns == model_mtime
    res = json.loads((out / "results.json").read_text())
    assert res["norm"] == "z" and "raw" in res and "normalized" in res
    # --force reruns what is selected
    assert (
        main([*args, "--set", "scoring.norm=z", "--stage", "4", "--stop-stage", "4", "--force"])
        == 0
    )
    assert "stage 4 enroll: done" in capsys.readouterr().out
    # --force on extraction redoes it: every file extracted again, none kept from before
    assert main([*args, "--stage", "2", "--stop-stage", "2", "--force"]) == 0
    printed = capsys.readouterr().out
    assert "stage 2 extract: done" in printed
    assert "utterances: 28 extracted, 0 failed" in printed
    info = json.loads((out / "stages/02_extract.json").read_text())["info"]
    assert sum(v["already_there"] for v in info.values()) == 0


def test_killed_stage_resumes(setup: Path, monkeypatch) -> None:
    cfg = load_config(setup / "exp.yaml")
    out = setup / "exp"
    exp = Experiment(cfg, out)
    calls = {"n": 0}
    table = REGISTRY["verification"]
    original = table[3]

    def dies_once(ws):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # a kill in the middle of the stage
        return original.run(ws)

    patched = (*table[:3], dataclasses.replace(original, run=dies_once), *table[4:])
    monkeypatch.setitem(REGISTRY, "verification", patched)
    with pytest.raises(KeyboardInterrupt):
        exp.run()
    assert exp.is_done(3) and not exp.is_done(4)
    assert not (out / "stages/04_enroll.json").exists()
    outcomes = Experiment(cfg, out).run()
    assert [o.status for o in outcomes] == ["skipped"] * 3 + ["ran"] * 6
    assert (out / "results.json").is_file()


def test_stage_range_needs_earlier_stages(setup: Path, capsys) -> None:
    out = setup / "exp"
    rc = main(["run", str(setup / "exp.yaml"), "--out", str(out), "--stage", "3"])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs stage 2 (extract)" in err
    assert main(["run", str(setup / "exp.yaml"), "--stage", "5", "--stop-stage", "2"]) == 1


def test_stage_registry_rejects_unknown_names(setup: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown stage 'scroe'.*did you mean 'score'"):
        stage_number("scroe")
    exp = Experiment(load_config(setup / "exp.yaml"), setup / "exp")
    with pytest.raises(ConfigError, match=r"unknown stage 'training'; the stages are 1 prepare"):
        exp.run("training")
    assert not (setup / "exp").exists()
    with pytest.raises(ConfigError, match="task: no stages for 'regression'"):
        stages_of("regression")
    # classification runs the GMM-UBM stages that apply to it (no normalisation, no
    # calibration); the i-vector and fusion systems have their own tables
    # (tests/test_pipeline_ivector.py and test_pipeline_fusion.py); names select stages too
    cls = tuple(st.name for st in REGISTRY["classification"])
    assert cls == tuple(s for s in STAGES if s not in ("normalize", "calibrate"))
    assert set(REGISTRY) == {
        "verification",
        "classification",
        "verification:ivector",
        "verification:fusion",
    }
    assert stage_number("normalize") == 6
    outcomes = exp.run("prepare", "prepare")
    assert [o.status for o in outcomes] == ["ran"] + ["not selected"] * 8


def test_classification_end_to_end(tmp_path: Path, caplog) -> None:
    root = tmp_path / "corpus" / "sounds"
    for c in range(3):
        d = root / f"class{c}"
        d.mkdir(parents=True)
        for i in range(5):
            sf.write(d / f"c{c}_{i}.wav", voice(c, i, 0.6), SR)
    (tmp_path / "cls.yaml").write_text(
        "name: cls\ntask: classification\n"
        "data:\n  root: corpus\n"
        "  dataset: {path: sounds, pattern: '{label}/{file}.wav', utt_id: '{file}'}\n"
        "  n_folds: 5\n"
        "features: {n_mfcc: 13, deltas: 0, vad: none}\n"
        "ubm: {n_components: 4, iterations_per_stage: [1], final_max_iterations: 2}\n"
        "enroll: {adapt: mw}\nscoring: {top_c: 2}\n",
        encoding="utf-8",
    )
    out = tmp_path / "exp"
    with caplog.at_level("INFO"):
        assert main(["run", str(tmp_path / "cls.yaml"), "--out", str(out), "--no-progress"]) == 0
    assert "fold 0: 3 class model(s)" in caplog.text
    assert "speaker model" not in caplog.text  # classes are not speakers
    res = json.loads((out / "results.json").read_text())
    rows = [line.split() for line in (out / "scores/predictions.txt").read_text().splitlines()]
    assert len(rows) == 15
    acc = np.mean([r[1] == r[2] for r in rows])
    assert res["accuracy"] == pytest.approx(acc)
    # fold k holds the k-th file of each class: 3 files per fold, one per class
    for k in range(5):
        fold_rows = [r for r in rows if int(r[3]) == k]
        assert sorted(r[1] for r in fold_rows) == ["class0", "class1", "class2"]
        assert res["fold_accuracy"][k] == pytest.approx(np.mean([r[1] == r[2] for r in fold_rows]))
    assert np.array(res["confusion_matrix"]).sum() == 15
    assert res["per_class_recall"].keys() == {"class0", "class1", "class2"}
    for c in ("class0", "class1", "class2"):  # recall counted from the predictions file
        mine = [r for r in rows if r[1] == c]
        want = sum(r[2] == c for r in mine) / len(mine)
        assert res["per_class_recall"][c] == pytest.approx(want)
    assert res["balanced_accuracy"] == pytest.approx(
        np.mean(list(res["per_class_recall"].values()))
    )
    assert "balanced accuracy" in (out / "report.md").read_text()
    assert (out / "confusion.png").stat().st_size > 1000
    assert (out / "ubm/fold4.h5").is_file() and not (out / "ubm/checkpoints0").exists()


# ------------------------------------------------------------------------ bad input
def run_bad(setup: Path, capsys, *extra: str) -> str:
    out = setup / "exp_bad"
    rc = main(["run", str(setup / "exp.yaml"), "--out", str(out), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 1, err
    assert len(err.splitlines()) == 1, err
    assert not out.exists(), "a failed run must leave no partial outputs"
    return err


def test_bad_unknown_key(setup: Path, capsys) -> None:
    text = CONFIG.format(extra="scoring_extra: 1\n")
    (setup / "exp.yaml").write_text(text, encoding="utf-8")
    err = run_bad(setup, capsys)
    assert f"exp.yaml:{len(text.splitlines())}: unknown key 'scoring_extra'" in err
    assert "did you mean 'scoring'" in err


def test_bad_type(setup: Path, capsys) -> None:
    err = run_bad(setup, capsys, "--set", "scoring.top_c=five")
    assert "scoring.top_c" in err and "expected an integer" in err


def test_bad_missing_data_path(setup: Path, capsys) -> None:
    err = run_bad(setup, capsys, "--set", "data.root=/nonexistent/corpus")
    assert "data.root" in err and "/nonexistent/corpus" in err and "exp.yaml" in err
    err = run_bad(setup, capsys, "--set", "data.targets.path=nope")
    assert "data.targets.path" in err and "does not exist" in err


def test_bad_empty_data_dir(setup: Path, capsys) -> None:
    (setup / "corpus" / "empty").mkdir()
    err = run_bad(setup, capsys, "--set", "data.background.path=empty")
    assert "data.background" in err and "no file matches" in err


def test_bad_trial_list(setup: Path, capsys) -> None:
    trials = setup / "my_trials"
    trials.write_text("t0 t0-1 target\nt9 t1-2 nontarget\n", encoding="utf-8")
    err = run_bad(setup, capsys, "--set", f"data.trials={trials}")
    assert f"{trials}:2" in err and "'t9'" in err


def test_bad_trial_list_unknown_test_id(setup: Path, capsys) -> None:
    trials = setup / "my_trials"
    # with enroll_fraction 0.5 of 4 utterances two are test utterances; 'zz' is none of them
    trials.write_text("t0 zz target\n", encoding="utf-8")
    err = run_bad(setup, capsys, "--set", f"data.trials={trials}")
    assert f"{trials}:1" in err and "'zz'" in err


def test_custom_trial_list_is_used(setup: Path) -> None:
    cfg = load_config(setup / "exp.yaml")
    exp = Experiment(cfg, setup / "probe")
    exp.run(1, 1)
    te = DataDir.read(setup / "probe/data/test", check_audio=False)
    assert te.trials is not None and te.trials.is_target is not None
    chosen = [
        (m, t, bool(y))
        for (m, t), y in zip(te.trials.pairs, te.trials.is_target, strict=True)
        if m in ("t0", "t1")
    ][:6]
    assert any(y for _, _, y in chosen) and not all(y for _, _, y in chosen)
    path = setup / "trials.txt"
    path.write_text("".join(f"{m} {t} {'target' if y else 'nontarget'}\n" for m, t, y in chosen))
    out = setup / "exp"
    assert (
        main(["run", str(setup / "exp.yaml"), "--out", str(out), "--set", f"data.trials={path}"])
        == 0
    )
    res = json.loads((out / "results.json").read_text())
    assert res["n_trials"] == len(chosen)
    assert res["n_target"] == sum(y for _, _, y in chosen)


def test_few_frames_after_vad_are_warned_with_count_and_examples(setup: Path, caplog) -> None:
    x = voice(0, 0, 1.0)
    keep = np.zeros_like(x)
    keep[int(0.5 * SR) : int(0.6 * SR)] = 1.0  # 0.1 s loud, the rest 80 dB down
    x = (x * np.maximum(keep, 1e-4)).astype(np.float32)
    sf.write(setup / "corpus/bg/b0-0.wav", x, SR)
    exp = Experiment(load_config(setup / "exp.yaml"), setup / "exp")
    with caplog.at_level("WARNING"):
        exp.run("prepare", "extract")
    info = exp.record(stage_number("extract"))["info"]
    from gmmspeech.features.store import FeatureStore

    with FeatureStore(setup / "exp/features/background.h5") as store:
        n = store.num_frames("b0-0")
        counts = {u: store.num_frames(u) for u in store}
    assert 0 < n < 20
    assert info["background"]["few_frame_utterances"] == sum(v < 20 for v in counts.values()) == 1
    assert info["test"]["few_frame_utterances"] == 0
    msg = [r.getMessage() for r in caplog.records if "fewer than 20 frames" in r.getMessage()]
    assert len(msg) == 1 and "1 utterance(s)" in msg[0] and f"b0-0 ({n})" in msg[0]


def test_stages_run_with_the_blas_thread_budget(setup: Path, monkeypatch) -> None:
    from threadpoolctl import threadpool_info

    import gmmspeech.pipeline.runner as runner

    seen: list[int] = []
    table = REGISTRY["verification"]

    def prepare(ws):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return table[0].run(ws)

    monkeypatch.setitem(REGISTRY, "verification", (dataclasses.replace(table[0], run=prepare),))
    monkeypatch.setattr(runner, "blas_thread_budget", lambda: 1)
    exp = Experiment(load_config(setup / "exp.yaml"), setup / "exp")
    exp.run("prepare", "prepare")
    assert seen and set(seen) == {1}


def test_a_folder_of_the_eight_stage_layout_reruns_from_normalize(setup: Path) -> None:
    out = setup / "exp"
    cfg = load_config(setup / "exp.yaml")
    Experiment(cfg, out).run()
    stages = out / "stages"
    # the older layout: 07_evaluate, 08_report; its normalize hash came from other sections
    for p in sorted(stages.glob("0[789]_*.json")):
        p.unlink()
    (stages / "07_evaluate.json").write_text("{}")
    (stages / "08_report.json").write_text("{}")
    rec = json.loads((stages / "06_normalize.json").read_text())
    rec["hash"] = "older"
    (stages / "06_normalize.json").write_text(json.dumps(rec))
    outcomes = Experiment(cfg, out).run()
    assert [o.status for o in outcomes] == ["skipped"] * 5 + ["ran"] * 4
    assert sorted(p.name for p in stages.glob("0[6-9]_*.json")) == [
        "06_normalize.json", "07_calibrate.json", "08_evaluate.json", "09_report.json"
    ]  # fmt: skip


def test_extract_stage_runs_on_worker_processes_with_the_local_backend(
    setup: Path, monkeypatch
) -> None:
    from gmmspeech.pipeline import workspace

    used = []
    real = workspace.make_engine

    def spy(compute):
        used.append(compute)
        return real(compute)

    monkeypatch.setattr(workspace, "make_engine", spy)
    exp = Experiment(load_config(setup / "exp.yaml", ["extract.processes=2"]), setup / "exp")
    exp.run("prepare", "extract")
    assert [(c.backend, c.n_workers) for c in used] == [("processes", 2)]
