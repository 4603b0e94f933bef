"""Protocols as given: Kaldi data dirs with an audio root, enrolment lists, first-N
enrolment, VoxCeleb trial lists, model2utt, and stage-1 errors that name the real cause."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from minicorpora import voice

from gmmspeech.cli.main import main
from gmmspeech.config.sections import DataConfig, SetConfig
from gmmspeech.corpus.datadir import DataDir, audio_file_problem, read_enrolment
from gmmspeech.corpus.layout import scan_audio
from gmmspeech.corpus.prepare import (
    make_trials,
    read_enroll_list,
    split_speakers,
    split_verification,
)
from gmmspeech.corpus.trials import TrialList, path_to_utt_id, read_trials
from gmmspeech.errors import AudioError, ConfigError, DataError
from gmmspeech.features.audio import load_audio
from gmmspeech.features.store import FeatureStore


def _targets() -> DataDir:
    """4 speakers x 5 utterances, ids ``s<k>_<n>``."""
    wav = {f"s{k}_{n}": f"/x/s{k}_{n}.wav" for k in range(4) for n in range(5)}
    return DataDir(wav, {u: u.split("_")[0] for u in wav})


def _background() -> DataDir:
    wav = {f"b{k}_{n}": f"/x/b{k}_{n}.wav" for k in range(2) for n in range(2)}
    return DataDir(wav, {u: u.split("_")[0] for u in wav})


# ------------------------------------------------------------------------- first N
def test_enroll_per_speaker_takes_the_first_n_sorted_ids() -> None:
    _, en, te = split_speakers(_targets(), background=0, enroll_per_speaker=2)
    assert en.utt_ids == sorted(f"s{k}_{n}" for k in range(4) for n in (0, 1))
    assert te.utt_ids == sorted(f"s{k}_{n}" for k in range(4) for n in (2, 3, 4))


def test_a_trial_on_an_enrolment_utterance_names_the_rule_not_the_list() -> None:
    trials = TrialList(["s0", "s1"], ["s0_3", "s0_1"], [True, False], [1, 2], "trials.txt")
    with pytest.raises(
        DataError,
        match=r"^trials.txt:2: utterance 's0_1' is in the enrolment set of speaker 's0' "
        r"\(enroll_per_speaker: first 2 in sorted id order\), and the trial list uses it as "
        r"a test utterance",
    ):
        split_verification(
            _targets(), background=_background(), enroll_per_speaker=2, trials=trials
        )
    ok = TrialList(["s0", "s1"], ["s0_3", "s0_4"], [True, False], [1, 2], "trials.txt")
    sets = split_verification(_targets(), background=_background(), enroll_per_speaker=2, trials=ok)
    assert sets.trials is ok


# ------------------------------------------------------------------ enrolment lists
def test_enroll_list_of_utterance_ids_makes_speaker_models(tmp_path: Path) -> None:
    p = tmp_path / "enroll.txt"
    p.write_text("# first sessions\ns1_0\ns0_2\ns0_0\n")
    assert read_enroll_list(p, _targets()) == {"s0": ["s0_0", "s0_2"], "s1": ["s1_0"]}


def test_enroll_list_with_models_spanning_lines(tmp_path: Path) -> None:
    p = tmp_path / "enroll.txt"
    p.write_text("alice s0_0\nalice s0_1\nbob s1_0 s1_1\nalice2 s0_1\n")
    got = read_enroll_list(p, _targets())
    assert got == {"alice": ["s0_0", "s0_1"], "alice2": ["s0_1"], "bob": ["s1_0", "s1_1"]}
    p.write_text("alice s0_0\ns0_1\n")
    with pytest.raises(DataError, match=rf"^{p}:2: line 1 reads '<model-id> <utt-id>'"):
        read_enroll_list(p, _targets())
    p.write_text("alice s0_0\nalice s9_0\n")
    with pytest.raises(DataError, match=rf"^{p}:2: utterance 's9_0' is not an utterance of"):
        read_enroll_list(p, _targets())
    p.write_text("alice s0_0\nalice s0_0\n")
    with pytest.raises(DataError, match="listed twice for model 'alice'"):
        read_enroll_list(p, _targets())


def test_given_models_use_the_trial_list_as_given() -> None:
    models = {"alice": ["s0_0", "s0_1"], "bob": ["s1_0"]}
    trials = TrialList(
        ["alice", "alice", "bob"], ["s0_3", "s1_0", "s0_0"], [True, False, False], [1, 2, 3], "t"
    )
    sets = split_verification(
        _targets(), background=_background(), enroll_models=models, trials=trials
    )
    # test side: exactly the trials' test utterances, some of them other models' enrolment
    assert sets.test.utt_ids == ["s0_0", "s0_3", "s1_0"]
    assert sets.enroll.model2utt == models and sets.enroll.utt_ids == ["s0_0", "s0_1", "s1_0"]
    own = TrialList(["alice"], ["s0_1"], [True], [4], "t")
    with pytest.raises(
        DataError, match=r"^t:4: utterance 's0_1' is in the enrolment set of model 'alice'"
    ):
        split_verification(_targets(), background=_background(), enroll_models=models, trials=own)
    with pytest.raises(ConfigError, match="needs a separate background"):
        split_verification(_targets(), background=0.5, enroll_models=models)


def test_all_pairs_trials_of_named_models() -> None:
    tg = _targets()
    en = tg.subset(["s0_0", "s0_1", "s1_0"])
    en.model2utt = {"alice": ["s0_0", "s0_1"], "bob": ["s1_0"]}
    te = tg.subset(["s0_0", "s0_4", "s1_4"])
    trials = make_trials(en, te)
    # alice never tests on her own s0_0; bob may
    assert trials.pairs == [
        ("alice", "s0_4"),
        ("alice", "s1_4"),
        ("bob", "s0_0"),
        ("bob", "s0_4"),
        ("bob", "s1_4"),
    ]
    assert trials.is_target is not None
    assert trials.is_target.tolist() == [True, False, False, False, True]
    en.model2utt = {"mixed": ["s0_0", "s1_0"]}
    with pytest.raises(DataError, match="model 'mixed' is enrolled on utterances of 2 speakers"):
        make_trials(en, te)


def test_model2utt_round_trip(tmp_path: Path) -> None:
    tg = _targets().subset(["s0_0", "s0_1", "s1_0"])
    tg.model2utt = {"m1": ["s0_1", "s0_0"], "m2": ["s1_0"]}
    tg.write(tmp_path / "enroll")
    assert (tmp_path / "enroll/model2utt").read_text() == "m1 s0_0 s0_1\nm2 s1_0\n"
    back = DataDir.read(tmp_path / "enroll", check_audio=False)
    assert back.enrolment == {"m1": ["s0_0", "s0_1"], "m2": ["s1_0"]}
    assert read_enrolment(tmp_path / "enroll") == back.enrolment
    (tmp_path / "enroll/model2utt").write_text("m1 s0_0 zz\n")
    with pytest.raises(DataError, match=r"model2utt:1: utterance 'zz' of model 'm1'"):
        DataDir.read(tmp_path / "enroll", check_audio=False)
    tg.model2utt = None
    tg.write(tmp_path / "enroll")  # a stale model2utt goes
    assert not (tmp_path / "enroll/model2utt").exists()
    assert read_enrolment(tmp_path / "enroll") == {"s0": ["s0_0", "s0_1"], "s1": ["s1_0"]}


# ------------------------------------------------------------------ VoxCeleb lists
def test_voxceleb_trial_list(tmp_path: Path) -> None:
    p = tmp_path / "veri_test2.txt"
    p.write_text(
        "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
        "0 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav\n"
    )
    t = read_trials(p, format="voxceleb")
    assert t.pairs == [
        ("id10270-x6uYqmx31kE-00001", "id10270-8jEAjG6SegY-00008"),
        ("id10270-x6uYqmx31kE-00001", "id10300-ize_eiCFEg0-00003"),
    ]
    assert t.is_target is not None and t.is_target.tolist() == [True, False]
    assert path_to_utt_id("id10001/a-b.c/00001.wav") == "id10001-a-b.c-00001"
    p.write_text("target id1/a/1.wav id1/a/2.wav\n")
    with pytest.raises(DataError, match=r"veri_test2.txt:1: the first field must be 1"):
        read_trials(p, format="voxceleb")
    p.write_text("1 a/1.wav b/2.wav\n0 a/1.wav b/2.wav\n")
    with pytest.raises(DataError, match=r":2: duplicate trial \(first at line 1\)"):
        read_trials(p, format="voxceleb")
    with pytest.raises(DataError, match="unknown trial list format"):
        read_trials(p, format="nist")


# -------------------------------------------------------------- data dirs as input
def _kaldi_corpus(root: Path) -> Path:
    for spk in range(2):
        for n in range(2):
            p = root / "audio" / f"s{spk}" / f"{n}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, voice(spk, n, seconds=0.6), 16000)
    d = root / "data" / "train"
    d.mkdir(parents=True)
    (d / "wav.scp").write_text(
        "".join(f"s{k}_{n} audio/s{k}/{n}.wav\n" for k in (0, 1) for n in (0, 1))
    )
    (d / "utt2spk").write_text("".join(f"s{k}_{n} s{k}\n" for k in (0, 1) for n in (0, 1)))
    return d


def test_read_with_an_audio_root(tmp_path: Path) -> None:
    d = _kaldi_corpus(tmp_path)
    with pytest.raises(
        DataError,
        match=r"wav.scp:1: audio file .* does not exist; .*relative to "
        r"the data directory",
    ):
        DataDir.read(d)
    dd = DataDir.read(d, audio_root=tmp_path)
    assert dd.audio_path("s1_0") == tmp_path / "audio/s1/0.wav"
    absolute = dd.with_absolute_paths()
    assert absolute.wav_scp["s1_0"] == str((tmp_path / "audio/s1/0.wav").resolve())


def test_extract_takes_an_audio_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _kaldi_corpus(tmp_path)
    out = tmp_path / "train.h5"
    args = ["extract", str(d), str(out), "--audio-root", str(tmp_path), "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    with FeatureStore(out) as store:
        assert sorted(store) == ["s0_0", "s0_1", "s1_0", "s1_1"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_wav_scp_entries_that_are_not_files(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "ok.wav").write_bytes(b"RIFF")
    d = tmp_path / "dd"
    d.mkdir()
    (d / "wav.scp").write_text(
        f"u1 {tmp_path / 'adir'}\nu2 {tmp_path / 'fifo'}\nu3 /dev/null\nu4 {tmp_path / 'ok.wav'}\n"
    )
    (d / "utt2spk").write_text("u1 a\nu2 a\nu3 a\nu4 a\n")
    with pytest.raises(DataError) as err:
        DataDir.read(d)
    msg = str(err.value)
    assert "3 problem(s)" in msg
    assert "wav.scp:1: audio file" in msg and "is a directory, not an audio file" in msg
    assert "wav.scp:2: audio file" in msg and "is a FIFO (named pipe), not an audio file" in msg
    assert "wav.scp:3: audio file '/dev/null' of 'u3' is a device, not an audio file" in msg
    assert audio_file_problem(tmp_path / "ok.wav") is None
    assert audio_file_problem(tmp_path / "nope.wav") == "does not exist"


# ------------------------------------------------------------------------- config
def test_set_and_data_config_rules() -> None:
    assert SetConfig(kaldi_dir="train", audio_root=".").pattern == ""
    with pytest.raises(ConfigError, match="either scanned .* or an existing data dir"):
        SetConfig(kaldi_dir="train", pattern="{spk}.wav")
    with pytest.raises(ConfigError, match="audio_root: only used with kaldi_dir"):
        SetConfig(pattern="{spk}.wav", audio_root=".")
    with pytest.raises(ConfigError, match="pattern: must be a non-empty path pattern"):
        SetConfig()
    with pytest.raises(
        ConfigError, match="enroll_list: only one enrolment rule .* enroll_per_speaker is set too"
    ):
        DataConfig(enroll_per_speaker=3, enroll_list="e.txt")
    with pytest.raises(ConfigError, match="trials_format"):
        DataConfig(trials_format="nist")


def test_stage_one_error_names_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "corpus"
    for name, spks in (("bg", (0, 1, 2)), ("tg", (3, 4))):
        for s in spks:
            for n in range(4):
                p = root / name / f"s{s}" / f"{n}.wav"
                p.parent.mkdir(parents=True, exist_ok=True)
                sf.write(p, voice(s, n, seconds=0.4), 16000)
    (tmp_path / "trials.txt").write_text("s3 s3-3 target\ns4 s3-1 nontarget\n")
    (tmp_path / "exp.yaml").write_text(
        "task: verification\ndata:\n  root: corpus\n"
        "  background: {path: bg, pattern: '{spk}/{n}.wav'}\n"
        "  targets: {path: tg, pattern: '{spk}/{n}.wav'}\n"
        "  enroll_per_speaker: 2\n  trials: trials.txt\n"
    )
    rc = main(["run", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "exp"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc != 0
    assert "trials.txt:2: utterance 's3-1' is in the enrolment set of speaker 's3'" in err
    assert "(enroll_per_speaker: first 2 in sorted id order)" in err
    assert np.all([line.count("Traceback") == 0 for line in err.splitlines()])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_by_the_scanner_and_the_loader(tmp_path: Path) -> None:
    (tmp_path / "s1").mkdir()
    os.mkfifo(tmp_path / "s1" / "a.wav")
    with pytest.raises(DataError, match=r"a.wav: matches the pattern but is a FIFO"):
        scan_audio(tmp_path, "{spk}/{utt}.wav")
    with pytest.raises(AudioError, match="is a FIFO, device or socket"):
        load_audio(tmp_path / "s1" / "a.wav")  # would block in open() without the check
