"""Kaldi-style data directories: read/validate/write, layout scanning, splits, trials."""

from __future__ import annotations

from pathlib import Path

import pytest

import gmmspeech
from gmmspeech.corpus.datadir import (
    DataDir,
    read_kaldi_map,
    read_predictions,
    read_spk2utt,
    read_utt2fold,
    read_utt2label,
)
from gmmspeech.corpus.trials import TrialList
from gmmspeech.errors import DataError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    return path


def _write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_scp", ".scp")).write_text(text)
    return folder


@pytest.fixture
def audio(tmp_path: Path) -> dict[str, Path]:
    return {
        "a1": _touch(tmp_path / "audio" / "zoom in" / "a 1.wav"),
        "a2": _touch(tmp_path / "audio" / "a2.wav"),
        "b1": _touch(tmp_path / "audio" / "b1.wav"),
    }


def _good(tmp_path: Path, audio: dict[str, Path], **extra: str) -> Path:
    return _write(
        tmp_path / "data",
        wav_scp=f"a-1 {audio['a1']}\na-2 {audio['a2']}\nb-1 {audio['b1']}\n",
        utt2spk="a-1 a\na-2 a\nb-1 b\n",
        **extra,
    )


def test_read_good_dir_with_spaces_labels_and_trials(tmp_path: Path, audio: dict) -> None:
    d = _good(
        tmp_path,
        audio,
        spk2utt="a a-1 a-2\nb b-1\n",
        utt2label="a-1 yes\na-2 no\nb-1 yes\n",
        trials="a b-1 nontarget\nb b-1 target\n",
    )
    dd = DataDir.read(d)
    assert dd.utt_ids == ["a-1", "a-2", "b-1"]
    assert dd.audio_path("a-1") == audio["a1"]  # the path with spaces survives
    assert dd.spk2utt == {"a": ["a-1", "a-2"], "b": ["b-1"]}
    assert dd.utt2label == {"a-1": "yes", "a-2": "no", "b-1": "yes"}
    assert dd.trials is not None and dd.trials.pairs == [("a", "b-1"), ("b", "b-1")]
    assert dd.trials.is_target is not None and dd.trials.is_target.tolist() == [False, True]
    assert gmmspeech.DataDir is DataDir


def test_write_read_round_trip(tmp_path: Path, audio: dict) -> None:
    dd = DataDir(
        {"b-1": str(audio["b1"]), "a-1": str(audio["a1"])},
        {"b-1": "b", "a-1": "a"},
        {"a-1": "x", "b-1": "y"},
        TrialList(["a"], ["b-1"], [False]),
    )
    dd.write(tmp_path / "out")
    text = (tmp_path / "out" / "wav.scp").read_text()
    assert text == f"a-1 {audio['a1']}\nb-1 {audio['b1']}\n"
    assert (tmp_path / "out" / "spk2utt").read_text() == "a a-1\nb b-1\n"
    back = DataDir.read(tmp_path / "out")
    assert back.wav_scp == dd.wav_scp and back.utt2spk == dd.utt2spk
    assert back.utt2label == dd.utt2label and back.trials is not None
    assert back.trials.pairs == [("a", "b-1")] and back.trials.is_target.tolist() == [False]


def test_relative_paths_resolve_against_the_data_dir(tmp_path: Path) -> None:
    _touch(tmp_path / "data" / "wavs" / "x.wav")
    d = _write(tmp_path / "data", wav_scp="x wavs/x.wav\n", utt2spk="x s\n")
    assert DataDir.read(d).audio_path("x") == d / "wavs" / "x.wav"


def _problem(d: Path, *words: str, check_audio: bool = True) -> str:
    with pytest.raises(DataError) as info:
        DataDir.read(d, check_audio=check_audio)
    msg = str(info.value)
    for w in words:
        assert w in msg, msg
    return msg


def test_duplicate_ids_name_file_and_line(tmp_path: Path, audio: dict) -> None:
    d = _write(
        tmp_path / "d",
        wav_scp=f"a-1 {audio['a1']}\na-1 {audio['a2']}\n",
        utt2spk="a-1 a\n",
    )
    _problem(d, "wav.scp:2", "duplicate id 'a-1'", "first at line 1")


def test_unsorted_says_how_to_sort(tmp_path: Path, audio: dict) -> None:
    d = _write(
        tmp_path / "d",
        wav_scp=f"b-1 {audio['b1']}\na-1 {audio['a1']}\n",
        utt2spk="a-1 a\nb-1 b\n",
    )
    _problem(d, "wav.scp:2", "not sorted", "LC_ALL=C sort")


def test_unknown_and_missing_ids(tmp_path: Path, audio: dict) -> None:
    d = _write(
        tmp_path / "d",
        wav_scp=f"a-1 {audio['a1']}\na-2 {audio['a2']}\n",
        utt2spk="a-1 a\nzz a\n",
    )
    msg = _problem(d, "utt2spk:2", "unknown utterance 'zz'", "wav.scp:2", "'a-2' has no utt2spk")
    assert "2 problem(s)" in msg


def test_files_that_disagree(tmp_path: Path, audio: dict) -> None:
    d = _good(tmp_path, audio, spk2utt="a a-1\nb b-1\n", utt2label="a-1 x\n")
    _problem(d, "spk2utt:1", "disagrees with utt2spk", "has no utt2label line")


def test_missing_audio_names_the_line(tmp_path: Path, audio: dict) -> None:
    audio["a2"].unlink()
    d = _good(tmp_path, audio)
    _problem(d, "wav.scp:2", "does not exist")
    assert len(DataDir.read(d, check_audio=False)) == 3


