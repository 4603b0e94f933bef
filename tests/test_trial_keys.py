"""Score files are joined by trial key, never by line order or argument order (#18 point 2).

Every consumer of scores files (evaluate, calibrate, fuse, the fusion experiment's stages)
gives the identical result on a scores file whose lines are shuffled; fuse matches the
scores files of --apply to its systems by the system each records, whatever their order;
missing and extra trials are refused with a count; files that record no provenance are used
with a warning.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_output_gate import W, _s
from test_output_gate import world as world  # the fixture
from test_pipeline_fusion import Systems, fusion_config, read_llrs, run, write_scores, write_trials

from gmmspeech.cli.main import main
from gmmspeech.corpus.scorefiles import read_scores, read_scores_header
from gmmspeech.corpus.scorefiles import write_scores as write_scores_file
from gmmspeech.decisions.fusionfile import load_fusion
from gmmspeech.errors import DataError, ModelFormatError


def shuffled(src: Path, dst: Path, seed: int = 0) -> Path:
    """``src`` with its score lines in a random order (its header line, if any, first)."""
    lines = src.read_text().splitlines()
    head = [x for x in lines[:1] if x.startswith("#")]
    body = lines[len(head) :]
    order = np.random.default_rng(seed).permutation(len(body))
    assert (order != np.arange(len(body))).any()
    dst.write_text("\n".join([*head, *(body[i] for i in order)]) + "\n")
    return dst


def test_shuffled_scores_give_the_identical_metrics(world: W, tmp_path: Path) -> None:
    mixed = shuffled(world["scores"], tmp_path / "mixed.txt")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    cal = ["--calibrate-on", *_s(world["scores"], world["trials"])]
    mixed_cal = ["--calibrate-on", *_s(mixed, world["trials"])]
    assert main(["evaluate", *_s(world["scores"], world["trials"]), "--json", str(a), *cal]) == 0
    assert main(["evaluate", *_s(mixed, world["trials"]), "--json", str(b), *mixed_cal]) == 0
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    for key in ("raw", "calibrated"):
        assert ra[key] == rb[key]
    fitted = ra["calibration"]
    assert {k: v for k, v in fitted.items() if k != "fitted_on"} == {
        k: v for k, v in rb["calibration"].items() if k != "fitted_on"
    }


def test_shuffled_scores_give_the_identical_calibration(world: W, tmp_path: Path) -> None:
    mixed = shuffled(world["scores"], tmp_path / "mixed.txt")
    outs = {}
    for name, src in (("plain", world["scores"]), ("mixed", mixed)):
        cal, llr = tmp_path / f"{name}.json", tmp_path / f"{name}_llr.txt"
        argv = ["calibrate", "--train", *_s(src, world["trials"]), "--save", str(cal)]
        assert main([*argv, str(src), "-o", str(llr)]) == 0
        outs[name] = (json.loads(cal.read_text()), read_scores(llr))
    (ca, la), (cb, lb) = outs["plain"], outs["mixed"]
    assert (ca["slope"], ca["offset"]) == (cb["slope"], cb["offset"])
    assert la == lb  # the same LLR for every trial key
    fa, fb = ca.pop("fitted_on"), cb.pop("fitted_on")
    assert fa.pop("file") != fb.pop("file") and fa == fb and ca == cb
    # the calibrated scores name the same system, as LLRs
    head = read_scores_header(tmp_path / "mixed_llr.txt")
    assert head["kind"] == "llr" and head["ubm"] == read_scores_header(world["scores"])["ubm"]


def _fuse(w: W, train: list[Path], apply: list[Path], out: Path, *extra: str) -> list[str]:
    return [
        "fuse",
        "--train",
        *_s(w["trials"], *train),
        "--apply",
        *_s(*apply),
        "--trials",
        str(w["trials"]),
        "-o",
        str(out),
        "--no-guard",
        *extra,
    ]


def test_fuse_matches_files_by_system_and_trials_by_key(world: W, tmp_path: Path, capsys):
    gmm, iv = world["scores"], world["ivscores"]
    ref = tmp_path / "ref.txt"
    assert main(_fuse(world, [gmm, iv], [gmm, iv], ref, "--save", str(tmp_path / "f.json"))) == 0
    want = read_scores(ref)
    # the --apply files in the other order, and shuffled: the same LLRs
    mixed = [shuffled(gmm, tmp_path / "g.txt", 1), shuffled(iv, tmp_path / "i.txt", 2)]
    swapped = tmp_path / "swapped.txt"
    capsys.readouterr()
    assert main(_fuse(world, [gmm, iv], mixed[::-1], swapped)) == 0
    assert "matched to the fused systems by system: system1: " in capsys.readouterr().out
    assert read_scores(swapped) == want
    # trained on shuffled files in the other order: the same fusion (columns swapped)
    back = tmp_path / "back.txt"
    assert main(_fuse(world, mixed[::-1], [gmm, iv], back)) == 0
    np.testing.assert_allclose(
        [read_scores(back)[k] for k in want], [want[k] for k in want], rtol=1e-7, atol=1e-7
    )
    # a saved fusion applied later, files in any order
    loaded = tmp_path / "loaded.txt"
    argv = ["fuse", "--load", str(tmp_path / "f.json"), "--apply", *_s(iv, gmm)]
    assert main([*argv, "--trials", str(world["trials"]), "-o", str(loaded)]) == 0
    assert read_scores(loaded) == want
    capsys.readouterr()
    assert main([*argv, "--trials", str(world["trials"]), "-o", str(loaded), "--no-guard"]) == 1
    assert "a fusion read with --load keeps the prior" in capsys.readouterr().err
    fu = load_fusion(tmp_path / "f.json")
    assert [r["name"] for r in fu.inputs] == ["system1", "system2"]
    assert fu.inputs[0]["ubm"] == read_scores_header(gmm)["ubm"]
    assert fu.inputs[1]["tv"] == read_scores_header(iv)["tv"]
    head = read_scores_header(ref)
    assert head["kind"] == "llr" and head["method"] == "fusion" and len(head["fused"]) == 16


def test_the_order_bug_of_the_issue_is_gone(world: W, tmp_path: Path) -> None:
    """#18: ``fuse --apply`` with the files in another order than ``--train`` scored each
    system with the other's weights. The same files without their headers (scores of
    another toolkit) are still taken in the order given, which is then visible."""
    gmm, iv = world["scores"], world["ivscores"]
    plain = []
    for src in (gmm, iv):
        dst = tmp_path / f"plain_{src.name}"
        dst.write_text("".join(x + "\n" for x in src.read_text().splitlines()[1:]))
        plain.append(dst)
    ok, swapped = tmp_path / "ok.txt", tmp_path / "swapped.txt"
    assert main(_fuse(world, [gmm, iv], [iv, gmm], swapped)) == 0
    assert main(_fuse(world, [gmm, iv], [gmm, iv], ok)) == 0
    assert read_scores(swapped) == read_scores(ok)
    # the oracle of the old behaviour: without headers the order given is the order used
    bad = tmp_path / "bad.txt"
    assert main(_fuse(world, plain, plain[::-1], bad)) == 0
    assert read_scores(bad) != read_scores(ok)


def test_fuse_refuses_missing_and_extra_trials_with_a_count(world: W, tmp_path: Path, capsys):
    gmm, iv = world["scores"], world["ivscores"]
    scores, head = read_scores(iv), read_scores_header(iv)
    keys = list(scores)
    short, long = tmp_path / "short.txt", tmp_path / "long.txt"
    subset = keys[:-3]  # 3 trials fewer, written as gmmspeech writes them
    write_scores_file(
        short, [m for m, _ in subset], [t for _, t in subset], [0.0] * len(subset), head
    )
    capsys.readouterr()
    assert main(_fuse(world, [gmm, iv], [gmm, short], tmp_path / "o.txt")) == 1
    n = len(keys)
    assert f"has no score in {short} (3 of {n} trials have none)" in capsys.readouterr().err
    more = [*keys, ("spk0", "spk9-t9"), ("spk1", "spk9-t9")]
    write_scores_file(long, [m for m, _ in more], [t for _, t in more], [0.5] * len(more), head)
    assert main(_fuse(world, [gmm, iv], [gmm, long], tmp_path / "o.txt")) == 1
    err = capsys.readouterr().err
    assert f"{long}: 2 score(s) of trials that {world['trials']} does not list" in err
    assert not (tmp_path / "o.txt").exists()


def test_a_truncated_scores_file_is_refused(world: W, tmp_path: Path) -> None:
    """The header counts the lines: a file cut after a complete line is noticed."""
    lines = world["scores"].read_text().splitlines()
    cut = tmp_path / "cut.txt"
    cut.write_text("\n".join(lines[:-5]) + "\n")
    n = len(lines) - 1
    with pytest.raises(
        DataError, match=f"holds {n - 5} scores, but its first line says n_scores={n}"
    ):
        read_scores(cut)
    cut.write_text("\n".join(lines[1:-5]) + "\n")  # without the header: a file as any other
    assert len(read_scores(cut)) == n - 5


def test_files_without_provenance_are_used_with_a_warning(world: W, tmp_path: Path, caplog):
    """A calibration of before fitted_on was recorded, and scores of another toolkit: there
    is nothing to compare, so they are applied, and a warning names the file."""
    old = json.loads(world["cal"].read_text())
    del old["fitted_on"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    caplog.set_level(logging.WARNING)
    argv = ["calibrate", "--load", str(tmp_path / "old.json"), str(world["ivscores"])]
    assert main([*argv, "-o", str(tmp_path / "a.txt")]) == 0
    assert "old.json records no system of the scores it was made from" in caplog.text
    caplog.clear()
    plain = tmp_path / "plain.txt"
    plain.write_text("".join(x + "\n" for x in world["scores"].read_text().splitlines()[1:]))
    argv = ["calibrate", "--load", str(world["cal"]), str(plain), "-o", str(tmp_path / "b.txt")]
    assert main(argv) == 0
    assert f"{plain} has no '# gmmspeech scores' line naming its system" in caplog.text
    # a fusion of before inputs were recorded: the files in the order given, with a warning
    fu = json.loads(world["fusion"].read_text())
    del fu["inputs"]
    (tmp_path / "oldfu.json").write_text(json.dumps(fu))
    caplog.clear()
    argv = ["fuse", "--load", str(tmp_path / "oldfu.json"), "--apply"]
    argv += [*_s(world["scores"], world["ivscores"], "--trials", world["trials"])]
    assert main([*argv, "-o", str(tmp_path / "c.txt")]) == 0
    assert "oldfu.json record(s) no system: the scores files are taken as the fused" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["candidates"]["system1"].update(offset=float("nan")), "not a finite"),
        (lambda d: d["candidates"]["system1+system2"].update(weights=[1.0]), "list of 2"),
        (lambda d: d.update(chosen="system3"), "is not one of the candidates"),
        (lambda d: d.update(inputs=d["inputs"][:1]), "one object per system"),
        (lambda d: d.update(systems=["a", "a"]), "distinct names"),
        (lambda d: d.update(offset=d["offset"] + 1.0), "differ from those of candidates"),
        (lambda d: d.update(offset=[[d["offset"]]]), r"json: offset: \[\[.*is not a finite number"),
    ],
)
def test_a_fusion_file_is_checked_on_load(world: W, tmp_path: Path, change, message) -> None:
    d = json.loads(world["fusion"].read_text())
    change(d)
    (tmp_path / "f.json").write_text(json.dumps(d))
    with pytest.raises(ModelFormatError, match=message):
        load_fusion(tmp_path / "f.json")


def test_a_calibration_holding_nan_is_refused(world: W, tmp_path: Path, capsys) -> None:
    text = world["cal"].read_text()
    d = json.loads(text)
    (tmp_path / "nan.json").write_text(text.replace(repr(d["offset"]), "NaN", 1))
    argv = ["calibrate", "--load", str(tmp_path / "nan.json"), str(world["scores"]), "-o", "x"]
    assert main(argv) == 1
    assert "nan.json: offset is nan; a calibration holds finite numbers" in capsys.readouterr().err


# ----------------------------------------------------------------- the fusion experiment
def _score_file_systems(root: Path, data: Systems) -> Path:
    head = "# gmmspeech scores ubm={u} norm=none method=topc kind=scores\n"
    for j, name in enumerate("ab"):
        h = head.format(u=f"{j:016d}")
        write_scores(root / name / "ev.txt", *data.ev[:2], data.x_ev[:, j], h)
        write_scores(root / name / "cal.txt", *data.cal[:2], data.x_cal[:, j], h)
    write_trials(root / "ev_trials", *data.ev)
    write_trials(root / "cal_trials", *data.cal)
    systems = [
        f"{{name: {n}, scores: {n}/ev.txt, calibration_trials: cal_trials, "
        f"calibration_scores: {n}/cal.txt}}"
        for n in "ab"
    ]
    return fusion_config(root, systems, "  trials: ev_trials\n")


def test_the_fusion_experiment_joins_by_trial_key(tmp_path: Path) -> None:
    data = Systems()
    cfg = _score_file_systems(tmp_path / "plain", data)
    shutil.copytree(tmp_path / "plain", tmp_path / "mixed")
    for i, rel in enumerate(["a/ev.txt", "a/cal.txt", "b/ev.txt", "b/cal.txt"]):
        shuffled(tmp_path / "plain" / rel, tmp_path / "mixed" / rel, seed=i)
    assert run(cfg, tmp_path / "plain/exp") == 0
    assert run(tmp_path / "mixed" / cfg.name, tmp_path / "mixed/exp") == 0
    ra, rb = (
        json.loads((tmp_path / d / "exp/results.json").read_text()) for d in ("plain", "mixed")
    )
    for key in ("systems", "fused", "calibrated", "n_trials", "n_target"):
        assert ra[key] == rb[key], key
    fa, fb = ra["fusion"], rb["fusion"]
    assert (fa["chosen"], fa["weights"], fa["offset"]) == (
        fb["chosen"],
        fb["weights"],
        fb["offset"],
    )
    for rel in ("scores/calibrated.txt", "scores/fused.txt"):
        assert read_llrs(tmp_path / "plain/exp" / rel) == read_llrs(tmp_path / "mixed/exp" / rel)
    # the fusion file records each system, and fuse --load applies it to the shuffled files
    fu = load_fusion(tmp_path / "plain/exp/fusion/fusion.json")
    assert [r["ubm"] for r in fu.inputs] == [f"{0:016d}", f"{1:016d}"]
    out = tmp_path / "again.txt"
    argv = ["fuse", "--load", str(tmp_path / "plain/exp/fusion/fusion.json"), "--apply"]
    argv += _s(tmp_path / "mixed/b/ev.txt", tmp_path / "mixed/a/ev.txt")
    argv += ["--trials", str(tmp_path / "plain/ev_trials"), "-o", str(out)]
    assert main(argv) == 0
    want = read_llrs(tmp_path / "plain/exp/scores/calibrated.txt")
    got = read_llrs(out)
    assert got.keys() == want.keys()
    # the stage fused its copies of the scores (9 significant digits)
    np.testing.assert_allclose([got[k] for k in want], [want[k] for k in want], atol=1e-7)
