"""Data preparation: layout scanning, speaker splits, trial lists, folds, ``prepare``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gmmspeech.cli.main import main
from gmmspeech.corpus.datadir import DataDir
from gmmspeech.corpus.layout import compile_pattern, scan_audio, select_listed
from gmmspeech.corpus.prepare import (
    assign_folds,
    check_trials,
    limit_speakers,
    make_trials,
    split_speakers,
    split_verification,
)
from gmmspeech.corpus.trials import TrialList
from gmmspeech.errors import ConfigError, DataError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    return path


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
    assert trials.is_target is not None
    for (m, t), y in zip(trials.pairs, trials.is_target, strict=True):
        assert y == (te.utt2spk[t] == m)
    assert int(np.sum(trials.is_target)) == len(te)
    by_label = make_trials(en, te, by="label")
    assert set(by_label.model_ids) == set(en.utt2label.values())


def test_split_verification_with_a_separate_background(caplog: pytest.LogCaptureFixture) -> None:
    data = _corpus()
    bg = data.subset(u for u, s in data.utt2spk.items() if s in ("s0", "s1"))
    tg = data.subset(u for u, s in data.utt2spk.items() if s not in ("s0", "s1"))
    with caplog.at_level("INFO"):
        sets = split_verification(tg, background=bg, enroll=0.5, seed=3)
    assert "3 speaker(s) with a single utterance" in caplog.text
    # the split line counts the background data dir that is used, not the empty share
    split_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("split")]
    assert (
        len(split_lines) == 1
        and split_lines[0].endswith(
            ": 2 background speakers (12 utts), 6 target speakers (18 enrol, 18 test utts), 108 trials"  # 6 models x 18 tests
        )
    )
    assert sets.background is bg
    en_spk = set(sets.enroll.utt2spk.values())
    assert en_spk == {"s2", "s3", "s4", "s5", "s6", "s7"} == set(sets.test.utt2spk.values())
    # 6 speakers x 6 utterances, half enrolled: 18 test utterances, 6 x 18 trials
    assert sets.counts() == {
        "background_speakers": 2,
        "background_utts": 12,
        "target_speakers": 6,
        "models": 6,
        "enroll_utts": 18,
        "test_utts": 18,
        "trials": 108,
        "target_trials": 18,
        "nontarget_trials": 90,
    }
    with pytest.raises(DataError, match=r"share 2 speaker\(s\) \(e.g. \['s0', 's1'\]\)"):
        split_verification(data, background=bg)
    with pytest.raises(ConfigError, match=r"enroll_labels: \['w9'\] are not labels"):
        split_verification(tg, background=bg, enroll_labels=["w0", "w9"])


def test_split_verification_checks_a_user_trial_list(tmp_path: Path) -> None:
    data = _corpus()
    sets = split_verification(data, background=2, seed=0)
    te_utt, en_spk = sets.test.utt_ids[0], sorted(set(sets.enroll.utt2spk.values()))
    good = TrialList([en_spk[0], en_spk[1]], [te_utt, te_utt], [True, False], [3, 5], "my")
    again = split_verification(data, background=2, seed=0, trials=good)
    assert again.trials is good and again.test.utt_ids == sets.test.utt_ids
    bad_model = TrialList([en_spk[0], "nobody"], [te_utt, te_utt], [True, False], [3, 5], "my")
    with pytest.raises(DataError, match=r"^my:5: model 'nobody' is not an enrolled speaker"):
        check_trials(bad_model, sets.enroll, sets.test)
    enrol_utt = sets.enroll.utt_ids[0]
    bad_test = TrialList([en_spk[0]], [enrol_utt], [True], [7], "my")
    owner = sets.enroll.utt2spk[enrol_utt]
    with pytest.raises(
        DataError,
        match=rf"^my:7: utterance '{enrol_utt}' is in the enrolment set of speaker '{owner}' "
        r"\(enroll_fraction.*\), and the trial list uses it as a test utterance",
    ):
        check_trials(bad_test, sets.enroll, sets.test, rule="enroll_fraction: 0.5")
    with pytest.raises(DataError, match="need target/nontarget labels"):
        check_trials(TrialList([en_spk[0]], [te_utt]), sets.enroll, sets.test)
    sets.write(tmp_path / "out")
    written = DataDir.read(tmp_path / "out/test", check_audio=False).trials
    assert written is not None and written.pairs == sets.trials.pairs


def test_select_listed_and_limit_speakers(tmp_path: Path) -> None:
    _tree(tmp_path, ["a/1.wav", "a/2.wav", "b/1.wav", "b/2.wav", "c/1.wav"])
    data = scan_audio(tmp_path, "{spk}/{n}.wav")
    (tmp_path / "keep.txt").write_text("a/2.wav extra columns\n\nc/1.wav\n")
    (tmp_path / "keep.csv").write_text("id,file\nx,b/1.wav\n")
    got = select_listed(data, tmp_path, ["keep.txt", "keep.csv"], "include")
    assert got.utt_ids == ["a-2", "b-1", "c-1"]
    with pytest.raises(DataError, match="^include: none of the 5 files found is listed"):
        (tmp_path / "none.txt").write_text("zz/1.wav\n")
        select_listed(data, tmp_path, ["none.txt"], "include")
    assert limit_speakers(data, 2, 1).utt_ids == ["a-1", "b-1"]
    assert limit_speakers(data, None, None) is data


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
                "--overwrite",  # replaces the data dir written above
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
        main(
            [
                *("prepare", str(root), str(out), "--pattern", "{spk}.wav"),
                *("--log-level", "ERROR", "--overwrite"),
            ]
        )
        == 1
    )


def test_assign_folds_known_answers() -> None:
    wav = {f"u{i}": f"{i}.wav" for i in range(7)}
    spk = {"u0": "a", "u1": "a", "u2": "b", "u3": "c", "u4": "c", "u5": "d", "u6": "d"}
    lab = {"u0": "x", "u1": "x", "u2": "x", "u3": "y", "u4": "y", "u5": "x", "u6": "y"}
    d = DataDir(wav, spk, lab)
    # rank within class (sorted ids): x: u0 u1 u2 u5 -> 0 1 0 1; y: u3 u4 u6 -> 0 1 0
    assert assign_folds(d, 2, "rank") == {
        "u0": 0, "u1": 1, "u2": 0, "u3": 0, "u4": 1, "u5": 1, "u6": 0,
    }  # fmt: skip
    # speakers a b c d -> folds 0 1 2 0
    assert assign_folds(d, 3, "spk") == {
        "u0": 0, "u1": 0, "u2": 1, "u3": 2, "u4": 2, "u5": 0, "u6": 0,
    }  # fmt: skip
