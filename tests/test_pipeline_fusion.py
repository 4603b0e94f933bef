"""gmmspeech run with system: fusion: fused LLRs and the guard against scipy oracles,
refusals of systems that do not fit together, resume and input fingerprints, the config form,
and one end-to-end fusion of a real GMM-UBM and i-vector experiment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_fusion import oracle
from test_pipeline import CONFIG, make_corpus

from gmmspeech.cli.main import main
from gmmspeech.config.loader import load_config
from gmmspeech.decisions.metrics import eer
from gmmspeech.errors import ConfigError, DataError
from gmmspeech.pipeline import Experiment

P_TARGET = 0.05


# ----------------------------------------------------------------------- synthetic systems
def trial_grid(
    prefix: str, n_models: int, per_model: int
) -> tuple[list[str], list[str], np.ndarray]:
    """Every model against every test; test j belongs to speaker j % n_models."""
    tests = [f"{prefix}u{j:03d}" for j in range(n_models * per_model)]
    models = [f"{prefix}m{i:02d}" for i in range(n_models)]
    pairs = [(m, t, j % n_models == i) for i, m in enumerate(models) for j, t in enumerate(tests)]
    return [p[0] for p in pairs], [p[1] for p in pairs], np.array([p[2] for p in pairs])


def system_scores(t: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    y = t.astype(float)
    if kind == "strong":  # an uncalibrated score with an offset
        return 2.0 * y + rng.normal(0.0, 1.0, t.size) + 3.0
    if kind == "weak":  # informative, another scale, independent errors
        return 0.4 * (1.2 * y + rng.normal(0.0, 1.0, t.size)) - 1.0
    return rng.normal(0.0, 1.0, t.size)  # "noise": no information


def write_lines(path: Path, rows: list[str], header: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "".join(r + "\n" for r in rows), encoding="utf-8")


def write_scores(path: Path, models, tests, values, header: str = "") -> None:
    rows = [f"{m} {u} {float(v)!r}" for m, u, v in zip(models, tests, values, strict=True)]
    write_lines(path, rows, header)


def write_trials(path: Path, models, tests, labels) -> None:
    rows = [
        f"{m} {u} {'target' if y else 'nontarget'}"
        for m, u, y in zip(models, tests, labels, strict=True)
    ]
    write_lines(path, rows)


class Systems:
    """Evaluation and calibration trials and the scores of two synthetic systems."""

    def __init__(self, kinds=("strong", "weak"), seed: int = 0, n_cal: int = 12) -> None:
        rng = np.random.default_rng(seed)
        self.ev = trial_grid("e", 10, 6)
        self.cal = trial_grid("b", n_cal, 6)
        self.kinds = kinds
        self.x_ev = np.column_stack([system_scores(self.ev[2], rng, k) for k in kinds])
        self.x_cal = np.column_stack([system_scores(self.cal[2], rng, k) for k in kinds])

    def experiment(self, folder: Path, j: int, calibrate: bool = True) -> Path:
        """A finished verification experiment folder holding system ``j``'s scores."""
        (folder / ".gmmspeech").mkdir(parents=True)
        manifest = {"format": "gmmspeech.Experiment", "version": 1, "user_files": []}
        (folder / ".gmmspeech/manifest.json").write_text(json.dumps(manifest))
        cfg = {"task": "verification", "system": "gmm-ubm", "scoring": {"calibrate": calibrate}}
        (folder / ".gmmspeech/resolved-config.yaml").write_text(yaml.safe_dump(cfg))
        write_lines(folder / "stages/07_calibrate.json", ["{}"])
        write_trials(folder / "data/test/trials", *self.ev)
        write_scores(folder / "scores/scores.txt", *self.ev[:2], self.x_ev[:, j])
        write_trials(folder / "calibration/trials", *self.cal)
        write_scores(folder / "calibration/scores.txt", *self.cal[:2], self.x_cal[:, j])
        return folder


def fusion_config(root: Path, systems: list[str], extra: str = "") -> Path:
    """A fusion config in ``root`` listing ``systems`` (YAML mappings, one per line)."""
    items = "".join(f"    - {s}\n" for s in systems)
    text = (
        f"name: fused\ntask: verification\nsystem: fusion\nfusion:\n  systems:\n{items}{extra}"
        f"scoring: {{p_target: {P_TARGET}}}\n"
    )
    p = root / "fusion.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def two_experiments(tmp_path: Path, data: Systems) -> Path:
    data.experiment(tmp_path / "a", 0)
    data.experiment(tmp_path / "b", 1)
    return fusion_config(tmp_path, ["{name: sa, experiment: a}", "{name: sb, experiment: b}"])


