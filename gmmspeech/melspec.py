"""librosa's mel spectrogram, ``power_to_db`` and MFCC DCT, without librosa's core modules.

``librosa.feature.melspectrogram``, ``librosa.power_to_db`` and ``librosa.feature.mfcc`` live
in modules (``librosa.core.audio``, ``librosa.core.pitch``) that build numba ufuncs when
they are imported. Building them starts numba's LLVM code generator, about 70 MB of a
process's memory and 1.5 s, for functions feature extraction never calls; with it, a
process extracting a 10-second clip peaked at 270 MB. This module computes the same
arrays with the same operations, in the same dtypes (see each function), from the parts of
librosa that do not load that stack: ``librosa.filters.get_window`` and
``librosa.filters.mel``. ``tests/test_melspec.py`` checks every function against the librosa
call it stands for.
"""

from __future__ import annotations

import functools

import librosa  # lazy: only librosa.filters (and librosa.feature.utils) are loaded
import numpy as np
import scipy  # lazy: scipy.fft (which loads scipy.special) at the first FFT

from .config import FeatureConfig

#: Power floor of :func:`power_to_db` (librosa's default ``amin``).
AMIN = 1e-10
#: Frames transformed per FFT call: bounds the float64 frame copy to a few MB.
_FFT_FRAMES = 1024


@functools.lru_cache(maxsize=8)
def analysis(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """The STFT window and the mel filterbank of a config (cached, read-only).

    Returns
    -------
    window : ndarray, shape (fft_size, 1), float64
        ``librosa.filters.get_window(window, win_length, fftbins=True)`` centred in
        ``fft_size`` zeros, as ``librosa.stft`` pads it.
    mel_basis : ndarray, shape (n_mels, fft_size // 2 + 1), float32
        ``librosa.filters.mel`` (Slaney) with the config's ``n_mels``, ``fmin``, ``fmax``.
    """
    n_fft, win = config.fft_size, config.win_length
    window = np.zeros((n_fft, 1))
    left = (n_fft - win) // 2
    window[left : left + win, 0] = librosa.filters.get_window(config.window, win, fftbins=True)
    mel_basis = librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=n_fft,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
    )
    window.flags.writeable = False
    mel_basis.flags.writeable = False
    return window, mel_basis


def stft_frames(emph: np.ndarray, config: FeatureConfig, center: bool) -> np.ndarray:
    """``librosa.stft``'s frames of a signal, shape (fft_size, n_frames) (a view when not
    centred): with ``center``, ``fft_size // 2`` zeros pad both ends (``pad_mode="constant"``)."""
    n_fft, hop = config.fft_size, config.hop_length
    y = np.asarray(emph, dtype=np.float32)
    if center:
        y = np.pad(y, n_fft // 2)
    if y.shape[0] < n_fft:
        return np.empty((n_fft, 0), dtype=np.float32)
    return np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop].T


def mel_power(emph: np.ndarray, config: FeatureConfig, center: bool) -> np.ndarray:
    """``librosa.feature.melspectrogram(power=2.0, pad_mode="constant")`` of a signal.

    As librosa: the float64 window times the float32 frames, ``scipy.fft.rfft`` in float64,
    the spectrum stored as complex64, ``abs(.) ** 2`` in float32, then
    ``einsum("ft,mf->mt", S, mel_basis, optimize=True)``.

    Parameters
    ----------
    emph : ndarray, shape (n_samples,), float32
        The pre-emphasised signal.
    config : FeatureConfig
    center : bool
        librosa's centred framing; the blockwise front end passes ``False`` for the blocks
        it pads itself.

    Returns
    -------
    ndarray, shape (n_mels, n_frames), float32
    """
    window, mel_basis = analysis(config)
    frames = stft_frames(emph, config, center)
    n_frames = frames.shape[1]
    spec = np.empty((config.fft_size // 2 + 1, n_frames), dtype=np.complex64, order="F")
    for at in range(0, n_frames, _FFT_FRAMES):
        part = frames[:, at : at + _FFT_FRAMES]
        spec[:, at : at + part.shape[1]] = scipy.fft.rfft(window * part, axis=0)
    power = np.abs(spec) ** 2.0
    del spec
    out: np.ndarray = np.einsum("ft,mf->mt", power, mel_basis, optimize=True)
    return out


def power_to_db(mel: np.ndarray, top_db: float | None) -> np.ndarray:
    """``librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=top_db)``, float32 in and out."""
    log_spec: np.ndarray = 10.0 * np.log10(np.maximum(AMIN, mel))
    if top_db is not None:
        np.maximum(log_spec, log_spec.max() - top_db, out=log_spec)
    return log_spec


def log_mel_cepstra(logmel: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """``librosa.feature.mfcc(S=logmel, dct_type=2, norm="ortho")`` (no lifter): the
    orthonormal DCT-II of each frame (n_mels, n_frames), first ``n_mfcc`` rows, float32."""
    out = scipy.fft.dct(logmel, axis=-2, type=2, norm="ortho")[: config.n_mfcc]
    return np.asarray(out, dtype=np.float32)


__all__ = ["AMIN", "analysis", "log_mel_cepstra", "mel_power", "power_to_db", "stft_frames"]