def test_bad_trials(tmp_path: Path, audio: dict) -> None:
    d = _good(tmp_path, audio, trials="a b-1 maybe\na zz target\na b-1 target\na b-1 nontarget\n")
    _problem(
        d,
        "trials:1",
        "target or nontarget",
        "trials:2",
        "unknown test utterance 'zz'",
        "trials:4",
        "duplicate trial",
    )


def test_malformed_lines(tmp_path: Path, audio: dict) -> None:
    d = _write(
        tmp_path / "d",
        wav_scp=f"a-1 {audio['a1']}\n\nb-1 sox x.wav -t wav - |\nc-1\n",
        utt2spk="a-1 a x\n",
    )
    _problem(
        d,
        "wav.scp:2: empty line",
        "wav.scp:3: piped commands",
        "wav.scp:4: expected 2 fields",
        "utt2spk:1: expected 2 fields",
    )


def test_no_wav_scp_or_no_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no wav.scp"):
        DataDir.read(_write(tmp_path / "d", utt2spk="a b\n"))
    with pytest.raises(DataError, match="not a data directory"):
        DataDir.read(tmp_path / "nope")


# ----------------------------------------------------------------- single tables
def test_read_spk2utt_from_utt2spk(tmp_path: Path) -> None:
    (tmp_path / "utt2spk").write_text("u1 a\nu2 b\nu3 a\n")
    assert read_spk2utt(tmp_path) == {"a": ["u1", "u3"], "b": ["u2"]}
    (tmp_path / "utt2spk").write_text("u1 a\nu2\n")
    with pytest.raises(DataError, match="utt2spk:2"):
        read_spk2utt(tmp_path)


def test_spk2utt_and_labels_of_folders_with_and_without_wav_scp(tmp_path: Path) -> None:
    (tmp_path / "spk2utt").write_text("b u2\na u3 u1\n")  # unsorted is fine outside a data dir
    assert read_spk2utt(tmp_path) == {"b": ["u2"], "a": ["u3", "u1"]}
    (tmp_path / "my_labels").write_text("u1 yes\n\nu2 no\n")  # empty lines are skipped
    assert read_utt2label(tmp_path, "my_labels") == {"u1": "yes", "u2": "no"}
    d = _write(tmp_path / "d", wav_scp="u1 x.wav\nu2 y.wav\n", utt2spk="u1 a\nu2 a\n")
    with pytest.raises(DataError, match="has no utt2label"):
        read_utt2label(d)
    (d / "utt2label").write_text("u1 yes\nu2 no\n")
    assert read_utt2label(d) == {"u1": "yes", "u2": "no"}
    assert read_spk2utt(d) == {"a": ["u1", "u2"]}


def test_table_rejects_duplicates_and_wrong_field_counts(tmp_path: Path) -> None:
    p = tmp_path / "utt2spk"
    p.write_text("u1 a\nu2 b\nu1 c\n")
    with pytest.raises(DataError) as info:
        read_kaldi_map(p)
    assert str(info.value) == (f"{p}:3: duplicate id 'u1' (first at line 1); remove or rename one")
    p.write_text("u1 a\nu2 b c\n")
    with pytest.raises(DataError) as info:
        read_kaldi_map(p)
    assert str(info.value) == f"{p}:2: expected '<key> <value>', got 3 field(s): 'u2 b c'"
    p.write_text("a u1 u2\nb\n")
    with pytest.raises(DataError, match=rf"^{p}:2: expected '<key> <value> \.\.\.', got 1 f"):
        read_kaldi_map(p, multi=True)


def test_utf8_bom_is_named_as_such(tmp_path: Path, audio: dict) -> None:
    bom = b"\xef\xbb\xbf"  # U+FEFF encoded in UTF-8
    p = tmp_path / "utt2spk"
    p.write_bytes(bom + b"u1 a\nu2 b\n")
    with pytest.raises(DataError) as info:
        read_kaldi_map(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}:1: the file starts with a UTF-8 byte order mark (BOM)"), msg
    # in a data dir, the BOM is reported with the other problems, and the rest is checked
    d = _good(tmp_path, audio)
    (d / "utt2spk").write_bytes(bom + b"a-1 a\na-2 a\nb-1 b\nzz b\n")
    msg = _problem(d, "utt2spk:1: the file starts with a UTF-8 byte order mark (BOM)")
    assert "utt2spk:4: unknown utterance 'zz'" in msg and "2 problem(s)" in msg
    assert "'\\ufeffa-1'" not in msg  # the BOM is not taken as part of the first id


def test_utt2fold_and_predictions(tmp_path: Path) -> None:
    p = tmp_path / "utt2fold"
    p.write_text("u1 0\nu2 3\n")
    assert read_utt2fold(p) == {"u1": 0, "u2": 3}
    p.write_text("u1 0\nu2 three\n")
    with pytest.raises(DataError, match=rf"^{p}:2: fold 'three' is not an integer"):
        read_utt2fold(p)
    q = tmp_path / "predictions.txt"
    q.write_text("u2 dog cat 1\nu1 cat cat 0\n")
    rows = read_predictions(q)
    assert [tuple(r) for r in rows] == [("u2", "dog", "cat", 1), ("u1", "cat", "cat", 0)]
    assert rows[0].predicted == "cat" and rows[1].fold == 0
    q.write_text("u2 dog cat 1\nu1 cat 0\n")
    with pytest.raises(DataError, match=rf"^{q}:2: expected '<utt-id> <label> <predicted> <fold>'"):
        read_predictions(q)
