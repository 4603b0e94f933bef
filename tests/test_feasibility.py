"""Fail fast (issue 18, point 6): the config is checked against the prepared data before any
heavy stage, and the back end's ``auto`` defaults fit small corpora.

Every refused case must stop after ``prepare`` with one line naming the option, the limit
and the fix, and must leave no features and no UBM behind. The ``auto`` choices are checked
against counts made here by hand from the generated file names.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import lfilter
from test_pipeline import CONFIG, SR, make_corpus, voice

from gmmspeech.cli.main import main
from gmmspeech.config.loader import load_config
from gmmspeech.config.sections import BackendConfig
from gmmspeech.errors import ConfigError
from gmmspeech.ivector import limits
from gmmspeech.ivector.backend import Backend
from gmmspeech.ivector.limits import LDA_CAP, TrainingSpeakers, violations
from gmmspeech.ivector.tv import IVectorSet
from gmmspeech.pipeline import Experiment
from gmmspeech.pipeline.feasibility import backend_choice, backend_sets

IVECTOR_ARGS = [
    "system=ivector",
    "data.background.pattern={spk}.wav",
    "data.targets.pattern={spk}.wav",
]


def _background(n_spk: int, n_utt: int) -> dict[str, list[str]]:
    return {f"s{i:03d}": [f"s{i:03d}-{u}" for u in range(n_utt)] for i in range(n_spk)}


# ------------------------------------------------------------- the auto choice by hand
def test_auto_lda_dim_against_a_hand_computation() -> None:
    # 125 speakers, sorted and dealt in turn into two held-out groups: group 1 takes the
    # 1st, 3rd, ... (63 speakers), group 2 the others (62). A group's back end is trained
    # on the speakers outside it: 62 for group 1, 63 for group 2.
    bg = _background(125, 20)
    cfg = load_config(None, IVECTOR_ARGS)
    assert [s.n_speakers for s in backend_sets(cfg, bg)] == [125, 62, 63]
    choice = backend_choice(cfg, bg)
    assert (choice.config.scorer, choice.config.lda_dim) == ("plda", 62 - 1)
    assert (
        "the 62 speakers of the back end of calibration group 1 minus 1"
        in (choice.reasons["lda_dim"])
    )
    # without held-out groups only the main back end counts: 125 - 1
    off = load_config(None, [*IVECTOR_ARGS, "scoring.calibrate=false", "scoring.norm=none"])
    assert backend_choice(off, bg).config.lda_dim == 124
    # a cohort needs the groups' back ends too
    norm = load_config(None, [*IVECTOR_ARGS, "scoring.calibrate=false", "scoring.norm=s"])
    assert backend_choice(norm, bg).config.lda_dim == 61
    # the cap, and the rank
    assert backend_choice(off, _background(1000, 3)).config.lda_dim == LDA_CAP == 200
    low = load_config(None, [*IVECTOR_ARGS, "ivector.rank=50"])
    assert backend_choice(low, bg).config.lda_dim == 50


def test_auto_falls_back_to_cosine_and_says_why() -> None:
    cfg = load_config(None, IVECTOR_ARGS)
    # one utterance per speaker (the LibriSpeech samples): nothing within-speaker to learn
    choice = backend_choice(cfg, _background(251, 1))
    assert (choice.config.scorer, choice.config.lda_dim) == ("cosine", None)
    assert "251 of the 251 speakers of the main back end have one" in choice.reasons["scorer"]
    # 50 speakers x 5: a calibration group's back end has 25 speakers, 125 utterances,
    # a within-speaker scatter of rank 125 - 25 = 100 < 400 dimensions
    choice = backend_choice(cfg, _background(50, 5))
    assert choice.config.scorer == "cosine"
    assert "ivector.rank: 400 needs at most 100" in choice.reasons["scorer"]
    # explicit settings are kept for the check to refuse, never changed
    plda = load_config(None, [*IVECTOR_ARGS, "backend.scorer=plda", "backend.lda_dim=100"])
    got = backend_choice(plda, _background(50, 5)).config
    assert (got.scorer, got.lda_dim) == ("plda", 100)


def test_violations_name_each_limit() -> None:
    main_ = TrainingSpeakers("the main back end", (20,) * 125)
    group = TrainingSpeakers("the back end of calibration group 1", (20,) * 62)
    found = violations(BackendConfig(lda_dim=100, scorer="plda"), 400, [main_, group])
    assert found == [
        "backend.lda_dim: 100 needs at most 61 (the back end of calibration group 1 is "
        "trained on 62 speakers, minus 1); set backend.lda_dim: auto or <= 61"
    ]
    found = violations(BackendConfig(lda_dim=None, scorer="plda"), 400, [main_])
    assert found[0].startswith("backend.lda_dim: null gives PLDA of 400 dimensions")
    assert "trained on 125; set backend.lda_dim: auto or <= 124" in found[0]
    assert violations(BackendConfig(lda_dim=None, scorer="cosine"), 400, [main_]) == []


def test_backend_fit_resolves_auto_on_its_own_speakers(monkeypatch) -> None:
    monkeypatch.setattr(limits, "PLDA_MIN_AUTO_DIM", 2)  # PLDA on 5 dimensions, as asked
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(6), 4)  # 6 speakers x 4 vectors of dimension 8
    x = rng.normal(size=(6, 8))[y] * 3 + rng.normal(size=(24, 8))
    be = Backend(BackendConfig()).fit(x, y)
    assert (be.config.scorer, be.config.lda_dim) == ("plda", 6 - 1)
    assert be.lda_.scalings_.shape == (8, 5) and be.plda_ is not None
    assert "lda_dim" in be.choices_
    cos = Backend(BackendConfig()).fit(x)  # no labels: cosine, no LDA
    assert (cos.config.scorer, cos.config.lda_dim) == ("cosine", None)


def test_a_saved_back_end_never_holds_auto(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(6), 4)
    be = Backend(BackendConfig()).fit(rng.normal(size=(24, 8)), y)
    be.save(tmp_path / "be.h5")
    assert Backend.load(tmp_path / "be.h5").config == be.config


# ------------------------------------------------------------- refused before the UBM
def _verification(extra: str, scoring: str = "", data: str = "") -> str:
    text = CONFIG.format(extra=extra)
    text = text.replace("scoring:\n  top_c: 2\n", "scoring:\n  top_c: 2\n" + scoring)
    return text.replace("data:\n  root: corpus\n", "data:\n  root: corpus\n" + data)


def _classification(method: str = "llr", extra: str = "") -> str:
    return (
        "name: cls\ntask: classification\n"
        "data:\n  root: corpus\n"
        "  dataset: {path: sounds, pattern: '{label}/{spk}_{n}.wav'}\n"
        f"  n_folds: 5\n{extra}"
        "features: {n_mfcc: 13, deltas: 0, vad: none}\n"
        "ubm: {n_components: 4, iterations_per_stage: [1], final_max_iterations: 2}\n"
        "scoring: {top_c: 2}\n"
        f"classification: {{method: {method}}}\n"
    )


def _sounds(root: Path, files: dict[str, list[str]]) -> None:
    """Class -> the speakers of its files (one file each), short synthetic clips."""
    for c, (label, speakers) in enumerate(files.items()):
        (root / "sounds" / label).mkdir(parents=True)
        for i, spk in enumerate(speakers):
            sf.write(root / "sounds" / label / f"{spk}_{i}.wav", voice(c, i, 0.4), SR)


IVECTOR = "system: ivector\nivector: {{rank: {rank}, n_iter: 1}}\nbackend: {backend}\n"
FIVE = {f"class{c}": ["x"] * 5 for c in range(3)}  # 3 classes x 5 files

CASES = {
    # the case: passes the main back end (9 dimensions allowed), fails calibration
    "lda_dim over a calibration group": (
        {"n_bg": 10},
        _verification(IVECTOR.format(rank=5, backend="{lda_dim: 5}")),
        "backend.lda_dim: 5 needs at most 4 (the back end of calibration group 1 is trained "
        "on 5 speakers, minus 1); set backend.lda_dim: auto or <= 4",
    ),
    "lda_dim over the rank": (
        {"n_bg": 10},
        _verification(IVECTOR.format(rank=4, backend="{lda_dim: 6}"), "  calibrate: false\n"),
        "backend.lda_dim: 6 needs at most 4 (ivector.rank, the dimension of the i-vectors); "
        "set backend.lda_dim: auto or <= 4",
    ),
    "PLDA dimension over the speakers": (
        {"n_bg": 4},
        _verification(
            IVECTOR.format(rank=4, backend="{lda_dim: null, scorer: plda}"),
            "  calibrate: false\n",
        ),
        "backend.lda_dim: null gives PLDA of 4 dimensions (ivector.rank), which needs more "
        "than 4 speakers, and the main back end is trained on 4; set backend.lda_dim: auto "
        "or <= 3",
    ),
    "rank over the within-speaker scatter": (
        {"n_bg": 10},
        _verification(IVECTOR.format(rank=6, backend="{scorer: plda}")),
        "ivector.rank: 6 needs at most 5: the within-speaker scatter of the back end of "
        "calibration group 1 (10 utterances of 5 speakers) has rank 5 at most",
    ),
    "rank over the supervector": (
        {"n_bg": 10},
        _verification(IVECTOR.format(rank=200, backend="{}")),
        "ivector.rank: 200 needs at most 104 (the UBM's supervector: ubm.n_components 4 x 26 "
        "features); set ivector.rank <= 104",
    ),
    "top-C over the UBM": (
        {"n_bg": 6},
        _verification("").replace("top_c: 2", "top_c: 8"),
        "scoring.top_c: 8 needs at most 4 (ubm.n_components); set scoring.top_c <= 4",
    ),
    "held-out groups, gmm-ubm": (
        {"n_bg": 3},
        _verification(""),
        "scoring.calibrate: true: the held-out groups of the cohort and the calibration trials "
        "need at least 4 background speakers, got 3; set scoring.calibrate: false",
    ),
    "held-out groups of a cohort": (
        {"n_bg": 3},
        _verification("", "  norm: s\n  calibration_trials: enroll\n"),
        "scoring.norm: s: the held-out groups of the cohort and the calibration trials need "
        "at least 4 background speakers, got 3; set scoring.norm: none",
    ),
    "enrolment folds": (
        {"n_bg": 6},
        _verification("", "  calibration_trials: enroll\n", "  enroll_per_speaker: 1\n"),
        "scoring.calibration_trials: enroll: every one of the 4 models is enrolled on a single "
        "utterance",
    ),
    "class in one fold": (
        {"class0": ["a"] * 5, "class1": ["b"] * 5, "class2": ["c"]},
        _classification(),
        "data.n_folds: class 'class2' has all of its 1 file(s) in fold 0, so fold 0 tests them "
        "with no training file of the class (1 class(es) like it); give every class two or "
        "more files",
    ),
    "classes of one speaker with fold_by: spk": (
        {f"class{c}": [f"s{c}"] * 2 for c in range(5)},
        _classification(extra="  fold_by: spk\n"),
        "fold_by: spk keeps each speaker in one fold: use fold_by: rank",
    ),
    "i-vector classification rank": (
        FIVE,
        _classification("ivector", "ivector: {rank: 20, n_iter: 1}\n"),
        "ivector.rank: 20 needs at most 9: fold 0 trains on 12 files of 3 classes",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_before_any_heavy_stage(tmp_path: Path, case: str) -> None:
    corpus, text, want = CASES[case]
    if "n_bg" in corpus:
        make_corpus(tmp_path / "corpus", **corpus)
    else:
        _sounds(tmp_path / "corpus", corpus)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(text, encoding="utf-8")
    exp = Experiment(load_config(cfg), tmp_path / "exp", config_path=str(cfg))
    with pytest.raises(ConfigError) as err:
        exp.run()
    msg = str(err.value)
    assert msg.startswith(f"{cfg}: ") and want in msg
    assert "\n" not in msg and "more problem" not in msg
    # the data was prepared; nothing heavy ran
    assert exp.is_done(1) and not exp.is_done(2)
    assert not (tmp_path / "exp/features").exists()
    assert not list((tmp_path / "exp").glob("ubm/*.h5"))


def test_checked_when_a_run_starts_after_prepare(tmp_path: Path, capsys) -> None:
    make_corpus(tmp_path / "corpus", n_bg=10)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(_verification(IVECTOR.format(rank=5, backend="{}")), encoding="utf-8")
    out = tmp_path / "exp"
    base = ["run", str(cfg), "--out", str(out), "--no-progress"]
    assert main([*base, "--stop-stage", "1"]) == 0
    capsys.readouterr()
    # the same prepared data, a config it cannot carry, a run from stage 2: one line
    args = [*base, "--stage", "2", "--set", "backend.lda_dim=5"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "backend.lda_dim: 5 needs at most 4" in err[0]
    assert not (out / "features").exists()


# ------------------------------------------------- 125 speakers x 20 utterances
def _voice(spk: int, utt: int) -> np.ndarray:
    """Half a second of noise through two resonances on a grid of 16 x 9 speakers."""
    rng = np.random.default_rng(1000 * spk + utt)
    x = rng.standard_normal(SR // 2)
    for f in (250 + 45 * (spk % 16), 1200 + 160 * (spk // 16)):
        r, w = 0.97, 2 * np.pi * f / SR
        x = lfilter([1.0], [1.0, -2 * r * np.cos(w), r * r], x)
    return (0.1 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def corpus125(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("c125")
    for s in range(125):
        (root / "corpus/bg").mkdir(parents=True, exist_ok=True)
        for u in range(20):
            sf.write(root / f"corpus/bg/b{s:03d}-{u}.wav", _voice(s, u), SR)
    for s in range(4):
        (root / f"corpus/tg/t{s}").mkdir(parents=True)
        for u in range(4):
            sf.write(root / f"corpus/tg/t{s}/t{s}-{u}.wav", _voice(125 + s, u), SR)
    return root


CONFIG125 = """\
name: synth125
task: verification
system: ivector
data:
  root: corpus
  background: {path: bg, pattern: "{spk}-{n}.wav"}
  targets: {path: tg, pattern: "{spk}/{spk}-{n}.wav"}
