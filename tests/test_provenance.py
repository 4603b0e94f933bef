"""Never silently wrong, never stale, bounded HDF5: each silent failure of the trust review
reproduced, and now refused with a message naming what differs."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers_audio import make_datadir, utterance, write_wav
from test_pipeline import CONFIG, make_corpus, voice

from gmmspeech import DiagGMM, SpeakerModels
from gmmspeech.cli.main import main
from gmmspeech.config.sections import FeatureConfig, to_dict
from gmmspeech.corpus.datadir import DataDir
from gmmspeech.corpus.scorefiles import read_scores, read_scores_header, write_scores
from gmmspeech.decisions.scoring import score_matrix, score_trials
from gmmspeech.errors import AudioError, DataError, ModelFormatError, ModelMismatchError
from gmmspeech.features.audio import load_audio
from gmmspeech.features.extraction import extract_to_store
from gmmspeech.features.frontend import extract_features
from gmmspeech.features.store import FeatureStore, write_store
from gmmspeech.mixture.speakermodels import enroll
from gmmspeech.pipeline import STAGES
from gmmspeech.pipeline.report import write_json

CMVN = FeatureConfig(n_mfcc=4, deltas=0)
NONE = FeatureConfig(n_mfcc=4, deltas=0, normalization="none")


def _ubm(fc: FeatureConfig | None = CMVN, d: int = 4) -> DiagGMM:
    rng = np.random.default_rng(0)
    return DiagGMM(
        np.full(8, 0.125),
        rng.normal(0, 1, (8, d)),
        np.ones((8, d)),
        feature_config=None if fc is None else to_dict(fc),
    )


def _store(path: Path, fc: FeatureConfig) -> Path:
    rng = np.random.default_rng(1)
    write_store(path, {f"u{i}": rng.normal(size=(50, 4)) for i in range(3)}, fc)
    return path


# ----------------------------------------------------------------- feature config provenance
def test_store_of_another_feature_config_is_refused_by_enroll_and_score(tmp_path: Path) -> None:
    ubm = _ubm(CMVN)
    with FeatureStore(_store(tmp_path / "none.h5", NONE)) as feats:
        with pytest.raises(ModelMismatchError, match="normalization: 'none' here vs 'cmvn'"):
            enroll(ubm, feats, {"a": ["u0"]})
        models = SpeakerModels(ubm, ["a"], means=ubm.means[None])
        with pytest.raises(ModelMismatchError, match="normalization: 'none' here vs 'cmvn'"):
            score_trials(ubm, models, feats, [("a", "u1")])
        with pytest.raises(ModelMismatchError, match="normalization"):  # cohort scoring
            score_matrix(ubm, models, feats, ["u1"])
    # the same store with the UBM's config is accepted (the check is not a blanket refusal)
    with FeatureStore(_store(tmp_path / "cmvn.h5", CMVN)) as feats:
        assert len(enroll(ubm, feats, {"a": ["u0"]})) == 1


def test_enroll_and_score_cli_refuse_the_mismatch(tmp_path: Path, capsys) -> None:
    ubm = _ubm(CMVN)
    ubm.save(tmp_path / "ubm.h5")
    _store(tmp_path / "cmvn.h5", CMVN)
    _store(tmp_path / "none.h5", NONE)
    d = tmp_path / "enroll"
    d.mkdir()
    (d / "utt2spk").write_text("u0 a\n")
    (tmp_path / "trials").write_text("a u1 target\na u2 nontarget\n")
    models = str(tmp_path / "models.h5")
    assert (
        main(["enroll", str(tmp_path / "ubm.h5"), str(tmp_path / "none.h5"), str(d), models]) == 1
    )
    assert "normalization" in capsys.readouterr().err
    assert (
        main(["enroll", str(tmp_path / "ubm.h5"), str(tmp_path / "cmvn.h5"), str(d), models]) == 0
    )
    scores = tmp_path / "scores.txt"
    args = ["score", str(tmp_path / "ubm.h5"), models]
    assert main([*args, str(tmp_path / "none.h5"), str(tmp_path / "trials"), str(scores)]) == 1
    assert "normalization" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "cmvn.h5"), str(tmp_path / "trials"), str(scores)]) == 0
    # the scores file records where it came from, and still reads as a scores file
    header = read_scores_header(scores)
    assert header["features"] == FeatureStore(tmp_path / "cmvn.h5").config_hash
    assert header["method"] and len(header["ubm"]) == 16 and len(header["models"]) == 16
    assert set(read_scores(scores)) == {("a", "u1"), ("a", "u2")}


def test_models_file_of_a_ubm_with_another_feature_config_is_refused(tmp_path: Path) -> None:
    ubm = _ubm(CMVN)
    SpeakerModels(ubm, ["a"], means=ubm.means[None] + 0.1).save(tmp_path / "m.h5")
    other = _ubm(NONE)  # same parameters, another feature config
    with pytest.raises(ModelMismatchError, match="normalization"):
        SpeakerModels.load(tmp_path / "m.h5", other)
    assert len(SpeakerModels.load(tmp_path / "m.h5", ubm)) == 1


def test_train_ubm_lists_what_differs_between_stores(tmp_path: Path, capsys) -> None:
    _store(tmp_path / "a.h5", CMVN)
    _store(tmp_path / "b.h5", NONE)
    rc = main(
        ["train-ubm", str(tmp_path / "a.h5"), str(tmp_path / "b.h5"), str(tmp_path / "u.h5")]
        + ["--set", "ubm.n_components=2", "--no-progress"]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "normalization: 'none' here vs 'cmvn'" in err
    assert not (tmp_path / "u.h5").exists()


# ----------------------------------------------------------------- numerical usability
def test_variance_whose_precision_overflows_float32_is_rejected(tmp_path: Path) -> None:
    var = np.ones((2, 3))
    var[1, 2] = 1e-300
    # the oracle: the precision is finite in float64 and infinite in float32
    with np.errstate(over="ignore"):
        assert np.isfinite(1.0 / 1e-300) and np.isinf(np.float32(1.0 / 1e-300))
    with pytest.raises(DataError, match="component 1 .*1e-300.*dimension 2"):
        DiagGMM([0.5, 0.5], np.zeros((2, 3)), var)
    # a file holding it (written by another tool) is refused at load
    with h5py.File(tmp_path / "ubm.h5", "w") as f:
        f.attrs.update({"format": "gmmspeech.DiagGMM", "format_version": 1})
        f["weights"], f["means"], f["variances"] = [0.5, 0.5], np.zeros((2, 3)), var
    with pytest.raises(ModelFormatError, match="overflow float32"):
        DiagGMM.load(tmp_path / "ubm.h5")
    # small but usable variances are kept
    ok = DiagGMM([0.5, 0.5], np.zeros((2, 3)), np.full((2, 3), 1e-30))
    assert np.isfinite(ok.log_likelihood(np.zeros((1, 3)))).all()


def test_models_file_with_one_nan_is_refused_naming_the_model(tmp_path: Path) -> None:
    ubm = _ubm(CMVN)
    SpeakerModels(ubm, ["a", "b", "c"], means=np.repeat(ubm.means[None], 3, 0)).save(
        tmp_path / "m.h5"
    )
    with h5py.File(tmp_path / "m.h5", "r+") as f:
        f["means"][1, 2, 0] = np.nan
    with pytest.raises(ModelFormatError, match="model 'b'"):
        SpeakerModels.load(tmp_path / "m.h5", ubm)


def test_no_nan_score_is_written(tmp_path: Path) -> None:
    out = tmp_path / "scores.txt"
    with pytest.raises(DataError, match="model 'm2' against test utterance 't2' is nan"):
        write_scores(out, ["m1", "m2"], ["t1", "t2"], [0.5, np.nan])
    assert not out.exists()
    write_scores(out, ["m1"], ["t1"], [0.5], {"ubm": "abc", "method": "topc"})
    head = "# gmmspeech scores ubm=abc method=topc n_scores=1"  # n_scores: added by the writer
    assert out.read_text().splitlines()[0] == head
    assert read_scores(out) == {("m1", "t1"): 0.5}


def test_no_nan_in_results_json(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="metrics.min_dcf is nan"):
        write_json(tmp_path / "r.json", {"eer": 0.1, "metrics": {"min_dcf": float("nan")}})
    assert not (tmp_path / "r.json").exists()
    write_json(tmp_path / "r.json", {"eer": 0.1, "n": [1, 2.5]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"eer": 0.1, "n": [1, 2.5]}


def test_constant_audio_is_an_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="constant"):
        extract_features(np.full(16000, 0.25, np.float32), 16000)
    data = make_datadir(tmp_path, n_utts=3)
    dc = write_wav(tmp_path / "dc.wav", np.full(16000, 0.25, np.float32))
    (data / "wav.scp").write_text((data / "wav.scp").read_text() + f"zz-dc {dc}\n")
    (data / "utt2spk").write_text((data / "utt2spk").read_text() + "zz-dc zz\n")
    report = extract_to_store(data, tmp_path / "f.h5", max_failed_fraction=0.5)
    assert [(u, "dc.wav" in msg and "constant" in msg) for u, msg in report.failures] == [
        ("zz-dc", True)
    ]


# ----------------------------------------------------------------- never stale
def test_extract_reextracts_an_utterance_whose_audio_changed(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=4)
    out = tmp_path / "f.h5"
    assert extract_to_store(data, out).n_extracted == 4
    dd = DataDir.read(data)
    utt = dd.utt_ids[2]
    path = Path(dd.audio_path(utt))
    st = path.stat()
    write_wav(path, utterance(seed=99))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later mtime, for sure
    again = extract_to_store(data, out)
    assert (again.n_existing, again.n_extracted) == (3, 1)
    y, sr = load_audio(path)
    with FeatureStore(out) as s:
        np.testing.assert_allclose(s[utt], extract_features(y, sr), rtol=1e-5, atol=1e-5)
        assert s.info(utt)["source_fp"] == f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
    assert extract_to_store(data, out).n_extracted == 0  # now up to date


def test_format_3_store_is_still_read(tmp_path: Path) -> None:
    path = _store(tmp_path / "f.h5", CMVN)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 3
        del f["index/source_fp"]
    with FeatureStore(path) as s:
        assert s.info("u0")["source_fp"] == "" and s["u0"].shape == (50, 4)


def test_store_index_with_wrong_n_frames_is_refused(tmp_path: Path) -> None:
    path = _store(tmp_path / "f.h5", CMVN)
    with h5py.File(path, "r+") as f:
        f["index/n_frames"][1] = 7
    with FeatureStore(path) as s:
        assert s["u0"].shape == (50, 4)
        with pytest.raises(DataError, match="u1.*shape \\(50, 4\\).*index says \\(7, 4\\)"):
            s["u1"]


def test_run_redoes_the_stages_whose_inputs_changed(tmp_path: Path, capsys) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    (tmp_path / "exp.yaml").write_text(CONFIG.format(extra=""), encoding="utf-8")
    out = tmp_path / "exp"
    args = ["run", str(tmp_path / "exp.yaml"), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    scores = (out / "scores/scores.txt").read_text()
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("up to date, skipped") == len(STAGES)
    # one target file replaced in place (same name): every stage is redone, and says why
    target = corpus / "tg" / "t0" / "t0-3.wav"
    st = target.stat()
    write_wav(target, voice(9, 9))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "stage 1 prepare: done; inputs changed: data.targets audio changed" in printed
    assert "stage 2 extract: done; prepare was redone" in printed
    assert "up to date" not in printed
    assert (out / "scores/scores.txt").read_text() != scores
    # a file added to the corpus: the trial list grows
    write_wav(corpus / "tg" / "t0" / "t0-4.wav", voice(4, 7))
    assert main(args) == 0
    assert "data.targets audio changed (16 files" in capsys.readouterr().out
    n_trials = json.loads((out / "results.json").read_text())["n_trials"]
    assert n_trials == 4 * 9  # 4 models x (8 + 1) test utterances
    # an edited trial list given in the config reruns prepare too
    trials = tmp_path / "trials"
    lines = (out / "data/test/trials").read_text().splitlines()
    trials.write_text("\n".join(lines[:4]) + "\n")
    (tmp_path / "exp.yaml").write_text(
        CONFIG.format(extra="").replace("data:\n", f"data:\n  trials: {trials}\n", 1)
    )
    assert main(args) == 0
    capsys.readouterr()
    trials.write_text("\n".join(lines[:5]) + "\n")
    assert main(args) == 0
    assert "inputs changed: data.trials changed" in capsys.readouterr().out


# ----------------------------------------------------------------- bounded HDF5
def _forged(path: Path, fmt: str, datasets: dict[str, tuple[tuple[int, ...], str]]) -> Path:
    """An HDF5 file declaring datasets of these shapes, with no data stored."""
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": fmt, "format_version": 1})
        for name, (shape, dtype) in datasets.items():
            f.create_dataset(name, shape=shape, dtype=dtype)
    return path


def test_small_file_declaring_a_huge_dataset_allocates_nothing(tmp_path: Path) -> None:
    k, d = 65536, 8192  # 4 GiB of float64 means, declared in a file of a few KB
    path = _forged(
        tmp_path / "ubm.h5",
        "gmmspeech.DiagGMM",
        {"weights": ((k,), "f8"), "means": ((k, d), "f8"), "variances": ((k, d), "f8")},
    )
    assert path.stat().st_size < 25_000
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match="declares .* bytes .* stores"):
            DiagGMM.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_models_shapes_checked_against_the_ubm_before_reading(tmp_path: Path) -> None:
    ubm = _ubm(CMVN)
    SpeakerModels(ubm, ["a"], means=ubm.means[None]).save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r+") as f:
        del f["means"]
        f.create_dataset("means", shape=(1_000_000, 8, 4), dtype="f8")
    with pytest.raises(
        ModelFormatError, match="means.*shape \\(1000000, 8, 4\\), expected \\(1, 8, 4\\)"
    ):
        SpeakerModels.load(tmp_path / "m.h5", ubm)
    # inconsistent UBM shapes are named too
    bad = _forged(
        tmp_path / "u.h5",
        "gmmspeech.DiagGMM",
        {"weights": ((3,), "f8"), "means": ((4, 2), "f8"), "variances": ((4, 2), "f8")},
    )
    with pytest.raises(ModelFormatError, match="'weights' has shape \\(3,\\), expected \\(4\\)"):
        DiagGMM.load(bad)