def read_llrs(path: Path) -> dict[tuple[str, str], float]:
    rows = [r.split() for r in path.read_text().splitlines() if not r.startswith("#")]
    return {(m, u): float(v) for m, u, v in rows}


def run(cfg: Path, out: Path, *extra: str) -> int:
    return main(["run", str(cfg), "--out", str(out), "--no-progress", *extra])


def oracle_cv_cllr(
    x: np.ndarray, t: np.ndarray, models: list[str], k: int = 5
) -> tuple[float, float]:
    """Cllr at P_TARGET of LLRs fitted by scipy on the other folds (models dealt in turn),
    and its standard error over the folds."""
    order = sorted(set(models))
    k = min(k, len(order))
    fold = np.array([order.index(m) % k for m in models])
    llr = np.empty(t.size)
    for f in range(k):
        held = fold == f
        p = oracle(x[~held], t[~held], P_TARGET)
        llr[held] = x[held] @ p[:-1] + p[-1]
    c = np.log(P_TARGET / (1 - P_TARGET))
    h = -(P_TARGET * np.log2(P_TARGET) + (1 - P_TARGET) * np.log2(1 - P_TARGET))

    def cost(s: np.ndarray, y: np.ndarray) -> float:
        tar = np.log2(1 + np.exp(-(s[y] + c))).mean()
        non = np.log2(1 + np.exp(s[~y] + c)).mean()
        return float((P_TARGET * tar + (1 - P_TARGET) * non) / h)

    per_fold = [cost(llr[fold == f], t[fold == f]) for f in range(k)]
    return cost(llr, t), float(np.std(per_fold, ddof=1) / np.sqrt(k))


# ------------------------------------------------------------------------------ fusion
def test_fused_llrs_equal_the_scipy_oracle(tmp_path: Path, capsys) -> None:
    data = Systems()
    cfg = two_experiments(tmp_path, data)
    out = tmp_path / "exp"
    assert run(cfg, out, "--set", "fusion.guard=false") == 0
    printed = capsys.readouterr().out
    for i, name in enumerate(["gather", "fuse", "evaluate", "report"], 1):
        assert f"stage {i} {name}: done" in printed
    cal_t = data.cal[2]
    keys = list(zip(*data.ev[:2], strict=True))
    # the fusion of both, fitted on the calibration trials only
    p = oracle(data.x_cal, cal_t, P_TARGET)
    got = read_llrs(out / "scores/fused.txt")
    np.testing.assert_allclose(
        [got[k] for k in keys], data.x_ev @ p[:-1] + p[-1], rtol=1e-4, atol=1e-4
    )
    assert read_llrs(out / "scores/calibrated.txt") == got  # no guard: the fusion is kept
    # each system calibrated alone
    for j, name in enumerate(["sa", "sb"]):
        q = oracle(data.x_cal[:, [j]], cal_t, P_TARGET)
        alone = read_llrs(out / f"systems/{name}/calibrated.txt")
        np.testing.assert_allclose(
            [alone[k] for k in keys], data.x_ev[:, j] * q[0] + q[1], rtol=1e-4, atol=1e-4
        )
    res = json.loads((out / "results.json").read_text())
    assert (res["n_trials"], res["n_target"], res["n_models"]) == (600, 60, 10)
    assert set(res["systems"]) == {"sa", "sb"} and res["fusion"]["chosen"] == "sa+sb"
    np.testing.assert_allclose(res["fusion"]["weights"], p[:-1], rtol=1e-4)
    # each system's figures are of its own scores (metrics.eer is tested against oracles)
    t = data.ev[2]
    for j, name in enumerate(["sa", "sb"]):
        assert res["systems"][name]["scores"]["eer"] == eer(data.x_ev[:, j], t)
    assert res["eer"] == res["calibrated"]["eer"] and not res["fusion"]["guard"]
    report = (out / "report.md").read_text()
    assert "| fusion sa+sb |" in report and "| kept: sa+sb |" in report
    # the copies record where they came from
    head = (out / "systems/sa/scores.txt").read_text().splitlines()[0]
    assert head.startswith("# gmmspeech scores") and f"source={tmp_path / 'a'}" in head


