"""Speaker-model files: round trip, only adapted parameters stored, UBM identity checked."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from gmmspeech import DataError, DiagGMM, ModelMismatchError, enroll, map_adapt
from gmmspeech.errors import ModelFormatError
from gmmspeech.mixture.speakermodels import SpeakerModels


def _ubm(seed: int = 0) -> DiagGMM:
    rng = np.random.default_rng(seed)
    return DiagGMM(rng.dirichlet(np.ones(8)), rng.normal(0, 2, (8, 3)), rng.uniform(0.5, 2, (8, 3)))


def _data(ubm: DiagGMM):
    feats = {f"u{i}": ubm.sample(80, i)[0] + (i // 2) * 0.3 for i in range(6)}
    spk2utt = {"alice": ["u0", "u1"], "bob": ["u2", "u3"], "carol": ["u4", "u5"]}
    return feats, spk2utt


@pytest.mark.parametrize("adapt", ["m", "mwv"])
def test_enroll_uses_all_utterances_and_round_trips(tmp_path: Path, adapt: str) -> None:
    ubm = _ubm()
    feats, spk2utt = _data(ubm)
    models = enroll(ubm, feats, spk2utt, adapt=adapt, relevance_factor=8.0)
    assert models.ids == ["alice", "bob", "carol"]
    for spk, utts in spk2utt.items():
        ref = map_adapt(
            ubm, np.concatenate([feats[u] for u in utts]), adapt=adapt, relevance_factor=8.0
        )
        got = models[spk]
        np.testing.assert_allclose(got.means, ref.means, atol=1e-5)
        np.testing.assert_allclose(got.weights, ref.weights, atol=1e-7)
        np.testing.assert_allclose(got.variances, ref.variances, rtol=1e-5)
    path = tmp_path / "models.h5"
    models.save(path)
    with h5py.File(path, "r") as f:
        stored = {k for k in f if k != "ids"}
        assert stored == ({"means"} if adapt == "m" else {"means", "weights", "variances"})
    back = SpeakerModels.load(path, ubm)
    assert back.ids == models.ids and back.adapt == adapt
    np.testing.assert_array_equal(back["bob"].means, models["bob"].means)


def test_load_with_another_ubm_is_refused(tmp_path: Path) -> None:
    ubm = _ubm()
    feats, spk2utt = _data(ubm)
    enroll(ubm, feats, spk2utt).save(tmp_path / "m.h5")
    other = ubm.copy()
    other.means[0, 0] += 1e-9
    other = DiagGMM(other.weights, other.means, other.variances)
    with pytest.raises(ModelMismatchError, match="another UBM"):
        SpeakerModels.load(tmp_path / "m.h5", other)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ModelFormatError):
        SpeakerModels.load(tmp_path / "junk.h5", ubm)


def test_enroll_errors_name_the_utterance() -> None:
    ubm = _ubm()
    feats, spk2utt = _data(ubm)
    spk2utt["dave"] = ["missing"]
    with pytest.raises(DataError, match="'missing'.*'dave'"):
        enroll(ubm, feats, spk2utt)
    feats2, spk2utt2 = _data(ubm)
    feats2["u3"] = np.zeros((10, 4))
    with pytest.raises(ModelMismatchError, match="u3"):
        enroll(ubm, feats2, spk2utt2)
    with pytest.raises(DataError, match="twice"):
        SpeakerModels(ubm, ["a", "a"], means=np.zeros((2, 8, 3)))
    with pytest.raises(ModelMismatchError):
        SpeakerModels(ubm, ["a"], means=np.zeros((1, 8, 4)))
