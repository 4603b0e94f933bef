"""The blockwise front end for long files gives the whole-signal features.

The oracle is the whole-signal path (``load_audio`` + ``extract_features_with_info``), itself
checked against librosa in test_features.py and test_audio.py. The FFTs of a frame may be
batched differently, so the features agree to float32 rounding, not bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_audio import bursts, sine, write_wav

from gmmspeech.config.sections import FeatureConfig
from gmmspeech.errors import AudioError
from gmmspeech.features import extraction_worker
from gmmspeech.features.audio import iter_audio_blocks, load_audio
from gmmspeech.features.blockfeatures import extract_features_blockwise
from gmmspeech.features.frontend import extract_features_with_info

ATOL = 5e-5  # features are about unit scale; float32 rounding of FFT sums is ~1e-6


def _speechy(sr: int, seed: int = 3) -> np.ndarray:
    """Quiet stretches (with one near-silent one early) and loud noisy tones, ~9 s."""
    x, _ = bursts(
        [("silence", 0.7), ("speech", 1.3), ("silence", 0.9), ("speech", 2.1)]
        + [("silence", 0.4), ("speech", 1.7), ("silence", 1.1), ("speech", 0.8)],
        seed=seed,
        sr=sr,
    )
    x[: sr // 2] *= 1e-4  # far below the loudest frame: top_db clips it
    tone = sine(310.0, x.size / sr, 0.1, sr)[: x.size]
    return (x + tone * (np.abs(x) > 0.01)).astype(np.float32)


CONFIGS = {
    "defaults": {},
    "log_energy": {"energy": "log_energy"},
    "not_centred": {"center": False},
    "top_db_all_frames": {"vad": "none", "normalization": "none", "top_db": 30.0},
    "no_pre_emphasis": {"pre_emphasis": 0.0, "deltas": 1},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("file_rate", [16000, 22050])
def test_blockwise_equals_whole_signal(tmp_path: Path, name: str, file_rate: int) -> None:
    cfg = FeatureConfig(**CONFIGS[name])
    path = write_wav(tmp_path / "long.wav", _speechy(file_rate), file_rate, subtype="FLOAT")
    signal, rate = load_audio(path)
    want, n_want = extract_features_with_info(signal, rate, cfg)
    # blocks far smaller than one frame, a few frames, and several seconds
    for block in (97, 4001, 65536):
        got, n_got = extract_features_blockwise(
            iter_audio_blocks(path, cfg.sample_rate, block), cfg
        )
        assert n_got == n_want
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=f"block {block}")


def test_top_db_uses_the_whole_file_maximum() -> None:
    # the loud part comes last: clipping each block at its own maximum would differ
    cfg = FeatureConfig(vad="none", normalization="none", top_db=20.0)
    quiet = sine(440.0, 2.0, 1e-3)
    loud = sine(440.0, 2.0, 0.5)
    y = np.concatenate([quiet + sine(2000.0, 2.0, 1e-4), loud])
    want, _ = extract_features_with_info(y, 16000, cfg)
    blocks = [y[i : i + 8000] for i in range(0, y.size, 8000)]
    got, _ = extract_features_blockwise(blocks, cfg)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_audio_blocks_are_the_loaded_signal(tmp_path: Path, rate: int) -> None:
    rng = np.random.default_rng(5)
    x = (0.2 * rng.standard_normal((3 * rate + 321, 2))).astype(np.float32)
    path = write_wav(tmp_path / "stereo.wav", x, rate, subtype="FLOAT")
    want, _ = load_audio(path, 16000)
    got = np.concatenate(list(iter_audio_blocks(path, 16000, 1000)))
    np.testing.assert_array_equal(got, want)


def test_blockwise_errors_name_the_file(tmp_path: Path) -> None:
    x = _speechy(16000)
    x[50000] = np.nan
    path = write_wav(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(
        AudioError, match=r"nan\.wav: NaN or infinite samples \(first at sample 50000"
    ):
        extract_features_blockwise(iter_audio_blocks(path, 16000, 4096), FeatureConfig())
    dc = write_wav(tmp_path / "dc.wav", np.full(40000, 0.25, np.float32), 16000, "FLOAT")
    with pytest.raises(AudioError, match="constant"):
        extract_features_blockwise(iter_audio_blocks(dc, 16000, 4096), FeatureConfig())


def test_worker_takes_the_blockwise_path_for_long_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = FeatureConfig()
    path = write_wav(tmp_path / "long.wav", _speechy(22050), 22050, subtype="FLOAT")
    want, n_want = extract_features_with_info(*load_audio(path), cfg)
    calls = []

    def spy(blocks: object, config: FeatureConfig) -> tuple[np.ndarray, int]:
        calls.append(blocks)
        return extract_features_blockwise(blocks, config)  # type: ignore[arg-type]

    monkeypatch.setattr(extraction_worker, "BLOCKWISE_SECONDS", 5.0)
    monkeypatch.setattr(extraction_worker, "BLOCK_FRAMES", 3000)
    monkeypatch.setattr(extraction_worker, "extract_features_blockwise", spy)
    res = extraction_worker.extract_one("u", str(path), cfg)
    assert res.error == ""
    assert len(calls) == 1
    assert res.n_frames_total == n_want and res.orig_rate == 22050
    assert res.features is not None
    np.testing.assert_allclose(res.features, want, rtol=0, atol=ATOL)
