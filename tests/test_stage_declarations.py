"""Stage declarations: the tables are consistent, the hashes of old folders still hold, and a
stage that reaches an undeclared config key or artefact fails.

The end-to-end pipeline tests (test_pipeline*.py, test_cohort_norm.py) run every system's
stages through the runner, which hands each stage a workspace restricted to its declaration:
they fail if a stage reads anything it does not declare.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gmmspeech.config.base import config_hash, to_dict
from gmmspeech.config.loader import load_config
from gmmspeech.config.sections import ExperimentConfig
from gmmspeech.pipeline import REGISTRY, Experiment
from gmmspeech.pipeline.artefacts import ARTEFACTS, RAW_SCORES, SCORES, UBM
from gmmspeech.pipeline.declarations import Stage, UndeclaredError, check_table
from gmmspeech.pipeline.workspace import Workspace

SETS = [
    "data.root=/nowhere",
    "data.background={path: bg, pattern: '{spk}-{n}.wav'}",
    "data.targets={path: tg, pattern: '{spk}/{n}.wav'}",
    "scoring.norm=s",
    "ubm.n_components=64",
    "ivector.rank=50",
    "backend.lda_dim=20",
    "enroll.relevance_factor=8",
    "features.n_mfcc=13",
]


def _config(*extra: str) -> ExperimentConfig:
    return load_config(None, [*SETS, *extra])


def _nothing(ws: Workspace) -> tuple[list[str], dict[str, object]]:
    return [], {}


# ----------------------------------------------------------------------- consistency
@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_table_is_consistent(key: str) -> None:
    assert check_table(REGISTRY[key]) == []


def test_check_table_finds_planted_problems() -> None:
    table = (
        Stage("a", _nothing, ("scoring.norm", "ivector.rank"), writes=(RAW_SCORES,)),
        Stage(
            "b",
            _nothing,
            ("scoring.top_n", "scoring.nrm", "ivector.top_n"),
            upstream=("ubm", "scoring.norm"),
            reads=(RAW_SCORES, UBM),
        ),
    )
    assert check_table(table) == [
        "b: 'scoring.nrm' is no config key",
        "b: upstream 'ubm' is hashed by no earlier stage",
        "b: sections ('scoring.top_n', 'scoring.nrm', 'ivector.top_n') repeat a last key part",
        "b: reads 'ubm', which no earlier stage writes",
        "b: writes nothing",
    ]


def test_every_artefact_has_one_key_and_one_path() -> None:
    templates = [a.template for a in ARTEFACTS.values()]
    assert len(set(templates)) == len(templates)
    used = {a for table in REGISTRY.values() for st in table for a in (*st.reads, *st.writes)}
    assert used == set(ARTEFACTS.values())


# -------------------------------------------------------------------- hash stability
def _old_sections(cfg: ExperimentConfig) -> dict[str, object]:
    """The hash inputs the stage table wrote out before the declarations (at ccee053, the
    heldout merge), one function a stage."""
    s, f = cfg.scoring, to_dict(cfg.fusion)
    return {
        "prepare": {"task": cfg.task, "data": to_dict(cfg.data)},
        "extract": to_dict(cfg.features),
        "ubm": to_dict(cfg.ubm),
        "enroll": to_dict(cfg.enroll),
        "score": {"method": s.method, "top_c": s.top_c},
        "normalize": {
            "norm": s.norm,
            "cohort_size": s.cohort_size,
            "top_n": s.top_n,
            "cohort_utts": s.cohort_utts,
        },
        "calibrate": {
            "calibrate": s.calibrate,
            "calibration_trials": s.calibration_trials,
            "p_target": s.p_target,
            "c_miss": s.c_miss,
            "c_fa": s.c_fa,
        },
        "stats": {"top_n": cfg.ivector.top_n},
        # ivector.min_post came later (hashed by stats when set, by tv never)
        "tv": {k: v for k, v in to_dict(cfg.ivector).items() if k not in ("top_n", "min_post")},
        "caltv": {
            "calibrate": s.calibrate,
            "calibration_trials": s.calibration_trials,
            "norm": s.norm,
        },
        "ivectors": {},
        "backend": to_dict(cfg.backend),
        "gather": {"systems": f["systems"], "trials": f["trials"]},
        "fuse": {
            "guard": cfg.fusion.guard,
            "cv_folds": cfg.fusion.cv_folds,
            "p_target": s.p_target,
        },
    }


def _old_chain(cfg: ExperimentConfig, names: list[str]) -> list[str]:
    old, prev, out = _old_sections(cfg), "", []
    if cfg.system == "ivector":
        old["score"] = {}  # the i-vector score stage hashed nothing
    for name in names:
        prev = config_hash({"stage": name, "v": 1, "config": old[name], "upstream": prev})
        out.append(prev)
    return out


@pytest.mark.parametrize(
    ("key", "n_same"),
    [("verification", 6), ("classification", 4), ("verification:ivector", 9)],
)
def test_hashes_of_the_stages_before_calibrate_are_those_of_old_folders(
    tmp_path: Path, key: str, n_same: int
) -> None:
    task, _, system = key.partition(":")
    cfg = _config(
        f"task={task}",
        f"system={system or 'gmm-ubm'}",
        "data.dataset={path: x, pattern: '{label}/{n}.wav'}",
    )
    exp = Experiment(cfg, tmp_path / "exp")
    names = [st.name for st in REGISTRY[key]][:n_same]
    assert [exp.hashes[n] for n in names] == _old_chain(cfg, names)
    # the next stage changed on purpose (calibrate v2; classification's score hashes the
    # classification section since issue #20)
    nxt = REGISTRY[key][n_same].name
    assert exp.hashes[nxt] != config_hash(
        {"stage": nxt, "v": 1, "config": {}, "upstream": exp.hashes[names[-1]]}
    )


def test_fusion_hashes_of_gather_and_fuse_are_those_of_old_folders(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    cfg = load_config(
        None, ["system=fusion", f"fusion.systems=[{{experiment: {a}}}, {{experiment: {b}}}]"]
    )
    exp = Experiment(cfg, tmp_path / "exp")
    assert [exp.hashes["gather"], exp.hashes["fuse"]] == _old_chain(cfg, ["gather", "fuse"])


# -------------------------------------------------------------------------- the view
def _view(tmp_path: Path, st: Stage) -> Workspace:
    return Workspace(_config(), tmp_path, stage_names=[st.name], hashes={st.name: "h"}, stage=st)


def test_a_stage_reaches_only_what_it_declares(tmp_path: Path) -> None:
    st = Stage(
        "normalize",
        _nothing,
        ("scoring.norm",),
        upstream=("enroll",),
        reads=(RAW_SCORES,),
        writes=(SCORES,),
    )
    ws = _view(tmp_path, st)
    assert ws.cfg.scoring.norm == "s"
    assert ws.cfg.enroll.relevance_factor == 8.0  # a whole section, as it is
    assert ws.cfg.compute.backend == "local"  # how the work runs: every stage
    assert ws.path(RAW_SCORES) == tmp_path / "scores/raw.txt"
    assert ws.output(SCORES) == tmp_path / "scores/scores.txt"
    assert (tmp_path / "scores").is_dir()
    with pytest.raises(UndeclaredError, match=r"stage normalize: reads config 'scoring.top_n'"):
        _ = ws.cfg.scoring.top_n
    with pytest.raises(UndeclaredError, match=r"reads config 'ubm'"):
        _ = ws.cfg.ubm
    with pytest.raises(UndeclaredError, match=r"stage normalize: reads 'ubm' \(ubm/ubm.h5\)"):
        ws.path(UBM)
    with pytest.raises(UndeclaredError, match=r"writes 'raw scores'"):
        ws.output(RAW_SCORES)
    with pytest.raises(UndeclaredError, match="stage records"):
        ws.record(1)
    with pytest.raises(UndeclaredError, match="whole config"):
        _ = ws.config_hash
    assert ws.hash == "h"


def test_the_runner_hands_stages_the_restricted_view(tmp_path: Path, monkeypatch) -> None:
    table = REGISTRY["verification"]

    def reads_the_ubm_section(ws: Workspace) -> tuple[list[str], dict[str, object]]:
        return [], {"n": ws.cfg.ubm.n_components}

    planted = dataclasses.replace(table[0], run=reads_the_ubm_section)
    monkeypatch.setitem(REGISTRY, "verification", (planted, *table[1:]))
    exp = Experiment(_config(), tmp_path / "exp")
    with pytest.raises(UndeclaredError, match=r"stage prepare: reads config 'ubm'"):
        exp.run("prepare", "prepare")
    # declared, the same stage runs
    fixed = dataclasses.replace(planted, upstream=(), sections=(*planted.sections, "ubm"))
    monkeypatch.setitem(REGISTRY, "verification", (fixed, *table[1:]))
    outcomes = Experiment(_config(), tmp_path / "exp").run("prepare", "prepare")
    assert outcomes[0].status == "ran"
