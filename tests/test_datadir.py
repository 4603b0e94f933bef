"""Kaldi-style data directories: read/validate/write, layout scanning, splits, trials."""

from __future__ import annotations

from pathlib import Path

import pytest

import gmmspeech
from gmmspeech.cli import main
from gmmspeech.datadir import (
    DataDir,
    Trial,
    compile_pattern,
    make_trials,
    scan_audio,
    split_speakers,
)
from gmmspeech.errors import ConfigError, DataError


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
    assert dd.trials == [Trial("a", "b-1", False), Trial("b", "b-1", True)]
    assert gmmspeech.DataDir is DataDir


def test_write_read_round_trip(tmp_path: Path, audio: dict) -> None:
    dd = DataDir(
        {"b-1": str(audio["b1"]), "a-1": str(audio["a1"])},
        {"b-1": "b", "a-1": "a"},
        {"a-1": "x", "b-1": "y"},
        [Trial("a", "b-1", False)],
    )
    dd.write(tmp_path / "out")
    text = (tmp_path / "out" / "wav.scp").read_text()
    assert text == f"a-1 {audio['a1']}\nb-1 {audio['b1']}\n"
    assert (tmp_path / "out" / "spk2utt").read_text() == "a a-1\nb b-1\n"
    back = DataDir.read(tmp_path / "out")
    assert back.wav_scp == dd.wav_scp and back.utt2spk == dd.utt2spk
    assert back.utt2label == dd.utt2label and back.trials == dd.trials


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


# ---------------------------------------------------------------------------- scanning
def _tree(root: Path, rels: list[str]) -> None:
    for r in rels:
        _touch(root / r)


def test_pattern_label_folder_with_space(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        [
            "zoom in/00000001_NO_01.flac",
            "zoom in/00000002_NO_03.flac",
            "yes/00000001_NO_02.flac",
            "train.csv",
        ],
    )
    dd = scan_audio(tmp_path, "{label}/{spk}_NO_{round}.flac")
    assert dd.utt_ids == ["00000001-yes-02", "00000001-zoom_in-01", "00000002-zoom_in-03"]
    assert dd.utt2spk["00000002-zoom_in-03"] == "00000002"
    assert dd.utt2label == {
        "00000001-yes-02": "yes",
        "00000001-zoom_in-01": "zoom_in",
        "00000002-zoom_in-03": "zoom_in",
    }
    assert (
        dd.audio_path("00000001-zoom_in-01")
        == (tmp_path / "zoom in" / "00000001_NO_01.flac").resolve()
    )


def test_pattern_fsdd_and_librispeech(tmp_path: Path) -> None:
    _tree(tmp_path / "fsdd", ["7_jackson_32.wav", "0_george_0.wav"])
    dd = scan_audio(tmp_path / "fsdd", "{digit}_{spk}_{idx:[0-9]+}.wav", label_field="digit")
    assert dd.utt2spk == {"george-0-0": "george", "jackson-7-32": "jackson"}
    assert dd.utt2label == {"george-0-0": "0", "jackson-7-32": "7"}
    _tree(
        tmp_path / "ls",
        ["1089/1089-134686-0000.flac", "1089/2000-1-1.flac", "other/103-1240-0000.flac"],
    )
    dd = scan_audio(tmp_path / "ls", "{spk}/{spk}-{chapter}-{utt}.flac")
    assert dd.utt_ids == ["1089-134686-0000"]  # the repeated {spk} must agree
    dd = scan_audio(tmp_path / "ls", "**/{spk}-{chapter}-{utt}.flac", utt_id="{spk}_{utt}")
    assert dd.utt_ids == ["103_0000", "1089_0000", "2000_1"]
    assert dd.utt2label is None


def test_scan_errors(tmp_path: Path) -> None:
    _tree(tmp_path, ["a/x_1.wav", "b/x_1.wav"])
    with pytest.raises(DataError, match="both get utterance id"):
        scan_audio(tmp_path, "{d}/{spk}_{n}.wav", utt_id="{spk}-{n}")
    with pytest.raises(DataError, match="no file matches"):
        scan_audio(tmp_path, "{spk}.flac")
    with pytest.raises(ConfigError, match="no {field}"):
        compile_pattern("a/b.wav")
    with pytest.raises(ConfigError, match="does not define"):
        scan_audio(tmp_path, "{d}/{spk}_{n}.wav", utt_id="{speaker}")


