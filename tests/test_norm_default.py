"""``scoring.norm: auto`` (the default): adaptive S-norm where the background allows a
cohort, none where it does not, said in the log and in ``results.json``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from test_pipeline import CONFIG, make_corpus

from gmmspeech.cli.main import main
from gmmspeech.config.sections import ScoringConfig
from gmmspeech.corpus.scorefiles import read_scores, read_scores_header
from gmmspeech.decisions.heldout import AUTO_MIN_SPEAKERS, choose_norm


def test_auto_is_the_default_and_only_auto_depends_on_the_speakers() -> None:
    assert ScoringConfig().norm == "auto"
    assert choose_norm("auto", AUTO_MIN_SPEAKERS)[0] == "as"
    assert choose_norm("auto", AUTO_MIN_SPEAKERS - 1)[0] == "none"
    assert "only 15 background speakers" in choose_norm("auto", 15)[1]
    for named in ("none", "s", "as", "z"):
        assert choose_norm(named, 1) == (named, "as configured")
        assert choose_norm(named, 500)[0] == named


def _run(tmp: Path, n_bg: int, caplog: pytest.LogCaptureFixture) -> tuple[dict, list[str]]:
    make_corpus(tmp / "corpus", n_bg=n_bg, n_tg=3, n_utt=3)
    (tmp / "exp.yaml").write_text(CONFIG.format(extra=""), encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="gmmspeech"):
        rc = main(["run", str(tmp / "exp.yaml"), "--out", str(tmp / "exp"), "--no-progress"])
    assert rc == 0
    res = json.loads((tmp / "exp" / "results.json").read_text())
    said = [r.getMessage() for r in caplog.records if "scoring.norm" in r.getMessage()]
    return res, said


def test_few_background_speakers_fall_back_to_none_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    res, said = _run(tmp_path, AUTO_MIN_SPEAKERS - 2, caplog)
    assert res["norm"] == "none" and "normalized" not in json.dumps(res["raw"])
    assert (
        len(said) == 1
        and f"scoring.norm: none (auto: only {AUTO_MIN_SPEAKERS - 2} background speakers" in said[0]
    )


def test_enough_background_speakers_get_adaptive_snorm(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    res, said = _run(tmp_path, AUTO_MIN_SPEAKERS, caplog)
    assert res["norm"] == "as"
    assert len(said) == 1 and said[0].startswith(
        f"scoring.norm: as (auto: {AUTO_MIN_SPEAKERS} background"
    )
    # the headline metrics are of the normalised scores: they differ from the raw ones
    raw = read_scores(tmp_path / "exp/scores/raw.txt")
    normed = read_scores(tmp_path / "exp/scores/scores.txt")
    assert raw.keys() == normed.keys() and raw != normed
    # the scores files name the norm applied, auto resolved
    assert read_scores_header(tmp_path / "exp/scores/raw.txt")["norm"] == "none"
    assert read_scores_header(tmp_path / "exp/scores/scores.txt")["norm"] == "as"
    assert read_scores_header(tmp_path / "exp/calibration/scores.txt")["norm"] == "as"