features: {n_mfcc: 13, deltas: 1, normalization: none, vad: none}
ubm: {n_components: 16, iterations_per_stage: [1, 1, 1, 1], final_max_iterations: 1}
scoring: {top_c: 2}
"""


def test_ivector_defaults_fit_125_speakers(corpus125: Path, tmp_path: Path) -> None:
    """Every ivector and backend option at its default (rank 400): the check passes and
    chooses PLDA on 61 LDA dimensions; the old defaults (no LDA) are refused at once."""
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(CONFIG125.replace("root: corpus", f"root: {corpus125 / 'corpus'}"))
    exp = Experiment(load_config(cfg), tmp_path / "exp")
    exp.run(stop_stage=1)
    got = exp.check_feasible()["backend"]
    assert (got["scorer"], got["lda_dim"]) == ("plda", 61)
    old = Experiment(load_config(cfg, ["backend.lda_dim=null", "backend.scorer=plda"]), exp.out)
    with pytest.raises(ConfigError, match="PLDA of 400 dimensions.*trained on 62"):
        old.run()
    assert not (exp.out / "features").exists()


@pytest.mark.slow
def test_ivector_runs_on_125_speakers(corpus125: Path, tmp_path: Path) -> None:
    """The whole i-vector system on 125 x 20 utterances with the default back end; the TV
    model is cut to rank 100 and one iteration so that the test takes seconds (at rank 400
    the TV stages alone take about 40 s on the 2-core machine)."""
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        CONFIG125.replace("root: corpus", f"root: {corpus125 / 'corpus'}")
        + "ivector: {rank: 100, n_iter: 1}\n"
    )
    exp = Experiment(load_config(cfg), tmp_path / "exp")
    exp.run()
    rec = (exp.record(exp.stage_number("backend")) or {})["info"]
    assert (rec["scorer"], rec["lda_dim"], rec["dim"]) == ("plda", 61, 61)
    assert rec["auto"]["backend.lda_dim"].startswith("61 (the smallest of")
    report = (exp.out / "report.md").read_text()
    assert "- `backend.lda_dim`: 61 (the smallest of the cap 200" in report
    be = Backend.load(exp.out / "backend/backend.h5")
    assert (be.config.lda_dim, be.lda_.scalings_.shape) == (61, (100, 61))
    cal = json.loads((exp.out / "stages/11_calibrate.json").read_text())["info"]
    assert cal["groups"] == 2 and cal["trials"] > 0  # both calibration back ends fitted
    res = exp.results()
    assert res["n_trials"] == 32 and res["eer"] < 0.25


def test_train_backend_says_what_auto_chose(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(limits, "PLDA_MIN_AUTO_DIM", 2)
    rng = np.random.default_rng(2)
    utts = [f"s{s}-{u}" for s in range(6) for u in range(4)]
    vectors = rng.normal(size=(6, 8))[np.repeat(np.arange(6), 4)] * 3 + rng.normal(size=(24, 8))
    IVectorSet(utts, vectors).save(tmp_path / "iv.h5")
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text("".join(f"{u} {u}.wav\n" for u in utts))
    (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts))
    assert main(["train-backend", str(tmp_path / "iv.h5"), str(d), str(tmp_path / "be.h5")]) == 0
    out = capsys.readouterr().out
    assert "backend.scorer: auto -> plda" in out and "backend.lda_dim: auto -> 5 (" in out
    assert "plda on 24 i-vectors of 6 speakers (dimension 5)" in out
    assert Backend.load(tmp_path / "be.h5").config.lda_dim == 5


def test_auto_takes_cosine_when_plda_would_get_few_dimensions() -> None:
    # 6 speakers x 20: PLDA fits on 5 LDA dimensions, but auto wants PLDA_MIN_AUTO_DIM
    args = [*IVECTOR_ARGS, "scoring.calibrate=false", "scoring.norm=none", "ivector.rank=60"]
    cfg = load_config(None, args)
    choice = backend_choice(cfg, _background(6, 20))
    assert (choice.config.scorer, choice.config.lda_dim) == ("cosine", None)
    assert (
        f"5 LDA dimensions, fewer than the {limits.PLDA_MIN_AUTO_DIM}" in choice.reasons["scorer"]
    )
    many = backend_choice(cfg, _background(limits.PLDA_MIN_AUTO_DIM + 1, 4))
    assert (many.config.scorer, many.config.lda_dim) == ("plda", limits.PLDA_MIN_AUTO_DIM)