def test_no_speaker_field_means_one_speaker_per_utterance(tmp_path: Path) -> None:
    _tree(tmp_path, ["stimDog_070dB/dog1.flac", "stimCat059dB/cat1.flac"])
    dd = scan_audio(tmp_path, "stim{label}{db:_?[0-9]+}dB/{file}.flac")
    assert dd.utt2label == {"Cat-059-cat1": "Cat", "Dog-_070-dog1": "Dog"}
    assert dd.utt2spk == {u: u for u in dd.utt_ids}


# ------------------------------------------------------------------- splits and trials
def _corpus() -> DataDir:
    wav, spk, lab = {}, {}, {}
    for s in range(8):
        for i in range(6):
            u = f"s{s}-u{i}"
            wav[u], spk[u], lab[u] = f"/x/{u}.wav", f"s{s}", f"w{i % 3}"
    for s in range(3):
        u = f"single{s}-u0"
        wav[u], spk[u], lab[u] = f"/x/{u}.wav", f"single{s}", "w0"
    return DataDir(wav, spk, lab)


def test_split_speakers_fractions() -> None:
    data = _corpus()
    bg, en, te = split_speakers(data, background=0.25, enroll=0.5, seed=1)
    bg_spk, en_spk, te_spk = (
        set(bg.utt2spk.values()),
        set(en.utt2spk.values()),
        set(te.utt2spk.values()),
    )
    assert {"single0", "single1", "single2"} <= bg_spk
    assert len(bg_spk) == 3 + 2  # 1-utt speakers + round(0.25 * 8)
    assert not bg_spk & en_spk and en_spk == te_spk and len(en_spk) == 6
    assert not set(en.utt_ids) & set(te.utt_ids)
    assert len(bg) + len(en) + len(te) == len(data)
    assert all(len(u) == 3 for u in en.spk2utt.values())
    again = split_speakers(data, background=0.25, enroll=0.5, seed=1)
    assert again[1].utt_ids == en.utt_ids  # seeded


def test_split_by_labels_and_counts() -> None:
    bg, en, te = split_speakers(_corpus(), background=2, enroll_labels=["w0"], seed=0)
    assert len(set(bg.utt2spk.values())) == 3 + 2
    assert set(en.utt2label.values()) == {"w0"} and "w0" not in set(te.utt2label.values())
    with pytest.raises(ConfigError, match="leaves no target"):
        split_speakers(_corpus(), background=8)


def test_make_trials_all_pairs() -> None:
    _, en, te = split_speakers(_corpus(), background=0, seed=0)
    trials = make_trials(en, te)
    models = sorted(set(en.utt2spk.values()))
    assert len(trials) == len(models) * len(te)
    for t in trials:
        assert t.target == (te.utt2spk[t.test_id] == t.model_id)
    assert sum(t.target for t in trials) == len(te)
    by_label = make_trials(en, te, by="label")
    assert {t.model_id for t in by_label} == set(en.utt2label.values())


def test_prepare_cli(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    for spk in range(4):
        for word in ("yes", "zoom in"):
            for r in (1, 2):
                _touch(root / word / f"{spk:08d}_NO_{r:02d}.flac")
    out = tmp_path / "data"
    assert (
        main(
            [
                "prepare",
                str(root),
                str(out),
                "--pattern",
                "{label}/{spk}_NO_{round}.flac",
                "--log-level",
                "ERROR",
            ]
        )
        == 0
    )
    assert len(DataDir.read(out)) == 16
    assert (
        main(
            [
                "prepare",
                str(root),
                str(out),
                "--pattern",
                "{label}/{spk}_NO_{round}.flac",
                "--split",
                "--background",
                "1",
                "--enroll-labels",
                "yes",
                "--log-level",
                "ERROR",
            ]
        )
        == 0
    )
    te = DataDir.read(out / "test")
    en = DataDir.read(out / "enroll")
    assert te.trials is not None and len(te.trials) == 3 * len(te)
    assert set(en.utt2label.values()) == {"yes"}
    # a bad pattern is a one-line error with exit code 1
    assert (
        main(["prepare", str(root), str(out), "--pattern", "{spk}.wav", "--log-level", "ERROR"])
        == 1
    )
