"""The numpy spectral blocks of the MFCC against librosa and scipy (the oracles)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import librosa
import numpy as np
import pytest
import scipy.fft
import scipy.signal

from gmmspeech.config import FeatureConfig
from gmmspeech.features import mfcc
from gmmspeech.spectral import dct_matrix, log_power, mel_filterbank, power_spectrum, window


@pytest.mark.parametrize("name", ["hamming", "hann", "blackman", "boxcar", "triang", "bartlett"])
@pytest.mark.parametrize("length", [400, 256, 401])
def test_window_is_scipys_periodic_window(name: str, length: int) -> None:
    ref = scipy.signal.get_window(name, length, fftbins=True)
    got = window(name, length)
    assert got.dtype == np.float32 and got.shape == (length,)
    np.testing.assert_allclose(got, ref, atol=1e-7)


def test_unknown_window_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="window: 'nosuch' is not a window"):
        window("nosuch", 400)


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "fmin", "fmax"),
    [
        (16000, 512, 40, 20.0, None),
        (16000, 512, 24, 0.0, 7000.0),
        (8000, 256, 23, 100.0, None),
        (44100, 2048, 128, 0.0, None),
    ],
)
def test_mel_filterbank_is_librosas(sr: int, n_fft: int, n_mels: int, fmin: float, fmax) -> None:
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    got = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-9)


def test_mel_filters_without_bins_are_reported() -> None:
    mel_filterbank.cache_clear()
    with pytest.warns(UserWarning, match="mel filters cover no FFT bin"):
        mel_filterbank(8000, 64, 80, 0.0, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mel_filterbank(16000, 512, 40, 20.0, None)


@pytest.mark.parametrize(("n_out", "n_in"), [(20, 40), (13, 24), (40, 40)])
def test_dct_matrix_is_scipys_orthonormal_dct2(n_out: int, n_in: int) -> None:
    ref = scipy.fft.dct(np.eye(n_in), type=2, norm="ortho", axis=0)[:n_out]
    np.testing.assert_allclose(dct_matrix(n_out, n_in), ref, atol=1e-6)


def test_power_spectrum_and_log_match_librosa_stft_and_power_to_db() -> None:
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    win, hop, n_fft = 400, 160, 512
    frames = np.lib.stride_tricks.sliding_window_view(y, win)[::hop]
    got = power_spectrum(frames, window("hamming", win), n_fft)
    left = (n_fft - win) // 2  # librosa centres the window in n_fft samples
    padded = np.pad(y, (left, n_fft - win - left))
    spec = librosa.stft(
        padded, n_fft=n_fft, hop_length=hop, win_length=win, window="hamming", center=False
    )
    ref = (np.abs(spec) ** 2).T
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=1e-6 * ref.max())
    np.testing.assert_allclose(
        log_power(got.copy(), 80.0), librosa.power_to_db(ref, top_db=80.0), atol=2e-3
    )


def test_long_signals_are_processed_in_blocks_with_the_same_result() -> None:
    cfg = FeatureConfig()
    rng = np.random.default_rng(1)
    y = (0.1 * rng.standard_normal(16000 * 50)).astype(np.float32)  # 4998 frames: 3 blocks
    got = mfcc(y, cfg)
    pieces = [mfcc(y[: 160 * 2100 + 240], cfg), mfcc(y[160 * 2100 :], cfg)]
    assert got.shape[0] == 1 + (y.size - 400) // 160
    # top_db clipping is relative to the utterance maximum; this noise never reaches it,
    # so frame-wise results must not depend on where the signal is cut (except the first
    # frame after the cut, whose first sample is pre-emphasised differently)
    np.testing.assert_allclose(got[:2100], pieces[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got[2101:], pieces[1][1:], rtol=1e-5, atol=1e-4)


def test_feature_extraction_needs_neither_librosa_nor_scipy_signal() -> None:
    code = (
        "import sys, numpy as np\n"
        "from gmmspeech.features import extract_features\n"
        "y = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)\n"
        "extract_features(y, 16000)\n"
        "print(*[int(m in sys.modules) for m in ('librosa', 'scipy.signal', 'numba')])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["0", "0", "0"]
