"""librosa's spectral front end, as the feature pipeline calls it.

The three steps from a pre-emphasised signal to cepstra are librosa's own functions:
``librosa.feature.melspectrogram``, ``librosa.power_to_db`` and ``librosa.feature.mfcc``.
:mod:`gmmspeech.features.frontend` (whole utterances) and :mod:`gmmspeech.features.blockfeatures` (long
files, block by block) both go through these wrappers, so the parameters are fixed in one
place.

Importing librosa's spectral modules loads ``librosa.core``, which builds numba functions
at import (about 50 MB of a process's memory, measured with ``/proc/self/statm``). The
product calls librosa for its definitions, so that cost is accepted; it is paid once per
process (workers get it preloaded from the engine's forkserver).
"""

from __future__ import annotations

import warnings

import librosa  # lazy: its spectral submodules load at the first call (or in the forkserver)
import numpy as np

from ..config.sections import FeatureConfig

#: Power floor of :func:`power_to_db` (librosa's default ``amin``).
AMIN = 1e-10


def mel_power(emph: np.ndarray, config: FeatureConfig, center: bool) -> np.ndarray:
    """``librosa.feature.melspectrogram`` (power 2) of a pre-emphasised signal.

    Parameters
    ----------
    emph : ndarray, shape (n_samples,), float32
    config : FeatureConfig
    center : bool
        librosa's centred framing (zero padding at both ends); the blockwise front end
        passes ``False`` for the blocks it pads itself.

    Returns
    -------
    ndarray, shape (n_mels, n_frames), float32
    """
    with warnings.catch_warnings():
        # a clip shorter than n_fft but at least one window long is framed correctly
        # (zero-padded); librosa's "n_fft is too large" warning would only be noise here
        warnings.filterwarnings("ignore", message="n_fft=.* is too large", category=UserWarning)
        out: np.ndarray = librosa.feature.melspectrogram(
            y=np.asarray(emph, dtype=np.float32),
            sr=config.sample_rate,
            n_fft=config.fft_size,
            hop_length=config.hop_length,
            win_length=config.win_length,
            window=config.window,
            center=center,
            pad_mode="constant",
            power=2.0,
            n_mels=config.n_mels,
            fmin=config.fmin,
            fmax=config.fmax,
        )
    return out


def power_to_db(mel: np.ndarray, top_db: float | None) -> np.ndarray:
    """``librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=top_db)``, shape kept."""
    out: np.ndarray = librosa.power_to_db(mel, ref=1.0, amin=AMIN, top_db=top_db)
    return out


def log_mel_cepstra(logmel: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """``librosa.feature.mfcc`` (orthonormal DCT-II) of log-mel frames (n_mels, n_frames),
    as (n_mfcc, n_frames) float32; each frame is transformed on its own."""
    return np.asarray(
        librosa.feature.mfcc(S=logmel, n_mfcc=config.n_mfcc, dct_type=2, norm="ortho"),
        dtype=np.float32,
    )


__all__ = ["AMIN", "log_mel_cepstra", "mel_power", "power_to_db"]
