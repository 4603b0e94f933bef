"""Trial lists streamed in blocks: compact ids, blocks by test utterance, identical scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gmmspeech.corpus.idcodes as idcodes
from gmmspeech.corpus.idcodes import blocks_by_test
from gmmspeech.corpus.scorefiles import write_scores, write_trial_scores
from gmmspeech.corpus.tables import Problems
from gmmspeech.corpus.trials import TrialList, read_trials
from gmmspeech.decisions.scoring import score_trials
from gmmspeech.errors import DataError
from gmmspeech.mixture.gmm import DiagGMM
from gmmspeech.mixture.speakermodels import SpeakerModels
from tests.oracles import log_likelihood


@pytest.mark.parametrize("max_rows", [1, 3, 7, 1000])
def test_blocks_by_test_cover_every_row_once_with_whole_utterances(max_rows: int) -> None:
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 13, size=200).astype(np.int32)
    codes[codes == 5] = 6  # an unused code
    seen: list[int] = []
    block_of: dict[int, int] = {}
    for b, rows in enumerate(blocks_by_test(codes, 13, max_rows)):
        assert np.all(np.diff(rows) > 0)
        seen += rows.tolist()
        for c in set(codes[rows].tolist()):
            assert block_of.setdefault(c, b) == b  # one block per test utterance
        if len(set(codes[rows].tolist())) > 1:
            assert rows.size <= max(max_rows, 1)
    assert sorted(seen) == list(range(200))


def _setup(tmp_path: Path) -> tuple[DiagGMM, SpeakerModels, dict[str, np.ndarray], Path]:
    rng = np.random.default_rng(1)
    k, d = 4, 3
    ubm = DiagGMM(np.full(k, 1.0 / k), rng.normal(0, 2, (k, d)), rng.uniform(0.5, 1.5, (k, d)))
    ids = [f"m{i}" for i in range(5)]
    models = SpeakerModels(ubm, ids, means=ubm.means[None] + 0.3 * rng.normal(size=(5, k, d)))
    feats = {f"u{j}": rng.normal(0, 2, (10 + j, d)).astype(np.float32) for j in range(9)}
    lines = ["# a comment", ""]
    for j in rng.permutation(9).tolist():
        for i in rng.permutation(5)[: 1 + j % 5].tolist():
            lines.append(f"m{i} u{j}")
    p = tmp_path / "trials"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ubm, models, feats, p


def test_scores_in_small_blocks_equal_the_llr_of_each_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ubm, models, feats, p = _setup(tmp_path)
    monkeypatch.setattr(idcodes, "GROUP_ROWS", 2)
    trials = read_trials(p)
    assert trials.lines[0] == 3 and len(trials) > 9
    got = score_trials(ubm, models, feats, trials, method="exact")
    for i, (m, t) in enumerate(trials.pairs):
        spk = models[m]
        x = feats[t].astype(np.float64)
        want = np.mean(
            log_likelihood(x, spk.weights, spk.means, spk.variances)
            - log_likelihood(x, ubm.weights, ubm.means, ubm.variances)
        )
        assert got[i] == pytest.approx(want, abs=1e-4)


def test_unknown_model_and_missing_test_name_their_line(tmp_path: Path) -> None:
    ubm, models, feats, p = _setup(tmp_path)
    p.write_text(p.read_text() + "m1 u3x\nm9 u1\n", encoding="utf-8")
    n = len(p.read_text().splitlines())
    with pytest.raises(DataError, match=rf"trials:{n}: model 'm9' is not among"):
        score_trials(ubm, models, feats, read_trials(p, name="trials"), method="exact")
    p.write_text("\n".join(p.read_text().splitlines()[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"trials:{n - 1}: test utterance 'u3x' is not in"):
        score_trials(ubm, models, feats, read_trials(p, name="trials"), method="exact")


def test_duplicates_found_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idcodes, "GROUP_ROWS", 1)
    p = tmp_path / "trials"
    p.write_text("a x\nb y\na y\nb x\nb y\nc z\na x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"trials:5: duplicate trial b y \(first at line 2\)"):
        read_trials(p, name="trials")
    problems = Problems("dir")
    t = read_trials(p, name="trials", problems=problems)
    assert problems.items == [
        "trials:5: duplicate trial b y (first at line 2); remove or rename one",
        "trials:7: duplicate trial a x (first at line 1); remove or rename one",
    ]
    assert t.pairs == [("a", "x"), ("b", "y"), ("a", "y"), ("b", "x"), ("c", "z")]
    assert t.lines == [1, 2, 3, 4, 6]


def test_trial_list_holds_codes_not_strings() -> None:
    n = 100_000
    t = TrialList.from_tuples([(f"m{i % 100}", f"u{i // 100}") for i in range(n)])
    assert len(t.model_vocab) == 100 and len(t.test_vocab) == 1000
    assert t.model_codes.dtype == np.int32 and t.test_codes.dtype == np.int32
    assert t.model_codes.nbytes + t.test_codes.nbytes == 8 * n
    assert t.lines[:3] == [1, 2, 3] and t.where(n - 1) == f"trials:{n}"
    assert t.pairs[12345] == ("m45", "u123")


def test_streamed_scores_file_equals_the_list_writer(tmp_path: Path) -> None:
    t = TrialList(["a", "b", "a"], ["x", "x", "y"])
    s = np.array([1.0 / 3, -2e-7, 12345.678901234])
    write_trial_scores(tmp_path / "s1", t, s)
    write_scores(tmp_path / "s2", t.model_ids, t.test_ids, s)
    assert (tmp_path / "s1").read_bytes() == (tmp_path / "s2").read_bytes()
    assert (tmp_path / "s1").read_text() == "a x 0.333333333\nb x -2e-07\na y 12345.6789\n"
