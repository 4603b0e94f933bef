"""Long files streamed to the store: spilled features equal the whole-signal ones, and the
store holds the same bytes as one written from the in-memory array.

The oracle is the whole-signal path (``load_audio`` + ``extract_features_with_info``),
itself checked against librosa in test_features.py and test_melspec.py.
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers_audio import write_wav
from test_blockfeatures import ATOL, _speechy

from gmmspeech import ProcessEngine
from gmmspeech.config.sections import FeatureConfig
from gmmspeech.features import extraction_worker
from gmmspeech.features.audio import iter_audio_blocks, load_audio
from gmmspeech.features.blockfeatures import extract_features_blockwise, spill_features_blockwise
from gmmspeech.features.extraction import extract_to_store
from gmmspeech.features.frontend import extract_features_with_info
from gmmspeech.features.spill import SpilledFrames
from gmmspeech.features.store import FeatureStore, StoreWriter


@pytest.mark.parametrize("norm", ["cmvn", "cmn", "none", "warp", "sliding_cmvn"])
def test_spilled_features_equal_whole_signal(tmp_path: Path, norm: str) -> None:
    cfg = FeatureConfig(normalization=norm, norm_window=101)
    path = write_wav(tmp_path / "long.wav", _speechy(16000), 16000, subtype="FLOAT")
    want, n_want = extract_features_with_info(*load_audio(path), cfg)
    spill = str(tmp_path / "x.f32")
    got, n_got = spill_features_blockwise(iter_audio_blocks(path, 16000, 5000), cfg, spill)
    assert n_got == n_want
    if norm in ("warp", "sliding_cmvn"):
        assert isinstance(got, np.ndarray) and not Path(spill).exists()
        # warping is by rank: float32 rounding may swap near-equal values, so the oracle
        # is the in-memory blockwise path (checked against the whole signal elsewhere)
        mem, _ = extract_features_blockwise(iter_audio_blocks(path, 16000, 5000), cfg)
        np.testing.assert_array_equal(got, mem)
        if norm == "warp":
            return
        arr = got
    else:
        assert isinstance(got, SpilledFrames) and got.shape == want.shape
        assert Path(spill).stat().st_size == want.size * 4  # the rows, nothing else
        arr = got.to_array()
        got.remove()
        assert not Path(spill).exists()
    np.testing.assert_allclose(arr, want, rtol=0, atol=ATOL)
    if norm == "cmvn":  # normalised: zero mean and unit variance per dimension
        np.testing.assert_allclose(arr.mean(axis=0, dtype=np.float64), 0.0, atol=1e-5)
        np.testing.assert_allclose(arr.std(axis=0, dtype=np.float64), 1.0, atol=1e-4)


def test_spilled_frames_write_the_same_store_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40000, 7)).astype(np.float32)
    shift = rng.standard_normal(7).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, 7).astype(np.float32)
    raw = tmp_path / "x.f32"
    x.tofile(raw)
    spilled = SpilledFrames(str(raw), x.shape, shift, scale)
    want = (x - shift) * scale  # the float32 arithmetic of an in-memory CMVN
    for name, frames in (("a.h5", want), ("b.h5", spilled)):
        with h5py.File(tmp_path / name, "w") as f:
            w = StoreWriter(f, {"n_features": 7}, 7)
            w.add("u", frames, 40000, 1.0, "src")
            w.finish()
    assert filecmp.cmp(tmp_path / "a.h5", tmp_path / "b.h5", shallow=False)


def test_extract_streams_long_files_into_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = FeatureConfig()
    wav = write_wav(tmp_path / "d" / "long.wav", _speechy(22050), 22050, subtype="FLOAT")
    short = write_wav(tmp_path / "d" / "short.wav", _speechy(16000, seed=4)[:30000], 16000)
    (tmp_path / "d" / "wav.scp").write_text(f"a {wav}\nb {short}\n")
    (tmp_path / "d" / "utt2spk").write_text("a s\nb s\n")
    spilled: list[str] = []
    real = extraction_worker.spill_features_blockwise

    def spy(blocks: object, config: FeatureConfig, path: str) -> object:
        spilled.append(path)
        return real(blocks, config, path)  # type: ignore[arg-type]

    monkeypatch.setattr(extraction_worker, "BLOCKWISE_SECONDS", 5.0)
    monkeypatch.setattr(extraction_worker, "spill_features_blockwise", spy)
    out = tmp_path / "f.h5"
    report = extract_to_store(tmp_path / "d", out, cfg)
    assert report.n_extracted == 2 and len(spilled) == 1
    assert Path(spilled[0]).parent == tmp_path / "f.h5.parts"
    assert not (tmp_path / "f.h5.parts").exists()  # spill removed, work folder gone
    store = FeatureStore(out)
    want, _ = extract_features_with_info(*load_audio(wav), cfg)
    np.testing.assert_allclose(store["a"], want, rtol=0, atol=ATOL)
    want_b = extract_features_with_info(*load_audio(short), cfg)[0]
    np.testing.assert_allclose(store["b"], want_b, rtol=0, atol=ATOL)  # BLAS threads differ


def test_worker_processes_spill_long_files_too(tmp_path: Path) -> None:
    """A file over the blockwise threshold (2 min), extracted by worker processes, gives
    the store the in-process run writes, and leaves no spill file behind."""
    rng = np.random.default_rng(7)
    x = np.concatenate([_speechy(8000, seed=s) for s in range(15)])  # ~135 s at 8 kHz
    x += 1e-3 * rng.standard_normal(x.size).astype(np.float32)
    wav = write_wav(tmp_path / "d" / "long.wav", x, 8000)
    (tmp_path / "d" / "wav.scp").write_text(f"a {wav}\n")
    (tmp_path / "d" / "utt2spk").write_text("a s\n")
    local = extract_to_store(tmp_path / "d", tmp_path / "local.h5")
    with ProcessEngine(n_workers=2) as engine:
        extract_to_store(tmp_path / "d", tmp_path / "jobs.h5", engine=engine)
    assert local.n_extracted == 1
    assert filecmp.cmp(tmp_path / "local.h5", tmp_path / "jobs.h5", shallow=False)
    assert not list(tmp_path.glob("*.parts"))
    want, _ = extract_features_with_info(*load_audio(wav), FeatureConfig())
    np.testing.assert_allclose(FeatureStore(tmp_path / "jobs.h5")["a"], want, rtol=0, atol=ATOL)
