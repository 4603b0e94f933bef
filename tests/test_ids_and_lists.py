"""Ids the table files could not read back, list files with spaces, YAML 1.2 numbers."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pytest
from helpers_audio import utterance, write_wav

from gmmspeech.cli.main import main
from gmmspeech.config.loader import ConfigSource
from gmmspeech.config.sections import UBMConfig
from gmmspeech.config.yaml12 import safe_load12
from gmmspeech.corpus.datadir import DataDir
from gmmspeech.corpus.layout import read_list, scan_audio, select_listed
from gmmspeech.corpus.trials import TrialList
from gmmspeech.errors import DataError


def _tree(root: Path, rels: list[str]) -> None:
    for r in rels:
        p = root / r
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"RIFF")


# ------------------------------------------------------------------------------ ids
@pytest.mark.parametrize("folder", ["#7", "#"])
def test_prepare_refuses_a_speaker_id_read_as_a_comment(tmp_path: Path, capsys, folder) -> None:
    for spk in ("s1", folder):
        for i in range(2):
            write_wav(tmp_path / "audio" / spk / f"u{i}.wav", utterance(i, 0.2))
    out = tmp_path / "data"
    argv = ["prepare", str(tmp_path / "audio"), str(out), "--pattern", "{spk}/{utt}.wav"]
    assert main(argv) == 1
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1, err
    # names the file, the id and why
    assert f"{folder}/u0.wav" in err[0] and f"speaker id '{folder}'" in err[0]
    assert "comment" in err[0]
    assert not out.exists()


def test_a_trial_model_id_read_as_a_comment_is_refused_at_write(tmp_path: Path) -> None:
    dd = DataDir({"u1": "/a.wav"}, {"u1": "s1"}, trials=TrialList(["#s1"], ["u1"], [True]))
    with pytest.raises(DataError, match=r"model id '#s1' starts with '#'"):
        dd.write(tmp_path / "d")
    assert not (tmp_path / "d" / "trials").exists()


def test_an_utterance_id_with_whitespace_is_refused(tmp_path: Path) -> None:
    dd = DataDir({"u 1": "/a.wav"}, {"u 1": "s1"})
    with pytest.raises(DataError, match=r"utterance id 'u 1' holds whitespace"):
        dd.write(tmp_path / "d")


def test_a_label_read_as_a_comment_names_the_file(tmp_path: Path) -> None:
    _tree(tmp_path, ["#loud/s1_1.wav", "quiet/s2_1.wav"])
    with pytest.raises(DataError, match=re.escape("#loud/s1_1.wav: its label id '#loud'")):
        scan_audio(tmp_path, "{label}/{spk}_{n}.wav")


# ---------------------------------------------------------------------------- lists
def test_an_include_list_keeps_paths_with_spaces(tmp_path: Path, caplog) -> None:
    rels = ["piano forte/a 1.wav", "piano forte/b.wav", "viola/c  2.wav", "viola/d.wav"]
    _tree(tmp_path, rels)
    data = scan_audio(tmp_path, "{label}/{name}.wav", spk_field=None, label_field="label")
    (tmp_path / "keep.txt").write_text("".join(r + "\n" for r in rels[:3]))
    assert read_list(tmp_path / "keep.txt", "x", tmp_path) == set(rels[:3])
    got = select_listed(data, tmp_path, ["keep.txt"], "include")
    want = {str((tmp_path / r).resolve()) for r in rels[:3]}  # the oracle: the list itself
    assert {got.wav_scp[u] for u in got.utt_ids} == want
    # a listed path that matches no file is said, not dropped in silence
    (tmp_path / "more.txt").write_text("viola/d.wav\nviola/missing one.wav\n")
    with caplog.at_level(logging.WARNING, logger="gmmspeech.corpus.layout"):
        got = select_listed(data, tmp_path, ["more.txt"], "include")
    assert len(got) == 1
    assert any("1 of 2 listed paths match no audio file" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------- YAML
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1e-4", 1e-4),
        ("1E+3", 1000.0),
        ("-2.5e-3", -2.5e-3),
        ("010", 10),
        ("0o17", 15),
        ("0x1f", 31),
        ("1:30", "1:30"),
        ("1_000", "1_000"),
        ("+.inf", math.inf),
        ("5", 5),
    ],
)
def test_numbers_follow_yaml_1_2(text: str, want: object) -> None:
    got = safe_load12(text)
    # the oracle: YAML 1.2 core schema (int: [-+]?[0-9]+ | 0o | 0x; float: with e/E, .inf)
    assert type(got) is type(want) and got == want


def test_set_and_yaml_read_1e_minus_4_as_a_float(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ubm:\n  tolerance: 1e-4\n  n_components: 010\n")
    ubm = ConfigSource(str(cfg), []).section("ubm", UBMConfig)
    assert ubm.tolerance == 1e-4 and ubm.n_components == 10
    ubm = ConfigSource(str(cfg), ["ubm.tolerance=3e-5"]).section("ubm", UBMConfig)
    assert ubm.tolerance == 3e-5