@pytest.mark.parametrize(
    ("kinds", "seed", "n_cal", "kept"),
    [
        (("strong", "weak"), 0, 12, "sa+sb"),  # the fusion clearly lowest
        (("strong", "noise"), 3, 5, "sa"),  # a system without information
        (("strong", "weak"), 0, 4, "sa"),  # the fusion lowest, but within one SE of sa
    ],
)
def test_guard_keeps_the_simplest_within_one_standard_error(
    tmp_path: Path, kinds, seed: int, n_cal: int, kept: str
) -> None:
    data = Systems(kinds, seed, n_cal)
    cfg = two_experiments(tmp_path, data)
    out = tmp_path / "exp"
    assert run(cfg, out) == 0
    info = json.loads((out / "fusion/fusion.json").read_text())
    models, t = data.cal[0], data.cal[2]
    want = {
        "sa": oracle_cv_cllr(data.x_cal[:, [0]], t, models),
        "sb": oracle_cv_cllr(data.x_cal[:, [1]], t, models),
        "sa+sb": oracle_cv_cllr(data.x_cal, t, models),
    }
    for name, (value, se) in want.items():
        assert info["candidates"][name]["cv_cllr"] == pytest.approx(value, rel=1e-3)
        assert info["candidates"][name]["cv_cllr_se"] == pytest.approx(se, rel=1e-2)
    # the one-standard-error rule: the simplest candidate within one SE of the lowest
    best = min(want, key=lambda k: want[k][0])
    limit = want[best][0] + want[best][1]
    simplest = sorted(["sa", "sb"], key=lambda k: want[k][0]) + ["sa+sb"]
    assert info["chosen"] == next(k for k in simplest if want[k][0] <= limit) == kept
    # the kept candidate is what scores/calibrated.txt holds
    src = "scores/fused.txt" if kept == "sa+sb" else f"systems/{kept}/calibrated.txt"
    assert read_llrs(out / "scores/calibrated.txt") == read_llrs(out / src)
    res = json.loads((out / "results.json").read_text())
    assert res["fusion"]["chosen"] == kept and res["fusion"]["guard"]


def test_fuse_command_shares_the_stage_fit(tmp_path: Path) -> None:
    data = Systems(("strong", "noise"), 3, 5)
    cfg = two_experiments(tmp_path, data)
    out = tmp_path / "exp"
    assert run(cfg, out) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["fuse", "--train", str(a / "calibration/trials"), str(a / "calibration/scores.txt")]
    args += [str(b / "calibration/scores.txt"), "--apply", str(a / "scores/scores.txt")]
    args += [str(b / "scores/scores.txt"), "--trials", str(a / "data/test/trials")]
    args += ["-o", str(tmp_path / "fused.txt"), "--p-target", str(P_TARGET)]
    assert main(args) == 0
    # the stage reads its copies of the scores (9 significant digits)
    same(read_llrs(tmp_path / "fused.txt"), read_llrs(out / "scores/calibrated.txt"))
    assert main([*args[:-4], "-o", str(tmp_path / "all.txt"), "--no-guard", *args[-2:]]) == 0
    same(read_llrs(tmp_path / "all.txt"), read_llrs(out / "scores/fused.txt"))
    assert read_llrs(tmp_path / "all.txt") != read_llrs(tmp_path / "fused.txt")


def same(a: dict[tuple[str, str], float], b: dict[tuple[str, str], float]) -> None:
    assert a.keys() == b.keys()
    np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-7, atol=1e-7)


# --------------------------------------------------------------------------- refusals
def test_systems_that_scored_other_trials_are_refused(tmp_path: Path) -> None:
    data = Systems()
    cfg = two_experiments(tmp_path, data)
    # b scored 5 trials fewer, and labels one calibration trial otherwise
    lines = (tmp_path / "b/scores/scores.txt").read_text().splitlines()
    (tmp_path / "b/scores/scores.txt").write_text("\n".join(lines[5:]) + "\n")
    cal = (tmp_path / "b/calibration/trials").read_text().splitlines()
    m, u, label = cal[0].split()
    cal[0] = f"{m} {u} {'nontarget' if label == 'target' else 'target'}"
    (tmp_path / "b/calibration/trials").write_text("\n".join(cal) + "\n")
    with pytest.raises(DataError) as err:
        Experiment(load_config(cfg), tmp_path / "exp", config_path=str(cfg)).run()
    msg = str(err.value)
    assert msg.startswith(f"{cfg}: fusion.systems: the systems do not fit together")
    assert "evaluation trials: sa has 600, sb 595; 5 of sa's are not sb's (e.g. em00 eu000)" in msg
    assert (
        f"calibration trial labels: 1 trial(s) are labelled otherwise by sb than by sa (e.g. {m} {u})"
        in msg
    )
    assert not (tmp_path / "exp/results.json").exists()


