"""The spectral building blocks of the MFCC, in numpy, with librosa's definitions.

:func:`gmmspeech.features.mfcc` gives the same numbers as ``librosa.feature.mfcc`` (the test
suite checks it against librosa, and each block here against its librosa or scipy
counterpart), but computes them with numpy alone. The reason is measured start-up: the
first ``librosa.feature.mfcc`` call in a process imports scipy.signal, scipy.stats,
scipy.ndimage, numba and joblib, about 1.3 s on the reference 2-core machine, paid by every
``gmmspeech extract`` run and by every worker process of ``--jobs N``, which is as long as
extracting 500 utterances of a short-clip corpus. With these blocks a worker is ready in
about 0.1 s.

The definitions followed:

* window: the periodic ("FFT bins") form of ``scipy.signal.get_window``; Hann, Hamming,
  Blackman and rectangular are built here, any other scipy window name is delegated to
  scipy (imported then);
* power spectrum: ``|rfft(window * frame, n_fft)|^2`` of each frame; librosa centres the
  window inside ``n_fft`` samples, which changes only the phase, not the power;
* mel filterbank: Slaney's mel scale (linear below 1 kHz, logarithmic above) with
  triangular filters normalised to equal area (``librosa.filters.mel`` defaults);
* log: ``10 log10(max(1e-10, mel))`` clipped at ``top_db`` below the utterance's maximum
  (``librosa.power_to_db`` with ``ref=1``);
* DCT: the orthonormal DCT-II (``scipy.fft.dct(..., norm="ortho")``).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from .errors import ConfigError

_AMIN = 1e-10  # power floor before the log (librosa's amin)

# Periodic windows: w[n] = sum_k a_k cos(2 pi k n / N), n = 0..N-1.
_COSINE_WINDOWS: dict[str, tuple[float, ...]] = {
    "hann": (0.5, -0.5),
    "hanning": (0.5, -0.5),
    "hamming": (0.54, -0.46),
    "blackman": (0.42, -0.5, 0.08),
    "boxcar": (1.0,),
    "rectangular": (1.0,),
    "rect": (1.0,),
    "ones": (1.0,),
}


@functools.lru_cache(maxsize=16)
def window(name: str, length: int) -> np.ndarray:
    """Periodic analysis window.

    Parameters
    ----------
    name : str
        ``hann``, ``hamming``, ``blackman`` or ``rectangular`` (built here), or any other
        name ``scipy.signal.get_window`` knows.
    length : int
        Samples.

    Returns
    -------
    ndarray, shape (length,), float32, read-only
    """
    coefs = _COSINE_WINDOWS.get(name.lower())
    if coefs is not None:
        phase = 2.0 * np.pi * np.arange(length) / length
        w = sum(a * np.cos(k * phase) for k, a in enumerate(coefs)) * np.ones(length)
    else:
        from scipy.signal import get_window

        try:
            w = get_window(name, length, fftbins=True)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"window: {name!r} is not a window scipy.signal.get_window knows ({exc}); "
                f"use hamming, hann, blackman or rectangular"
            ) from None
    out = np.ascontiguousarray(w, dtype=np.float32)
    out.setflags(write=False)
    return out


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: 3 mels per 200 Hz up to 1 kHz, then 27 mels per factor 6.4."""
    hz = np.asarray(hz, dtype=np.float64)
    step = 200.0 / 3.0
    knee_mel = 1000.0 / step
    log_step = np.log(6.4) / 27.0
    return np.where(
        hz < 1000.0, hz / step, knee_mel + np.log(np.maximum(hz, 1e-300) / 1000.0) / log_step
    )


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    step = 200.0 / 3.0
    knee_mel = 1000.0 / step
    log_step = np.log(6.4) / 27.0
    return np.where(mel < knee_mel, mel * step, 1000.0 * np.exp(log_step * (mel - knee_mel)))


@functools.lru_cache(maxsize=16)
def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular mel filters of equal area on Slaney's mel scale.

    Parameters
    ----------
    sample_rate : int
    n_fft : int
    n_mels : int
    fmin, fmax : float
        Band edges in Hz (``fmax`` defaults to the Nyquist frequency).

    Returns
    -------
    ndarray, shape (n_mels, n_fft // 2 + 1), float32, read-only
        Row ``m`` rises linearly from centre frequency ``m - 1`` to ``m`` and falls to
        ``m + 1`` (centres evenly spaced in mels between ``fmin`` and ``fmax``), scaled by
        ``2 / (f[m + 1] - f[m - 1])``.
    """
    top = sample_rate / 2.0 if fmax is None else float(fmax)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(top), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lo) / (mid - lo)
    falling = (hi - bins[None, :]) / (hi - mid)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (hi - lo))
    empty = (edges[:-2] > 0) & (weights.max(axis=1) <= 0)
    if empty.any():
        warnings.warn(
            f"{int(empty.sum())} of {n_mels} mel filters cover no FFT bin (sample_rate="
            f"{sample_rate}, fft_size={n_fft}, fmin={fmin:g}, fmax={top:g}): those features "
            f"are constant; use fewer n_mels or a larger fft_size",
            stacklevel=2,
        )
    out = np.ascontiguousarray(weights, dtype=np.float32)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=16)
def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """The first ``n_out`` rows of the orthonormal DCT-II of size ``n_in``.

    Returns
    -------
    ndarray, shape (n_out, n_in), float32, read-only
        ``C[k, n] = s_k cos(pi k (2n + 1) / (2 n_in))`` with ``s_0 = sqrt(1 / n_in)`` and
        ``s_k = sqrt(2 / n_in)`` otherwise.
    """
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    mat = np.cos(np.pi * k * (2 * n + 1) / (2.0 * n_in)) * np.sqrt(2.0 / n_in)
    mat[0] *= np.sqrt(0.5)
    out = np.ascontiguousarray(mat, dtype=np.float32)
    out.setflags(write=False)
    return out


def power_spectrum(frames: np.ndarray, win: np.ndarray, n_fft: int) -> np.ndarray:
    """``|rfft(win * frame, n_fft)|^2`` of each frame.

    Parameters
    ----------
    frames : ndarray, shape (n_frames, win_length), float32
        May be a strided view.
    win : ndarray, shape (win_length,), float32
    n_fft : int
        >= win_length (frames are zero-padded at the end).

    Returns
    -------
    ndarray, shape (n_frames, n_fft // 2 + 1), float32
    """
    import scipy.fft  # 5x faster than numpy.fft here (float32, rows); imports in 0.05 s

    buf = np.zeros((frames.shape[0], n_fft), dtype=np.float32)
    np.multiply(frames, win, out=buf[:, : win.shape[0]])
    spec = scipy.fft.rfft(buf, axis=1)
    power = np.empty(spec.shape, dtype=np.float32)
    np.multiply(spec.real, spec.real, out=power)
    power += spec.imag * spec.imag
    return power


def log_power(power: np.ndarray, top_db: float | None) -> np.ndarray:
    """``10 log10(max(1e-10, power))``, clipped at ``top_db`` below the maximum (in place)."""
    np.maximum(power, np.float32(_AMIN), out=power)
    np.log10(power, out=power)
    power *= np.float32(10.0)
    if top_db is not None and power.size:
        np.maximum(power, power.max() - np.float32(top_db), out=power)
    return power


__all__ = ["dct_matrix", "log_power", "mel_filterbank", "power_spectrum", "window"]
