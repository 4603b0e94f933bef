"""Held-out scoring has one home: the held-out UBMs are re-estimated in one place, built
once per experiment (the ubm stage) and saved; every trial, evaluation or calibration, is
normalised by the same cohort rule, its cohort scored under a UBM that has seen neither the
cohort nor the trial's speakers."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from test_pipeline import CONFIG, make_corpus

import gmmspeech
from gmmspeech.config.loader import load_config
from gmmspeech.decisions import heldout
from gmmspeech.errors import DataError
from gmmspeech.pipeline import Experiment, verification

PACKAGE = Path(gmmspeech.__file__).parent


def _calls(name: str) -> list[tuple[str, str]]:
    """(module, enclosing function) of every call of ``name`` in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call):
                    f = node.func
                    called = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                    if called == name:
                        found.append((str(path.relative_to(PACKAGE)), fn.name))
    return sorted(set(found))


def test_held_out_ubms_are_re_estimated_in_one_place() -> None:
    # the one M-step outside the EM package is build_heldout_ubms's
    outside = [c for c in _calls("estimate") if not c[0].startswith("mixture/")]
    assert outside == [("decisions/heldout.py", "build_heldout_ubms")]
    accumulate = [c for c in _calls("accumulate_shard") if not c[0].startswith("mixture/")]
    assert accumulate == [("decisions/heldout.py", "build_heldout_ubms")]
    # and it is called from the ubm stage only
    assert _calls("build_heldout_ubms") == [("pipeline/verification.py", "ubm")]


def _run(tmp_path: Path, extra: str, sets: list[str] | None = None) -> Path:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(CONFIG.format(extra=extra), encoding="utf-8")
    out = tmp_path / "exp"
    Experiment(load_config(cfg, sets or []), out).run()
    return out


def test_built_once_saved_and_used_by_normalize_and_calibrate(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    make_corpus(tmp_path / "corpus")
    built: list[int] = []
    real = heldout.build_heldout_ubms

    def counting(*args, **kwargs):
        out = real(*args, **kwargs)
        built.append(len(out))
        return out

    monkeypatch.setattr(verification, "build_heldout_ubms", counting)
    with caplog.at_level(logging.INFO, logger="gmmspeech"):
        out = _run(tmp_path, "  norm: s\n")
    # clearing former held-out UBMs beside the new ubm.h5 is not news, and the files there
    # are this run's own: a fresh run used to log "kept (it holds files gmmspeech did not
    # write there)" for its own ubm folder
    noted = [r for r in caplog.records if r.name == "gmmspeech.storage.outputs"]
    assert not [r.getMessage() for r in noted if r.levelno >= logging.INFO]
    assert built == [2]  # once, in the ubm stage, for both normalize and calibrate
    assert sorted(p.name for p in (out / "ubm").glob("heldout_*.h5")) == [
        "heldout_1.h5",
        "heldout_2.h5",
    ]
    # another norm reruns normalize and calibrate on the saved UBMs: nothing is rebuilt
    _run(tmp_path, "  norm: s\n", ["scoring.norm=zt"])
    assert built == [2]
    # a missing held-out UBM is an output of the ubm stage: the runner redoes that stage
    (out / "ubm/heldout_2.h5").unlink()
    _run(tmp_path, "  norm: s\n", ["scoring.norm=t"])
    assert built == [2, 2] and (out / "ubm/heldout_2.h5").is_file()


def test_calibration_trials_are_normalised_exactly_as_the_evaluation_trials(
    tmp_path: Path, monkeypatch
) -> None:
    """Every call of the one normaliser, evaluation and calibration alike, uses the same
    method, top_n and cohort models' utterances, and the cohort rule: each cohort part is
    scored under a held-out UBM that has seen neither its speakers nor the trial's."""
    make_corpus(tmp_path / "corpus")
    calls: list[dict] = []
    real_parts, real_norm = verification.heldout_parts, verification.normalize_pairs

    def parts(held, cohort, background, trial_speakers, scorer):
        used = []

        def tracking(g, h):
            used.append(h)
            return scorer(g, h)

        out = real_parts(held, cohort, background, trial_speakers, tracking)
        calls.append(
            {
                "held": held,
                "cohort": dict(cohort),
                "background": set(background),
                "trial_speakers": set(trial_speakers),
                "parts": [(set(p.spk2utt), h) for p, h in zip(out, used, strict=True)],
            }
        )
        return out

    def norm(method, values, keys, parts_, **kw):
        calls[-1] |= {"method": method, **kw}
        return real_norm(method, values, keys, parts_, **kw)

    monkeypatch.setattr(verification, "heldout_parts", parts)
    monkeypatch.setattr(verification, "normalize_pairs", norm)
    _run(tmp_path, "  norm: s\n  top_n: 3\n")
    # the normalize stage (evaluation trials), then one call per calibration group
    assert len(calls) == 3
    evaluation, *calibration = calls
    for c in calls:
        assert (c["method"], c["top_n"], c["enroll_utts"]) == ("s", 3, evaluation["enroll_utts"])
        assert c["cohort"] == evaluation["cohort"]  # the same cohort rule picks the cohort
        for speakers, h in c["parts"]:
            seen = c["background"] - set(h.speakers)
            assert speakers and not speakers & seen, "cohort scored under a UBM that saw it"
            assert not c["trial_speakers"] & seen, "trials scored under a UBM that saw them"
    # evaluation trials (unseen speakers): the whole cohort, each part under its own UBM
    assert set().union(*(s for s, _ in evaluation["parts"])) == set(evaluation["cohort"])
    assert len(evaluation["parts"]) == 2
    # calibration trials of group g: the cohort speakers of g, under the UBM without g
    for c, h in zip(calibration, evaluation["held"], strict=True):
        assert c["trial_speakers"] == set(h.speakers)
        assert [s for s, _ in c["parts"]] == [set(h.speakers) & set(c["cohort"])]
        assert c["model_spk"] and c["test_spk"]  # own speaker left out of its cohort


def test_the_rule_keeps_only_unseen_parts() -> None:
    """heldout_parts on hand-made groups: a part is kept when its UBM has seen no trial
    speaker, and holds the cohort speakers that UBM has not seen."""
    background = ["a", "b", "c", "d", "e", "f"]
    held = [
        heldout.HeldoutUBM(("a", "c", "e"), None, ""),  # type: ignore[arg-type]
        heldout.HeldoutUBM(("b", "d", "f"), None, ""),  # type: ignore[arg-type]
    ]
    cohort = {k: [f"{k}1"] for k in ("a", "b", "c", "d")}
    got = heldout.heldout_parts(held, cohort, background, {"x", "y"}, lambda g, h: g)
    assert [(sorted(p.spk2utt), p.scorer) for p in got] == [(["a", "c"], 0), (["b", "d"], 1)]
    got = heldout.heldout_parts(held, cohort, background, {"c", "x"}, lambda g, h: g)
    assert [(sorted(p.spk2utt), p.scorer) for p in got] == [(["a", "c"], 0)]
    with pytest.raises(DataError, match="every held-out UBM has seen"):
        heldout.heldout_parts(held, cohort, background, {"a", "b"}, lambda g, h: g)