def test_two_systems_that_label_an_evaluation_trial_otherwise_are_refused(
    tmp_path: Path,
) -> None:
    # exactly two systems: the label check must not need a third to run
    data = Systems()
    cfg = two_experiments(tmp_path, data)
    ev = (tmp_path / "b/data/test/trials").read_text().splitlines()
    m, u, label = ev[3].split()
    ev[3] = f"{m} {u} {'nontarget' if label == 'target' else 'target'}"
    (tmp_path / "b/data/test/trials").write_text("\n".join(ev) + "\n")
    with pytest.raises(DataError) as err:
        Experiment(load_config(cfg), tmp_path / "exp", config_path=str(cfg)).run()
    assert (
        f"evaluation trial labels: 1 trial(s) are labelled otherwise by sb than by sa "
        f"(e.g. {m} {u})" in str(err.value)
    )
    assert not (tmp_path / "exp/results.json").exists()


def test_other_calibration_trials_are_refused(tmp_path: Path) -> None:
    data = Systems()
    data.experiment(tmp_path / "a", 0)
    Systems(n_cal=11).experiment(tmp_path / "b", 1)
    cfg = fusion_config(tmp_path, ["{experiment: a}", "{experiment: b}"])
    with pytest.raises(
        DataError, match=r"calibration trials: a has 864, b 726; 138 of a's are not b's"
    ):
        Experiment(load_config(cfg), tmp_path / "exp", config_path=str(cfg)).run()


def test_score_files_made_otherwise_are_refused(tmp_path: Path) -> None:
    data = Systems()
    for j, name in enumerate("ab"):
        d = tmp_path / name
        write_scores(
            d / "ev.txt", *data.ev[:2], data.x_ev[:, j], "# gmmspeech scores norm=z method=topc\n"
        )
        write_scores(
            d / "cal.txt",
            *data.cal[:2],
            data.x_cal[:, j],
            "# gmmspeech scores norm=z method=topc\n",
        )
    write_trials(tmp_path / "ev_trials", *data.ev)
    write_trials(tmp_path / "cal_trials", *data.cal)
    (tmp_path / "b/cal.txt").write_text(
        (tmp_path / "b/cal.txt").read_text().replace("norm=z", "norm=none", 1)
    )
    systems = [
        f"{{name: {n}, scores: {n}/ev.txt, calibration_trials: cal_trials, "
        f"calibration_scores: {n}/cal.txt}}"
        for n in "ab"
    ]
    cfg = fusion_config(tmp_path, systems, "  trials: ev_trials\n")
    with pytest.raises(
        DataError, match="b: its evaluation scores have norm=z, its calibration scores norm=none"
    ):
        Experiment(load_config(cfg), tmp_path / "exp", config_path=str(cfg)).run()
    # without names, both are called after their scores files' stem
    unnamed = [x.replace("name: a, ", "").replace("name: b, ", "") for x in systems]
    with pytest.raises(
        ConfigError, match="fusion.yaml:5: fusion.systems: two systems are called 'ev'"
    ):
        load_config(fusion_config(tmp_path, unnamed, "  trials: ev_trials\n"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("missing", "no such folder; run that experiment first"),
        ("plain", "not a gmmspeech experiment folder"),
        ("uncalibrated", "was run with scoring.calibrate: false"),
        ("unfinished", "its calibrate stage is not up to date"),
    ],
)
def test_experiments_that_cannot_be_fused_are_refused(
    tmp_path: Path, make: str, message: str
) -> None:
    data = Systems()
    data.experiment(tmp_path / "a", 0)
    if make == "plain":
        (tmp_path / "b").mkdir()
    elif make == "uncalibrated":
        data.experiment(tmp_path / "b", 1, calibrate=False)
    elif make == "unfinished":
        data.experiment(tmp_path / "b", 1)
        (tmp_path / "b/stages/07_calibrate.json").unlink()
    cfg = fusion_config(tmp_path, ["{experiment: a}", "{experiment: b}"])
    with pytest.raises(DataError) as err:
        Experiment(load_config(cfg), tmp_path / "exp", config_path=str(cfg)).run()
    assert str(err.value).startswith(
        f"{cfg}: fusion.systems[1].experiment: {tmp_path / 'b'}: {message}"
    )


