"""Adversarial inputs, one test per case, grouped by the classes of the trust audit.

Cases already covered elsewhere are not repeated here: truncated, empty, NaN and non-audio
files (test_audio.py), malformed data directories (test_datadir.py, test_trials.py),
billion-laughs YAML (test_configio.py), foreign and truncated HDF5 (test_modelio.py),
kill -9 with resume (test_faults.py, test_extract_cli.py), MP3 tags (test_mp3.py).
Each case states the outcome it guarantees: a clear one-line error naming the file (and
line) and exit 1, or correct handling.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import gmmspeech.corpus.idcodes as idcodes
from gmmspeech.benchmarks.em import draw_frames, random_gmm
from gmmspeech.cli.main import main
from gmmspeech.corpus.trials import TrialList, read_trials
from gmmspeech.decisions.scoring import score_trials
from gmmspeech.errors import AudioError
from gmmspeech.features.audio import load_audio
from gmmspeech.features.store import write_store
from gmmspeech.mixture.speakermodels import SpeakerModels

ROOT = Path(__file__).resolve().parents[1]


def _one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


@pytest.fixture
def scoring_files(tmp_path: Path) -> Path:
    """ubm.h5, models.h5 (m0..m2) and feats.h5 (u0..u3) in ``tmp_path``."""
    rng = np.random.default_rng(0)
    ubm = random_gmm(4, 3, rng)
    ubm.save(tmp_path / "ubm.h5")
    means = ubm.means[None] + 0.1 * rng.standard_normal((3, 4, 3))
    SpeakerModels(ubm, ["m0", "m1", "m2"], means=means).save(tmp_path / "models.h5")
    x = draw_frames(ubm, 4 * 30, rng)
    write_store(tmp_path / "feats.h5", {f"u{j}": x[30 * j : 30 * (j + 1)] for j in range(4)})
    return tmp_path


def _score(d: Path, trials: str) -> int:
    return main(
        [
            "score",
            *(str(d / n) for n in ("ubm.h5", "models.h5", "feats.h5", trials, "scores.txt")),
            "--no-progress",
            "--method",
            "exact",
        ]
    )


# ------------------------------------------------------------------------ broken audio
def test_id3_tag_declaring_more_bytes_than_the_file_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "tag.mp3"
    p.write_bytes(b"ID3\x03\x00\x00\x7f\x7f\x7f\x7f" + b"\x00" * 500)  # a 256 MB tag
    with pytest.raises(
        AudioError,
        match=r"tag\.mp3: truncated or corrupt MP3 file: no complete audio frame after its 268435465-byte ID3v2 tag",
    ):
        load_audio(p)


def test_mpeg_sync_bytes_without_frames_are_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "sync.mp3"
    p.write_bytes(b"\xff\xfb\xff\xff" * 4096)  # headers with the reserved bit rate 15
    with pytest.raises(AudioError, match=r"sync\.mp3: "):
        load_audio(p)


def test_garbage_after_the_last_frame_does_not_count_as_truncation(tmp_path: Path) -> None:
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile does not write MP3")
    p = tmp_path / "tail.mp3"
    t = np.arange(16000) / 16000
    sf.write(p, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, format="MP3")
    n = load_audio(p)[0].shape[0]
    with open(p, "ab") as f:
        f.write(b"TAG" + b"\x00" * 125)  # an ID3v1 tag at the end
    assert load_audio(p)[0].shape[0] == n


# ------------------------------------------------------------- malformed tables and dirs
def test_trials_not_utf8_names_the_line(scoring_files: Path, capsys) -> None:
    (scoring_files / "trials").write_bytes(b"m0 u0\nm1 u\xff1\n")
    assert _score(scoring_files, "trials") == 1
    _one_line_error(capsys, "trials:2: not UTF-8 text")
    assert not (scoring_files / "scores.txt").exists()


def test_trials_with_a_bom_are_named_as_such(scoring_files: Path, capsys) -> None:
    (scoring_files / "trials").write_bytes(b"\xef\xbb\xbfm0 u0\nm1 u1\n")
    assert _score(scoring_files, "trials") == 1
    _one_line_error(capsys, "trials:1: the file starts with a UTF-8 byte order mark")


def test_trials_of_comments_only_are_empty(scoring_files: Path, capsys) -> None:
    (scoring_files / "trials").write_text("# nothing\n\n   \n# here\n")
    assert _score(scoring_files, "trials") == 1
    _one_line_error(capsys, "no trials (empty file)")


def test_trial_with_an_unknown_model_far_down_names_its_line(scoring_files: Path, capsys) -> None:
    lines = [f"m{i % 3} u{i % 4}" for i in range(12)]
    lines = sorted(set(lines)) + ["# c", "m7 u1"]
    (scoring_files / "trials").write_text("\n".join(lines) + "\n")
    assert _score(scoring_files, "trials") == 1
    _one_line_error(capsys, f"trials:{len(lines)}: model 'm7' is not among the 3")


def test_a_directory_as_trials_file(scoring_files: Path, capsys) -> None:
    (scoring_files / "tdir").mkdir()
    assert _score(scoring_files, "tdir") == 1
    _one_line_error(capsys, "tdir: no such trials file")


# ------------------------------------------------------------------------ hostile YAML
def test_deeply_nested_yaml_is_a_config_error_not_a_recursion_crash(tmp_path: Path, capsys) -> None:
    p = tmp_path / "deep.yaml"
    p.write_text("name: " + "[" * 20000 + "]" * 20000 + "\n")
    assert main(["run", str(p), "--out", str(tmp_path / "out")]) == 1
    _one_line_error(capsys, "deep.yaml: not valid YAML (lists or mappings nested too deeply)")
    assert not (tmp_path / "out").exists()


def test_deeply_nested_set_value_is_taken_as_text(tmp_path: Path, capsys) -> None:
    # not YAML that can be read: the text itself, which the name check then judges
    value = "[" * 20000
    rc = main(["run", str(tmp_path / "none.yaml"), "--set", f"name={value}"])
    assert rc == 1
    _one_line_error(capsys, "none.yaml")


# ------------------------------------------------------------------------ hostile HDF5
def test_a_yaml_file_named_like_a_model(scoring_files: Path, capsys) -> None:
    (scoring_files / "ubm.h5").write_text("n_components: 4\n")
    (scoring_files / "trials").write_text("m0 u0\n")
    assert _score(scoring_files, "trials") == 1
    _one_line_error(capsys, "ubm.h5: not a readable HDF5 file")


# -------------------------------------------------------------- full disk (simulated)
def test_full_disk_while_writing_scores_leaves_no_partial_file(scoring_files: Path) -> None:
    # RLIMIT_FSIZE makes writes past 2 kB fail (EFBIG; Python ignores SIGXFSZ), the way a
    # full disk makes them fail with ENOSPC
    lines = [f"m{i} u{j}" for i in range(3) for j in range(4)] * 1
    (scoring_files / "trials").write_text("\n".join(lines) + "\n")
    (scoring_files / "big").write_text("".join(f"m{i % 3} u{i % 4}\n" for i in range(12)))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))

    cmd = [sys.executable, "-m", "gmmspeech.cli.main", "score"]
    cmd += [str(scoring_files / n) for n in ("ubm.h5", "models.h5", "feats.h5", "trials")]
    cmd += [str(scoring_files / "scores.txt"), "--no-progress", "--method", "exact"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, preexec_fn=limit, capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert "File too large" in proc.stderr or "disk" in proc.stderr.lower()
    assert sorted(p.name for p in scoring_files.iterdir()) == [
        "big",
        "feats.h5",
        "models.h5",
        "trials",
        "ubm.h5",
    ]


# --------------------------------------------------------------- large loads, small scale
def _trials_file(path: Path, n_models: int, n_tests: int) -> int:
    with open(path, "w") as f:
        for i in range(n_models):
            f.writelines(f"spk{i:04d} utt{j:06d} nontarget\n" for j in range(n_tests))
    return n_models * n_tests


def test_reading_a_trial_list_costs_bytes_per_trial_not_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # groups of trials are worked on in blocks of GROUP_ROWS (256k): a fixed cost, made
    # small here so that what is measured is what grows with the list
    monkeypatch.setattr(idcodes, "GROUP_ROWS", 4096)
    n = _trials_file(tmp_path / "trials", 50, 4000)  # 200k trials, 6.6 MB of text
    tracemalloc.start()
    try:
        t = read_trials(tmp_path / "trials")
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(t) == n
    # int32 model and test codes and a bool label: 9 bytes a trial, plus the distinct ids
    assert held < 12 * n + 1_000_000
    assert peak < 24 * n + 2_000_000


def test_scoring_memory_does_not_grow_with_the_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idcodes, "GROUP_ROWS", 4096)
    rng = np.random.default_rng(1)
    ubm = random_gmm(4, 3, rng)
    ids = [f"m{i}" for i in range(200)]
    models = SpeakerModels(ubm, ids, means=ubm.means[None] + 0.1 * rng.standard_normal((200, 4, 3)))
    x = draw_frames(ubm, 500 * 5, rng)
    feats = {f"u{j}": x[5 * j : 5 * (j + 1)] for j in range(500)}

    def peak(n_tests: int) -> tuple[int, int]:
        tl = TrialList.from_tuples([(m, f"u{j}") for j in range(n_tests) for m in ids])
        tracemalloc.start()
        try:
            score_trials(ubm, models, feats, tl, method="linear")
            return len(tl), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    n1, p1 = peak(50)
    n2, p2 = peak(500)
    # beyond the float64 score of each trial, a few bytes per trial at most
    assert (p2 - p1) / (n2 - n1) < 8 + 16
