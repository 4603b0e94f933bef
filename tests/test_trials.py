"""Trial lists and score files: the one grammar, its errors, and score/trial alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gmmspeech
from gmmspeech import DataError
from gmmspeech.corpus.scorefiles import align_scores, read_scores, write_scores
from gmmspeech.corpus.tables import Problems
from gmmspeech.corpus.trials import TrialList, read_trials, write_trials


def _file(tmp_path: Path, text: str, name: str = "trials") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _error(path: Path, **kw: object) -> str:
    with pytest.raises(DataError) as info:
        read_trials(path, **kw)  # type: ignore[arg-type]
    return str(info.value)


# ------------------------------------------------------------------------- grammar
def test_accepted_lines_labels_aliases_comments_and_blank_lines(tmp_path: Path) -> None:
    p = _file(
        tmp_path,
        "# model test label\n"
        "spk1 utt1 target\n"
        "\n"
        "spk1 utt2 NonTarget\n"
        "  # an indented comment\n"
        "spk2\tutt1   tgt\n"
        "spk2 utt2 imp\n"
        "spk3 utt1 1\n"
        "spk3 utt2 0\n"
        "spk4 utt1 TRUE\n"
        "spk4 utt2 no\n"
        "spk5 utt3 non-target\r\n",
    )
    t = read_trials(p)
    assert t.model_ids == ["spk1", "spk1", "spk2", "spk2", "spk3", "spk3", "spk4", "spk4", "spk5"]
    assert t.test_ids == ["utt1", "utt2", "utt1", "utt2", "utt1", "utt2", "utt1", "utt2", "utt3"]
    assert t.is_target is not None
    assert t.is_target.tolist() == [True, False, True, False, True, False, True, False, False]
    assert t.lines == [2, 4, 6, 7, 8, 9, 10, 11, 12]
    assert t.source == str(p) and t.where(2) == f"{p}:6"
    assert gmmspeech.TrialList is TrialList and gmmspeech.read_trials is read_trials


def test_unlabelled_list_and_data_dir_path(tmp_path: Path) -> None:
    p = _file(tmp_path, "a x\n# c\nb y\n")
    t = read_trials(tmp_path)  # a folder holding a trials file
    assert (t.pairs, t.is_target, t.lines, t.source) == (
        [("a", "x"), ("b", "y")],
        None,
        [1, 3],
        str(p),
    )
    assert t.to_lines() == ["a x", "b y"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "a b target\nc\n",
            ":2: expected '<model-id> <test-id> [target|nontarget]', got 1 field(s): 'c'",
        ),
        (
            "a b target x\n",
            ":1: expected '<model-id> <test-id> [target|nontarget]', got 4 field(s)",
        ),
        (
            "a b target\na c maybe\n",
            ":2: trial label 'maybe' is not a label; write target or nontarget",
        ),
        ("a b target\n\na c\n", ":3: no target/nontarget label, but line 1 has one; label every"),
        ("a b\na c target\n", ":2: a target/nontarget label, but line 1 has none; label every"),
        ("a b target\nc d target\na b nontarget\n", ":3: duplicate trial a b (first at line 1)"),
        ("\ufeffa b target\n", ":1: the file starts with a UTF-8 byte order mark (BOM)"),
    ],
)
def test_rejected_lines_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    p = _file(tmp_path, text)
    msg = _error(p)
    assert msg.startswith(f"{p}{message}"), msg


def test_files_without_trials(tmp_path: Path) -> None:
    for text in ("", "\n# only a comment\n"):
        p = _file(tmp_path, text)
        assert _error(p).startswith(f"{p}: no trials (empty file)")
    assert _error(tmp_path / "nope").startswith(f"{tmp_path / 'nope'}: no such trials file")


def test_problems_are_collected_with_their_lines(tmp_path: Path) -> None:
    p = _file(tmp_path, "a b target\na c maybe\nx\na d target\na b target\n")
    problems = Problems("here")
    t = read_trials(p, name="trials", problems=problems)
    assert t.pairs == [("a", "b"), ("a", "d")] and t.lines == [1, 4]
    assert sorted(m.split(":")[1] for m in problems.items) == ["2", "3", "5"]
    assert all(m.startswith("trials:") for m in problems.items)


def test_write_trials_round_trip_gives_canonical_labels(tmp_path: Path) -> None:
    t = read_trials(_file(tmp_path, "m1 u1 tgt\n# c\nm2 u1 imp\n"))
    write_trials(tmp_path / "out", t)
    assert (tmp_path / "out").read_text() == "m1 u1 target\nm2 u1 nontarget\n"
    back = read_trials(tmp_path / "out")
    assert back.pairs == t.pairs and back.is_target.tolist() == [True, False]


def test_from_tuples_and_select() -> None:
    t = TrialList.from_tuples([("a", "b", True), ("a", "c", "nontarget"), ("d", "b", "1")])
    assert t.is_target is not None and t.is_target.tolist() == [True, False, True]
    assert TrialList.from_tuples(t) is t
    assert TrialList.from_tuples([("a", "b"), ("c", "d")]).is_target is None
    with pytest.raises(DataError, match="some trials have a target label and some do not"):
        TrialList.from_tuples([("a", "b", True), ("a", "c")])
    with pytest.raises(DataError, match=r"^trials:2: expected \(model_id, test_id"):
        TrialList.from_tuples([("a", "b"), ("a",)])  # type: ignore[list-item]
    with pytest.raises(DataError, match=r"^trials:1: trial label 'maybe'"):
        TrialList.from_tuples([("a", "b", "maybe")])
    s = TrialList(["a", "b", "c"], ["x", "y", "z"], np.array([1, 0, 1]), [4, 7, 9], "f").select(
        [2, 0]
    )
    assert (s.pairs, s.is_target.tolist(), s.lines, s.where(0)) == (
        [("c", "z"), ("a", "x")],
        [True, True],
        [9, 4],
        "f:9",
    )
    with pytest.raises(DataError, match="equally many"):
        TrialList(["a"], ["x", "y"])


# -------------------------------------------------------------------------- scores
def test_score_file_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ms = [f"m{i}" for i in range(20)]
    ts = [f"t{i % 7}" for i in range(20)]
    s = rng.normal(size=20) * 10
    write_scores(tmp_path / "s.txt", ms, ts, s)
    back = read_scores(tmp_path / "s.txt")
    assert list(back) == list(zip(ms, ts, strict=True))
    np.testing.assert_allclose(list(back.values()), s, rtol=1e-8)


def test_trial_and_score_file_errors(tmp_path: Path) -> None:
    p = tmp_path / "trials"
    p.write_text("a b target\na c maybe\n")
    with pytest.raises(DataError, match=r"trials:2.*'maybe'"):
        read_trials(p)
    q = tmp_path / "scores"
    q.write_text("a b 1.0\na c x\n")
    with pytest.raises(DataError, match=r"scores:2.*'x'"):
        read_scores(q)
    t = TrialList.from_tuples([("a", "b", True), ("a", "c", "nontarget")])
    assert t.is_target.tolist() == [True, False]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b 1\na b 2\n", ":2: duplicate trial a b (first at line 1)"),
        ("a b 1\n# c\na c nan\n", ":3: score 'nan' is not finite"),
        ("a b 1\na c\n", ":2: expected '<model> <test> <score>', got 2 field(s)"),
    ],
)
def test_bad_score_lines(tmp_path: Path, text: str, message: str) -> None:
    q = _file(tmp_path, text, "scores")
    with pytest.raises(DataError) as info:
        read_scores(q)
    assert str(info.value).startswith(f"{q}{message}"), str(info.value)


def test_align_scores_follows_the_trial_order(tmp_path: Path) -> None:
    trials = read_trials(
        _file(tmp_path, "# header\nm1 u1 target\nm2 u1 nontarget\nm1 u2 nontarget\n")
    )
    # the scores file lists the trials in another order, plus one trial not in the list
    q = _file(tmp_path, "m1 u2 -3.5\nm9 u9 7\nm1 u1 2.25\nm2 u1 -1\n", "scores")
    got = align_scores(read_scores(q), trials)
    assert got.dtype == np.float64
    assert got.tolist() == [2.25, -1.0, -3.5]  # m1 u1, m2 u1, m1 u2 written out by hand
    q.write_text("m1 u1 2.25\nm1 u2 -3.5\n")
    with pytest.raises(DataError) as info:
        align_scores(read_scores(q), trials)
    assert str(info.value).startswith(f"{tmp_path / 'trials'}:3: trial m2 u1 has no score")


def test_write_scores_checks_lengths(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="equally many"):
        write_scores(tmp_path / "s", ["a", "b"], ["x", "y"], [1.0])
    assert not (tmp_path / "s").exists()