# ------------------------------------------------------------------- resume and inputs
def test_resume_and_a_changed_input_experiment(tmp_path: Path, capsys) -> None:
    data = Systems()
    cfg = two_experiments(tmp_path, data)
    out = tmp_path / "exp"
    assert run(cfg, out) == 0
    capsys.readouterr()
    assert run(cfg, out) == 0
    assert "stages: 0 run, 4 skipped" in capsys.readouterr().out
    # the guard is read by the fuse stage: gather is kept
    assert run(cfg, out, "--set", "fusion.guard=false") == 0
    printed = capsys.readouterr().out
    assert "stage 1 gather: up to date" in printed and "stage 2 fuse: done" in printed
    before = read_llrs(out / "scores/fused.txt")
    # experiment b is run again and its scores change: the fusion is redone
    path = tmp_path / "b/scores/scores.txt"
    data.x_ev[:, 1] *= 2.0
    write_scores(path, *data.ev[:2], data.x_ev[:, 1])
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert run(cfg, out, "--set", "fusion.guard=false") == 0
    printed = capsys.readouterr().out
    assert "stage 1 gather: done; inputs changed: fusion.systems[1] (sb) scores changed" in printed
    after = read_llrs(out / "scores/fused.txt")
    assert after != before
    p = oracle(data.x_cal, data.cal[2], P_TARGET)
    keys = list(zip(*data.ev[:2], strict=True))
    np.testing.assert_allclose(
        [after[k] for k in keys], data.x_ev @ p[:-1] + p[-1], rtol=1e-4, atol=1e-4
    )


# ------------------------------------------------------------------------- config form
def test_fusion_config_errors_name_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(fusion_config(tmp_path, ["{experimnt: a}", "{experiment: b}"]))
    msg = str(err.value)
    assert msg.startswith(
        f"{tmp_path / 'fusion.yaml'}:6: unknown key 'fusion.systems[0].experimnt'"
    )
    assert "did you mean 'fusion.systems[0].experiment'?" in msg
    with pytest.raises(
        ConfigError, match=r"fusion.yaml:5: fusion.systems: must be a list of at least two"
    ):
        load_config(fusion_config(tmp_path, ["{experiment: a}"]))
    with pytest.raises(
        ConfigError,
        match=r"fusion.yaml:7: fusion.systems\[1\].experiment: give an experiment folder or score files",
    ):
        load_config(fusion_config(tmp_path, ["{experiment: a}", "{experiment: b, scores: s.txt}"]))
    with pytest.raises(ConfigError, match="system: 'fusion' is for task 'verification'"):
        load_config(None, ["task=classification", "system=fusion"])
    two = ["system=fusion", "fusion.systems=[{experiment: a}, {experiment: b}]"]
    with pytest.raises(ConfigError, match="name: must be a non-empty name without slashes"):
        load_config(None, ["name=a/b", *two])


def test_fusion_paths_are_relative_to_the_config(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OTHER_EXP", "elsewhere/b")
    cfg = load_config(
        fusion_config(tmp_path, ["{experiment: a}", "{experiment: '${env:OTHER_EXP}'}"])
    )
    assert [s.experiment for s in cfg.fusion.systems] == [
        str(tmp_path / "a"),
        str(tmp_path / "elsewhere/b"),
    ]
    assert [s.label for s in cfg.fusion.systems] == ["a", "b"]
    monkeypatch.chdir(tmp_path.parent)
    got = load_config(None, ["system=fusion", "fusion.systems=[{experiment: x}, {experiment: y}]"])
    assert got.fusion.systems[0].experiment == str(tmp_path.parent / "x")


# -------------------------------------------------------------------------- end to end
IVECTOR = "system: ivector\nivector: {rank: 4, n_iter: 3}\nbackend: {scorer: cosine}\n"


def test_fusion_of_real_gmm_and_ivector_experiments(tmp_path: Path, capsys) -> None:
    make_corpus(tmp_path / "corpus", n_bg=10)
    (tmp_path / "gmm.yaml").write_text(CONFIG.format(extra=""), encoding="utf-8")
    (tmp_path / "iv.yaml").write_text(CONFIG.format(extra=IVECTOR), encoding="utf-8")
    assert run(tmp_path / "gmm.yaml", tmp_path / "gmm") == 0
    assert run(tmp_path / "iv.yaml", tmp_path / "iv") == 0
    cfg = fusion_config(tmp_path, ["{experiment: gmm}", "{experiment: iv}"])
    assert run(cfg, tmp_path / "fused") == 0
    res = json.loads((tmp_path / "fused/results.json").read_text())
    assert set(res["systems"]) == {"gmm", "iv"} and res["n_trials"] == 32
    # the systems' own scores, copied: the same figures as their own experiments' raw ones
    for name in ("gmm", "iv"):
        own = json.loads((tmp_path / name / "results.json").read_text())["raw"]
        assert res["systems"][name]["scores"]["eer"] == pytest.approx(own["eer"], abs=1e-12)
    assert res["fusion"]["chosen"] in {"gmm", "iv", "gmm+iv"}
