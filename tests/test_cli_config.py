"""Commands read their config sections from --config/--set; flags mirror fields, no defaults."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_cli_scoring import _world

from gmmspeech import DiagGMM, SpeakerModels
from gmmspeech.cli.main import build_parser, main
from gmmspeech.config.sections import (
    ComputeConfig,
    DataConfig,
    EnrollConfig,
    ExtractConfig,
    FeatureConfig,
    ScoringConfig,
    SetConfig,
    UBMConfig,
)
from gmmspeech.corpus.scorefiles import align_scores, read_scores
from gmmspeech.corpus.trials import read_trials
from gmmspeech.decisions.metrics import min_dcf

SECTIONS = (ComputeConfig, DataConfig, EnrollConfig, ExtractConfig, FeatureConfig)
SECTIONS += (ScoringConfig, SetConfig, UBMConfig)
FIELDS = {f.name for cls in SECTIONS for f in dataclasses.fields(cls)}
# flags named like a config field that mean something else
# flags named like a config field that the command does not read from a config section
# (extract reads no data section: --audio-root belongs to its DATADIR argument)
NOT_MIRRORS = {("prepare", "background"), ("extract", "audio_root")}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


MIRRORS = {
    "enroll": {"relevance_factor", "adapt"},
    "score": {"method", "top_c", "norm", "top_n", "relevance_factor"},
    "evaluate": {"p_target", "c_miss", "c_fa"},
    "classify": {"n_components", "relevance_factor", "adapt", "method", "top_c", "seed"},
    "extract": {"jobs", "max_failed", "batch_size"},
    "train-ubm": set(),
    "prepare": {
        "pattern",
        "utt_id",
        "spk_field",
        "label_field",
        "enroll",
        "enroll_per_speaker",
        "enroll_labels",
        "seed",
    },
}


@pytest.mark.parametrize("command", sorted(MIRRORS))
def test_commands_take_config_and_set_and_repeat_no_default(command: str) -> None:
    p = _subparsers()[command]
    options = {a.dest: a for a in p._actions if a.option_strings}
    assert "config" in options and "overrides" in options
    named_like_fields = {d for d in options if d in FIELDS and (command, d) not in NOT_MIRRORS}
    assert named_like_fields <= MIRRORS[command]
    defaults = {d: options[d].default for d in MIRRORS[command]}
    assert all(v is None for v in defaults.values()), f"{command}: argparse defaults {defaults}"


def test_enroll_takes_the_enroll_section_and_flags_override_it(tmp_path: Path) -> None:
    w = _world(tmp_path, False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("enroll:\n  relevance_factor: 4\n  adapt: wm\n", encoding="utf-8")
    base = [str(w["ubm"]), str(w["feats"]), str(w["enroll"])]
    ubm = DiagGMM.load(w["ubm"])
    cases = [
        ([], EnrollConfig()),
        (["--config", str(cfg)], EnrollConfig(4.0, "mw")),
        (["--config", str(cfg), "--set", "enroll.adapt=v"], EnrollConfig(4.0, "v")),
        (["--config", str(cfg), "--set", "enroll.adapt=v", "--adapt", "m"], EnrollConfig(4.0)),
        (["--relevance-factor", "2"], EnrollConfig(2.0)),
    ]
    for i, (extra, want) in enumerate(cases):
        out = tmp_path / f"m{i}.h5"
        assert main(["enroll", *base, str(out), "--no-progress", *extra]) == 0, extra
        models = SpeakerModels.load(out, ubm)
        assert models.adapt == want.adapt, extra
        assert models.config["relevance_factor"] == want.relevance_factor, extra


def test_bad_enroll_values_fail_before_any_work(tmp_path: Path, capsys) -> None:
    w = _world(tmp_path, False)
    out = tmp_path / "m.h5"
    args = ["enroll", str(w["ubm"]), str(w["feats"]), str(w["enroll"]), str(out)]
    assert main([*args, "--adapt", "mm"]) == 1
    assert "--adapt mm: enroll.adapt" in capsys.readouterr().err
    assert main([*args, "--set", "enroll.relevance_factor=-1"]) == 1
    assert "--set enroll.relevance_factor=-1: enroll.relevance_factor" in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_takes_the_cost_parameters_of_the_scoring_section(tmp_path: Path) -> None:
    w = _world(tmp_path, False)
    models = tmp_path / "models.h5"
    scores = tmp_path / "scores.txt"
    assert main(["enroll", str(w["ubm"]), str(w["feats"]), str(w["enroll"]), str(models)]) == 0
    score = ["score", str(w["ubm"]), str(models), str(w["feats"]), str(w["trials"]), str(scores)]
    assert main([*score, "--no-progress"]) == 0
    trials = read_trials(w["trials"])
    s = align_scores(read_scores(scores), trials)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scoring:\n  p_target: 0.2\n  c_fa: 2\n", encoding="utf-8")
    for extra, p_target, c_fa in (
        ([], ScoringConfig().p_target, ScoringConfig().c_fa),
        (["--config", str(cfg)], 0.2, 2.0),
        (["--config", str(cfg), "--c-fa", "3"], 0.2, 3.0),
    ):
        js = tmp_path / "r.json"
        js.unlink(missing_ok=True)
        assert main(["evaluate", str(scores), str(w["trials"]), "--json", str(js), *extra]) == 0
        got = json.loads(js.read_text())["raw"]["min_dcf"]
        want = min_dcf(s, trials.is_target, p_target=p_target, c_fa=c_fa)
        assert got == pytest.approx(want, abs=1e-12), extra


def test_classify_builds_its_ubm_from_the_ubm_section(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        for part in ("train", "test"):
            d = tmp_path / part
            d.mkdir()
            lines = []
            for lab, c in {"a": 0.0, "b": 5.0}.items():
                for i in range(4):
                    u = f"{part}-{lab}{i}"
                    f.create_dataset(u, data=rng.normal(c, 1.0, (60, 2)).astype(np.float32))
                    lines.append(f"{u} {lab}")
            (d / "utt2label").write_text("\n".join(lines) + "\n")
    js = tmp_path / "r.json"
    args = ["classify", str(tmp_path / "f.h5"), str(tmp_path / "train"), str(tmp_path / "test")]
    extra = ["--set", "ubm.n_components=2", "--set", "enroll.adapt=mw", "--json", str(js)]
    assert main([*args, *extra]) == 0
    r = json.loads(js.read_text())
    assert r["n_components"] == 2 and r["accuracy"] == 1.0
    assert main([*args, "--set", "scoring.method=linear"]) == 1
