"""Layout patterns (safe field subset, extensions in any case), skipped-file logging, and
list files (plain, CSV, wav.scp-style)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from gmmspeech.cli.main import main
from gmmspeech.corpus.layout import compile_pattern, read_list, scan_audio, select_listed
from gmmspeech.errors import ConfigError, DataError


def _tree(root: Path, rels: list[str]) -> None:
    for r in rels:
        p = root / r
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"RIFF")


# ------------------------------------------------------------------ safe field subset
def test_a_backtracking_field_is_refused_fast() -> None:
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"field \{spk:\(a\+\)\+b\}: '\(' is not allowed"):
        compile_pattern("{spk:(a+)+b}/x.wav")
    assert time.perf_counter() - start < 0.1


@pytest.mark.parametrize(
    ("field", "why"),
    [
        ("{a:x|y}", r"'\|' is not allowed"),
        ("{a:(?=x)y}", r"'\(' is not allowed"),
        ("{a:x\\1}", r"the escape \\1"),
        ("{a:^x}", r"'\^' is not allowed"),
        ("{a:x**}", r"'\*' repeats nothing or another repetition"),
        ("{a:+x}", r"'\+' repeats nothing"),
        ("{a:[a-z}", "unclosed character class"),
        ("{a:x\\b}", r"the escape \\b"),
    ],
)
def test_unsafe_field_restrictions_name_the_field(field: str, why: str) -> None:
    with pytest.raises(ConfigError, match=rf"pattern: field \{{a:.*\}}: {why}"):
        compile_pattern(f"{field}/{{spk}}.wav")


def test_safe_restrictions_match_like_regular_expressions() -> None:
    regex, fields = compile_pattern("stim{label:[A-Za-z]+}{sep:_?}{db:[0-9]+}dB/{file}.flac")
    m = regex.fullmatch("stimDog_070dB/dog1.flac")
    assert m is not None and m.groupdict() == {
        "label": "Dog",
        "sep": "_",
        "db": "070",
        "file": "dog1",
    }
    assert fields == ["label", "sep", "db", "file"]
    regex, _ = compile_pattern("{a:.+}{b:\\d+}.wav")
    assert regex.fullmatch("x/12.wav") is None  # '.' never crosses a folder
    assert regex.fullmatch("xy12.wav") is not None
    regex, _ = compile_pattern("{a:[^_]+}_{b}.wav")
    assert regex.fullmatch("x/y_1.wav") is None  # nor does a negated class
    assert regex.fullmatch("xy_1.wav") is not None


def test_the_extension_matches_in_any_case_and_only_the_extension(tmp_path: Path) -> None:
    _tree(tmp_path, ["DR1/FAKS0/SA1.WAV", "DR1/FAKS0/SA2.wav", "DR1/FAKS0/SI3.Wav"])
    dd = scan_audio(tmp_path, "DR{dr}/{spk}/{utt}.wav")
    assert dd.utt_ids == ["FAKS0-1-SA1", "FAKS0-1-SA2", "FAKS0-1-SI3"]
    assert scan_audio(tmp_path, "DR{dr}/{spk}/{utt}.WAV").utt_ids == dd.utt_ids
    with pytest.raises(DataError, match="no file matches"):
        scan_audio(tmp_path, "dr{dr}/{spk}/{utt}.wav")  # folder names keep their case


def test_skipped_audio_is_logged_apart_from_other_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _tree(tmp_path, ["s1/a.wav", "s1/b.wav", "README.md", "s1/a.PHN"])
    _tree(tmp_path, [f"extra/deep/x{i}.WAV" for i in range(10)])
    with caplog.at_level(logging.INFO, logger="gmmspeech.corpus.layout"):
        dd = scan_audio(tmp_path, "{spk}/{utt}.wav")
    assert len(dd) == 2  # extra/deep/x*.WAV are one folder deeper than the pattern
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and "10 of 12 audio files do not match" in warnings[0]
    assert "extra/deep/x0.WAV" in warnings[0]
    assert any("2 non-audio file(s) skipped" in m for m in infos)


def test_a_pattern_ending_in_a_field_takes_audio_files_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a user's class folders hold notes and Finder files beside the sounds
    names = ["dog/park/bark1.wav", "dog/bark2.MP3", "dog/notes.txt", "rain/.DS_Store"]
    _tree(tmp_path, [*names, "rain/take3/rain.flac", "rain/take.aac"])
    with caplog.at_level(logging.INFO, logger="gmmspeech.corpus.layout"):
        dd = scan_audio(tmp_path, "{label}/**/{file}", utt_id="{label}-{file}")
    assert sorted(Path(p).name for p in dd.wav_scp.values()) == [
        "bark1.wav",
        "bark2.MP3",
        "rain.flac",
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 file(s) match the pattern" in warnings[0]
    assert "dog/notes.txt" in warnings[0] and ".DS_Store" not in warnings[0]
    # naming the extension takes what it names, audio by name or not
    named = scan_audio(tmp_path, "{label}/**/{file}.aac", utt_id="{label}-{file}")
    assert [Path(p).name for p in named.wav_scp.values()] == ["take.aac"]


# ------------------------------------------------------------------------ list files
def test_list_formats_are_detected_per_file(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("a/2.wav extra columns\n\nc/1.wav\n")
    (tmp_path / "wav.scp").write_text("spk-2 a/2.wav\nspk-3 b/with space.wav\n")
    (tmp_path / "ids_only.txt").write_text("a/2.flac\n")
    assert read_list(tmp_path / "plain.txt", "x") == {"a/2.wav", "c/1.wav"}
    assert read_list(tmp_path / "wav.scp", "x") == {"a/2.wav", "b/with space.wav"}
    assert read_list(tmp_path / "ids_only.txt", "x") == {"a/2.flac"}
    (tmp_path / "bad.scp").write_text("u1 a/1.wav\nu2\n")
    with pytest.raises(DataError, match=r"bad.scp:2: '<id> <path>' expected"):
        read_list(tmp_path / "bad.scp", "x")


def test_include_takes_a_wav_scp(tmp_path: Path) -> None:
    _tree(tmp_path, ["a/1.wav", "a/2.wav", "b/1.wav"])
    data = scan_audio(tmp_path, "{spk}/{n}.wav")
    (tmp_path / "keep.scp").write_text(f"u1 a/2.wav\nu2 {tmp_path / 'b/1.wav'}\n")
    assert select_listed(data, tmp_path, ["keep.scp"], "include").utt_ids == ["a-2", "b-1"]


def test_prepare_refuses_an_unsafe_pattern_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _tree(tmp_path / "audio", ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac/x.wav"])
    start = time.perf_counter()
    rc = main(
        [
            "prepare",
            str(tmp_path / "audio"),
            str(tmp_path / "out"),
            "--pattern",
            "{spk:(a+)+b}/x.wav",
        ]
    )
    assert time.perf_counter() - start < 5
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1
    assert "field {spk:(a+)+b}" in err and "no groups" in err
    assert not (tmp_path / "out").exists()
