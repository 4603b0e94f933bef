"""The recipes for corpora users have and the tests do not (VoxCeleb1, LibriSpeech, TIMIT,
your own Kaldi data dirs), run unchanged on generated miniatures of the exact layouts and
list formats (tests/minicorpora.py), with a tiny UBM.

The expected counts come from the generated protocol (an independent oracle); the EER
bound says the synthetic speakers were told apart, i.e. that the protocol reached the
scorer intact.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from minicorpora import make_librispeech, make_own_corpus, make_timit, make_voxceleb1
from test_classification_methods import TINY as SOUNDS_TINY
from test_classification_methods import make_sounds

from gmmspeech.cli.main import main

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
TINY = [
    "--no-progress",
    "--set",
    "ubm.n_components=4",
    "--set",
    "ubm.iterations_per_stage=[1, 2]",
    "--set",
    "ubm.final_max_iterations=2",
    "--set",
    "features.n_mfcc=13",
    "--set",
    "features.deltas=1",
    # CMVN would remove the synthetic voices' only difference, their spectral envelope
    "--set",
    "features.normalization=none",
    "--set",
    "scoring.top_c=2",
]

#: Recipes for corpora that are not in ../shared/data: covered here instead of in
#: test_recipes.py (its coverage check reads this).
MINIATURES = {
    "speaker_verification/voxceleb1": "test_voxceleb1_miniature",
    "speaker_verification/librispeech": "test_librispeech_miniature",
    "speaker_verification/timit": "test_timit_verification_miniature",
    "speaker_identification/timit": "test_timit_identification_miniature",
    "speaker_verification/own_corpus": "test_own_corpus_miniature",
    "audio_classification/your_own_sounds": "test_your_own_sounds_miniature",
}


#: Variants of those recipes (``config_<variant>.yaml``), covered here the same way.
MINIATURE_VARIANTS = {
    "speaker_verification/voxceleb1/config_ivector.yaml": "test_voxceleb1_ivector_miniature",
}


def _run(
    rel: str,
    out: Path,
    capsys: pytest.CaptureFixture[str],
    config: str = "config.yaml",
    extra: tuple[str, ...] = (),
) -> dict:
    args = ["run", str(RECIPES / rel / config), "--out", str(out), *TINY, *extra]
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "0 failed" in printed
    result: dict = json.loads((out / "results.json").read_text())
    return result


def _table(path: Path) -> dict[str, list[str]]:
    out = {}
    for line in path.read_text().splitlines():
        key, *rest = line.split()
        out[key] = rest
    return out


@pytest.mark.slow
def test_voxceleb1_miniature(tmp_path: Path, monkeypatch, capsys) -> None:
    root, trials = make_voxceleb1(tmp_path / "vox1")
    monkeypatch.setenv("VOXCELEB1", str(root))
    out = tmp_path / "exp"
    res = _run("speaker_verification/voxceleb1", out, capsys)
    models = {m for _, m, _ in trials}
    assert res["n_trials"] == len(trials) == 4 * 15
    assert res["n_target"] == sum(y for y, _, _ in trials) == 4 * 3
    assert res["n_models"] == len(models) == 4
    # single-utterance enrolment: each model is its own utterance, named after its path
    ids = {m[: -len(".wav")].replace("/", "-") for m in models}
    assert _table(out / "data/enroll/model2utt") == {i: [i] for i in ids}
    # every test file is a test utterance, the model utterances included (as in the list)
    assert len(_table(out / "data/test/wav.scp")) == 16
    assert len(_table(out / "data/background/wav.scp")) == 6 * 4
    assert res["eer"] < 0.2


@pytest.mark.slow
def test_voxceleb1_ivector_miniature(tmp_path: Path, monkeypatch, capsys) -> None:
    root, trials = make_voxceleb1(tmp_path / "vox1")
    monkeypatch.setenv("VOXCELEB1", str(root))
    out = tmp_path / "exp"
    # 6 dev speakers of 4 utterances: a calibration group's back end sees 3 speakers, so
    # LDA keeps 2 dimensions (PLDA needs more speakers than dimensions)
    small = ("--set", "ivector.rank=4", "--set", "ivector.n_iter=3", "--set", "backend.lda_dim=2")
    res = _run("speaker_verification/voxceleb1", out, capsys, "config_ivector.yaml", small)
    assert res["n_trials"] == len(trials) == 4 * 15
    assert res["n_target"] == sum(y for y, _, _ in trials) == 4 * 3
    assert res["n_models"] == 4
    assert (out / "backend/backend.h5").is_file() and "calibrated" in res
    assert res["eer"] < 0.35


@pytest.mark.slow
def test_librispeech_miniature(tmp_path: Path, monkeypatch, capsys) -> None:
    root, test = make_librispeech(tmp_path / "corpora")
    monkeypatch.setenv("LIBRISPEECH", str(root))
    out = tmp_path / "exp"
    res = _run("speaker_verification/librispeech", out, capsys)
    enrolled = {u for utts in test.values() for u in utts[:5]}  # first 5 in sorted id order
    tested = {u for utts in test.values() for u in utts[5:]}
    assert set(_table(out / "data/enroll/utt2spk")) == enrolled
    assert set(_table(out / "data/test/utt2spk")) == tested
    assert res["n_trials"] == len(test) * len(tested) == 4 * 12
    assert res["n_target"] == len(tested)
    assert not (out / "data/enroll/model2utt").exists()  # one model per speaker
    assert res["eer"] < 0.2


@pytest.mark.slow
def test_timit_verification_miniature(tmp_path: Path, monkeypatch, capsys) -> None:
    root, test = make_timit(tmp_path / "timit")
    monkeypatch.setenv("TIMIT", str(root))
    out = tmp_path / "exp"
    res = _run("speaker_verification/timit", out, capsys)
    n_si = {spk: sum(s.startswith("SI") for s in sents) for spk, sents in test.items()}
    assert res["n_trials"] == len(test) * sum(n_si.values()) == 4 * 12
    assert res["n_target"] == sum(n_si.values())
    enrol = _table(out / "data/enroll/utt2label")
    assert len(enrol) == 4 * 7 and {v[0] for v in enrol.values()} == {"SA", "SX"}
    assert res["eer"] < 0.2


@pytest.mark.slow
def test_timit_identification_miniature(tmp_path: Path, monkeypatch, capsys) -> None:
    root, test = make_timit(tmp_path / "timit")
    monkeypatch.setenv("TIMIT", str(root))
    res = _run("speaker_identification/timit", tmp_path / "exp", capsys)
    assert res["n_test"] == sum(len(s) for s in test.values()) == 40
    assert res["n_classes"] == len(test) == 4
    assert res["accuracy"] >= 0.75


@pytest.mark.slow
def test_own_corpus_miniature(tmp_path: Path, monkeypatch, capsys) -> None:
    root, trials = make_own_corpus(tmp_path / "mine")
    monkeypatch.setenv("MY_CORPUS", str(root))
    out = tmp_path / "exp"
    res = _run("speaker_verification/own_corpus", out, capsys)
    assert res["n_trials"] == len(trials) == 27
    assert res["n_target"] == sum(y for _, _, y in trials) == 9
    assert res["n_models"] == 3
    expected = {f"model_{s.upper()}": [f"{s}_{n}" for n in range(3)] for s in ("ann", "ian", "joe")}
    assert _table(out / "data/enroll/model2utt") == expected
    # the audio paths were resolved against the corpus root, not the data dir
    wav = _table(out / "data/test/wav.scp")
    assert wav["ann_3"] == [str((root / "audio/ann/ann_3.wav").resolve())]
    assert res["eer"] < 0.2


def test_every_miniature_names_a_test_here() -> None:
    for rel, name in MINIATURES.items():
        assert callable(globals().get(name)), f"{rel}: no test {name}"
        assert (RECIPES / rel / "config.yaml").is_file()
    for rel, name in MINIATURE_VARIANTS.items():
        assert callable(globals().get(name)), f"{rel}: no test {name}"
        assert (RECIPES / rel).is_file()


def test_your_own_sounds_miniature(tmp_path: Path, monkeypatch) -> None:
    """The your-own-sounds recipe on a generated folder (WAV/FLAC/OGG at several depths);
    the back ends' metrics are checked in test_classification_methods.py."""
    root = make_sounds(tmp_path / "my_sounds")
    # what real folders hold beside the sounds: skipped, not a failed extraction
    (root / "README.md").write_text("my recordings\n")
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        (cls / "notes.txt").write_text("take 3 was noisy\n")
        (cls / ".DS_Store").write_bytes(b"\0\1")
    monkeypatch.setenv("SOUNDS", str(root))
    out = tmp_path / "exp"
    cfg = RECIPES / "audio_classification/your_own_sounds/config.yaml"
    assert main(["run", str(cfg), "--out", str(out), "--no-progress", *SOUNDS_TINY]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["n_test"] == 15 and res["n_classes"] == 3
    assert res["accuracy"] >= 0.6  # chance is 1/3
