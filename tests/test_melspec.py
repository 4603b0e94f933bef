"""gmmspeech.melspec against the librosa calls it stands for (bit-identical), and the
import footprint it exists for."""

from __future__ import annotations

import subprocess
import sys

import librosa
import numpy as np
import pytest

from gmmspeech import melspec
from gmmspeech.config import FeatureConfig

CONFIGS = [
    FeatureConfig(),
    FeatureConfig(window="hann", n_mels=24, fmin=100.0, fmax=3800.0, top_db=None),
    FeatureConfig(frame_length_ms=32.0, frame_shift_ms=8.0, center=False, n_mfcc=13),
    FeatureConfig(sample_rate=8000, top_db=40.0),
]


def _signal(rate: int, seconds: float = 1.3) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(rate * seconds)) / rate
    tone = np.sin(2 * np.pi * 440 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("center", [True, False])
def test_equals_librosa(cfg: FeatureConfig, center: bool) -> None:
    y = _signal(cfg.sample_rate)
    ref = librosa.feature.melspectrogram(
        y=y,
        sr=cfg.sample_rate,
        n_fft=cfg.fft_size,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=cfg.window,
        center=center,
        pad_mode="constant",
        power=2.0,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
    )
    got = melspec.mel_power(y, cfg, center)
    assert got.dtype == ref.dtype == np.float32
    np.testing.assert_array_equal(got, ref)
    db_ref = librosa.power_to_db(ref, ref=1.0, amin=1e-10, top_db=cfg.top_db)
    db = melspec.power_to_db(got, cfg.top_db)
    np.testing.assert_array_equal(db, db_ref)
    c_ref = librosa.feature.mfcc(S=db_ref, n_mfcc=cfg.n_mfcc, dct_type=2, norm="ortho")
    np.testing.assert_array_equal(melspec.log_mel_cepstra(db, cfg), c_ref)


def test_short_signal_has_librosas_frame_count() -> None:
    cfg = FeatureConfig()
    y = _signal(cfg.sample_rate, 0.03)  # one window, shorter than n_fft
    with pytest.warns(UserWarning):
        ref = librosa.feature.melspectrogram(
            y=y,
            sr=cfg.sample_rate,
            n_fft=cfg.fft_size,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=cfg.window,
            pad_mode="constant",
            n_mels=cfg.n_mels,
            fmin=cfg.fmin,
            fmax=cfg.fmax,
        )
    np.testing.assert_array_equal(melspec.mel_power(y, cfg, True), ref)


def test_extraction_does_not_load_librosa_core() -> None:
    """The point of the module: no numba code generation in an extracting process."""
    code = (
        "import sys, numpy as np\n"
        "from gmmspeech.features import extract_features\n"
        "from gmmspeech.config import FeatureConfig\n"
        "t = np.arange(16000) / 16000\n"
        "y = (np.sin(2 * np.pi * 300 * t) * np.sin(2 * np.pi * 2 * t)).astype('f4')\n"
        "extract_features(y, 16000, FeatureConfig())\n"
        "bad = [m for m in ('librosa.core.audio', 'librosa.core.pitch',"
        " 'librosa.core.spectrum') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
