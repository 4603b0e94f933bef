"""Acoustic features: librosa MFCC + librosa deltas + energy VAD + CMVN or feature warping.

The pipeline of :func:`extract_features` for one utterance:

1. resample to ``config.sample_rate`` if needed (logged);
2. pre-emphasis ``y[n] = x[n] - a x[n-1]`` (``x[-1] = x[0]``);
3. MFCCs by librosa: ``librosa.feature.melspectrogram`` (librosa's STFT
   framing, centred frames by default, the config's window inside ``n_fft``; Slaney mel
   filterbank of ``librosa.filters.mel``), ``librosa.power_to_db`` (``ref=1``, ``top_db``),
   then ``librosa.feature.mfcc`` on that log-mel spectrogram (orthonormal DCT-II); c0 is kept
   or replaced by the log frame energy (the calls are in :mod:`gmmspeech.features.melspec`);
4. deltas by ``librosa.feature.delta`` (``width = 2 delta_window + 1``, ``mode="interp"``;
   order 2 is librosa's second-order filter);
5. VAD on the raw frame energy in dBFS, over the samples under the window of each of
   librosa's frames (so the frame count is librosa's);
6. normalisation over the kept frames (CMN, CMVN, sliding, or feature warping; in
   :mod:`gmmspeech.features.normalize`).

Arrays are ``(n_frames, n_features)`` throughout (librosa's layout is the transpose); every
array returned is float32.

librosa loads its spectral stack (about 1.5 s, scipy.signal and numba included) at the first
MFCC of a process; process workers get it preloaded from the engine's forkserver.
"""

from __future__ import annotations

import logging

import librosa  # lazy: its submodules load at first use (or in the forkserver)
import numpy as np
from numpy.typing import ArrayLike

from ..config.sections import FeatureConfig
from ..errors import AudioError, ConfigError, DataError
from .audio import resample
from .melspec import log_mel_cepstra, mel_power, power_to_db
from .normalize import mean_var_norm, normalize

log = logging.getLogger(__name__)

_ENERGY_FLOOR = 1e-20  # mean square floor: -200 dBFS, so digital silence stays finite
_LOG_ENERGY_FLOOR = 1e-10  # sum-of-squares floor for energy="log_energy"
#: A signal varying by less (half a 16-bit step) is constant: no usable variation.
MIN_PEAK_TO_PEAK = 2.0**-16
#: Frames (plus context) filtered per ``librosa.feature.delta`` call in :func:`fill_features`:
#: one call per order for an utterance of up to 82 s at a 10 ms shift, and a few MB of
#: transient deltas for a longer one.
DELTA_FRAMES = 1 << 13


def _check_signal(signal: ArrayLike, sample_rate: object) -> tuple[np.ndarray, int]:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise ConfigError(f"sample_rate: must be a positive integer (Hz), got {sample_rate!r}")
    if sample_rate <= 0:
        raise ConfigError(f"sample_rate: must be a positive integer (Hz), got {sample_rate!r}")
    try:
        y = np.asarray(signal)
    except (TypeError, ValueError) as exc:
        raise DataError(f"signal: cannot be read as a numeric array ({exc})") from None
    if y.dtype.kind not in "iuf":
        raise DataError(f"signal: expected real numbers, got dtype {y.dtype}")
    if y.ndim != 1:
        raise DataError(
            f"signal: expected a mono 1-D array (n_samples,), got shape {y.shape}; "
            f"down-mix multi-channel audio first (gmmspeech.load_audio does)"
        )
    y = np.ascontiguousarray(y, dtype=np.float32)
    # min and max are NaN or infinite when a sample is: one pass instead of isfinite's mask
    if y.size and not (np.isfinite(y.min()) and np.isfinite(y.max())):
        bad = ~np.isfinite(y)
        raise DataError(
            f"signal: {int(bad.sum())} of {y.size} samples are NaN or infinite "
            f"(first at sample {int(np.argmax(bad))})"
        )
    return y, int(sample_rate)


def check_window(config: FeatureConfig) -> None:
    """Fail with a :class:`~gmmspeech.ConfigError` if librosa does not know the window.

    Extraction calls it once up front, so a bad name fails at once, not per utterance.
    """
    try:
        librosa.filters.get_window(config.window, config.win_length, fftbins=True)
    except (ValueError, TypeError, librosa.util.exceptions.ParameterError) as exc:
        raise ConfigError(
            f"window: {config.window!r} is not a window librosa.filters.get_window knows "
            f"({exc}); use hamming, hann, blackman or boxcar"
        ) from None


def n_frames_of(n_samples: int, config: FeatureConfig) -> int:
    """Frames librosa's STFT makes of ``n_samples`` samples with this config."""
    n_fft, hop = config.fft_size, config.hop_length
    if config.center:
        n_samples += 2 * (n_fft // 2)
    return 0 if n_samples < n_fft else 1 + (n_samples - n_fft) // hop


def frame_view(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The samples under the analysis window of each of librosa's frames (read-only view).

    librosa frames ``n_fft`` samples (after padding by ``n_fft // 2`` zeros at both ends
    when ``config.center``) and places the ``win_length``-sample window at offset
    ``(n_fft - win_length) // 2`` inside each frame; these are the samples it weights.

    Parameters
    ----------
    signal : ndarray, shape (n_samples,)
    config : FeatureConfig

    Returns
    -------
    ndarray, shape (n_frames, win_length)
        ``n_frames`` as :func:`n_frames_of` (the count of ``librosa.stft``).
    """
    n_fft, win, hop = config.fft_size, config.win_length, config.hop_length
    y = np.asarray(signal)
    n_frames = n_frames_of(y.shape[0], config)
    if n_frames == 0:
        return np.empty((0, win), dtype=y.dtype)
    if config.center:
        y = np.pad(y, n_fft // 2)
    off = (n_fft - win) // 2
    return np.lib.stride_tricks.sliding_window_view(y[off : off + (n_frames - 1) * hop + win], win)[
        ::hop
    ]


def frame_energy_db(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Mean-square energy of each raw frame in dBFS (0 dB = a full-scale square wave).

    Parameters
    ----------
    signal : ndarray, shape (n_samples,)
        At ``config.sample_rate``.
    config : FeatureConfig

    Returns
    -------
    ndarray, shape (n_frames,), float32
        ``10 log10(mean(x^2))`` over the samples of :func:`frame_view` (before pre-emphasis
        and windowing), floored at -200 dB. A full-scale sine gives -3.01 dB.
    """
    frames = frame_view(np.asarray(signal, dtype=np.float32), config)
    power = np.einsum("ij,ij->i", frames, frames) / np.float32(config.win_length)
    return (10.0 * np.log10(np.maximum(power, _ENERGY_FLOOR))).astype(np.float32)


def pre_emphasis(y: np.ndarray, a: float, prev: float | None = None) -> np.ndarray:
    """``y[n] - a y[n-1]`` in float32; ``y[-1]`` is ``prev`` (the previous block's last
    sample) or, at the start of a signal, ``y[0]``."""
    coef = np.float32(a)
    if coef == 0 or not y.shape[0]:
        return y
    emph = np.empty_like(y)
    if prev is None:
        emph[0] = y[0] * (np.float32(1.0) - coef)
    else:
        emph[0] = np.float32(prev) * -coef + y[0]
    np.multiply(y[:-1], -coef, out=emph[1:])
    emph[1:] += y[1:]
    return emph


def mfcc(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Static cepstra of every frame (no deltas, VAD or normalisation), computed by librosa.

    Parameters
    ----------
    signal : ndarray, shape (n_samples,), float32
        At ``config.sample_rate``.
    config : FeatureConfig

    Returns
    -------
    ndarray, shape (n_frames, n_mfcc), float32
        ``librosa.feature.mfcc`` of the pre-emphasised signal with this config's STFT, mel
        and ``top_db`` settings, transposed to frames x coefficients. With
        ``energy="log_energy"`` column 0 holds ``ln(sum x^2)`` of the raw samples of
        :func:`frame_view` instead of c0.
    """
    return np.ascontiguousarray(_cepstra(signal, config).T)


def _cepstra(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """:func:`mfcc` in librosa's layout, shape (n_mfcc, n_frames), float32:
    ``librosa.feature.melspectrogram``, ``power_to_db`` with the config's ``top_db``, then
    ``librosa.feature.mfcc`` on that log-mel spectrogram (``librosa.feature.mfcc(y=...)``
    itself would fix ``top_db`` at 80)."""
    y = np.asarray(signal, dtype=np.float32)
    mel_s = mel_power(pre_emphasis(y, config.pre_emphasis), config, config.center)
    logmel = power_to_db(mel_s, config.top_db)
    out = log_mel_cepstra(logmel, config)
    if config.energy == "log_energy":
        out[0] = frame_log_energy(frame_view(y, config))
    return out


def frame_log_energy(raw_frames: np.ndarray) -> np.ndarray:
    """``ln(sum x^2)`` of each row of :func:`frame_view` (floored), shape (n_frames,)."""
    energy = np.einsum("ij,ij->i", raw_frames, raw_frames)
    return np.log(np.maximum(energy, _LOG_ENERGY_FLOOR))


def _with_deltas(c: np.ndarray, order: int, window: int) -> np.ndarray:
    """``c`` (d, n_frames) stacked over its librosa deltas: (d * (order + 1), n_frames).

    Filtered along the last axis of rows, librosa's own layout, which is about 3x faster in
    ``savgol_filter``'s edge fits than the other axis.
    """
    width = 2 * int(window) + 1
    if order and c.shape[1] < width:
        raise AudioError(
            f"too short for deltas: {c.shape[1]} frames < delta filter width {width} "
            f"(delta_window={window}); drop the clip, or use a smaller delta_window or "
            f"frame_shift_ms"
        )
    blocks = [c] + [
        librosa.feature.delta(c, width=width, order=k, axis=-1, mode="interp")
        for k in range(1, order + 1)
    ]
    return np.vstack(blocks).astype(np.float32, copy=False)


def add_deltas(x: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Append librosa's deltas (and second-order deltas) to frames.

    Parameters
    ----------
    x : ndarray, shape (n_frames, d)
    order : int
        0, 1 or 2.
    window : int
        Half-width ``N``: ``librosa.feature.delta(..., width=2 N + 1, order=k,
        mode="interp")`` along the frames for ``k = 1 .. order``.

    Returns
    -------
    ndarray, shape (n_frames, d * (order + 1)), float32
        ``[x, delta_1(x), delta_2(x)]`` side by side; ``delta_2`` is librosa's second-order
        Savitzky-Golay filter of ``x`` (not the delta of the delta).

    Raises
    ------
    AudioError
        ``order > 0`` and fewer than ``2 N + 1`` frames: librosa's ``mode="interp"`` needs a
        whole filter width of frames.
    """
    x = np.asarray(x, dtype=np.float32)
    return np.ascontiguousarray(_with_deltas(np.ascontiguousarray(x.T), order, window).T)


def _two_gaussian_speech(e: np.ndarray, n_iter: int = 30) -> np.ndarray:
    """Frames of ``e`` (dB) more likely under the louder of two 1-D Gaussians fitted by EM.

    When the fit finds no two separated modes (Ashman's D < 2), every frame is kept.
    """
    x = e.astype(np.float64)
    if x.size < 4 or np.ptp(x) < 1e-3:
        return np.ones(x.shape, dtype=bool)
    mu = np.quantile(x, [0.1, 0.9])
    var = np.full(2, max(float(x.var()), 1.0))
    w = np.array([0.5, 0.5])
    for _ in range(n_iter):
        logp = (
            np.log(w)[:, None]
            - 0.5 * np.log(2 * np.pi * var)[:, None]
            - 0.5 * (x[None, :] - mu[:, None]) ** 2 / var[:, None]
        )
        m = logp.max(axis=0)
        post = np.exp(logp - m)
        post /= post.sum(axis=0)
        counts = post.sum(axis=1) + 1e-10
        w = counts / counts.sum()
        mu = (post @ x) / counts
        var = np.maximum((post @ (x * x)) / counts - mu**2, 1.0)
    hi = int(np.argmax(mu))
    d = np.sqrt(2.0) * abs(mu[1] - mu[0]) / np.sqrt(var[0] + var[1])
    if d < 2.0:
        return np.ones(x.shape, dtype=bool)
    return post[hi] > 0.5


def vad_mask(energy_db: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Frames kept by the voice activity detector.

    Parameters
    ----------
    energy_db : ndarray, shape (n_frames,)
        Frame energies from :func:`frame_energy_db`.
    config : FeatureConfig
        ``vad``, ``vad_threshold_db``, ``vad_quantile`` and ``vad_floor_db`` are used.

    Returns
    -------
    ndarray, shape (n_frames,), bool
    """
    e = np.asarray(energy_db, dtype=np.float32)
    if config.vad == "none" or e.size == 0:
        return np.ones(e.shape, dtype=bool)
    audible = e > np.float32(config.vad_floor_db)
    if config.vad == "energy":
        ref = np.quantile(e, config.vad_quantile)
        return audible & (e > np.float32(ref - config.vad_threshold_db))
    mask = np.zeros(e.shape, dtype=bool)
    if audible.any():
        mask[audible] = _two_gaussian_speech(e[audible])
    return mask


def extract_features(
    signal: ArrayLike, sample_rate: int, config: FeatureConfig | None = None
) -> np.ndarray:
    """Features of one utterance: MFCC + deltas, VAD-selected, normalised.

    Parameters
    ----------
    signal : array-like, shape (n_samples,)
        Mono audio in [-1, 1] (see :func:`gmmspeech.load_audio`).
    sample_rate : int
        Rate of ``signal`` in Hz. A rate other than ``config.sample_rate`` is resampled
        (logged at INFO), never framed at the wrong rate.
    config : FeatureConfig, optional
        Defaults to ``FeatureConfig()``.

    Returns
    -------
    ndarray, shape (n_frames, config.n_features), float32
        Only the frames kept by the VAD.

    Raises
    ------
    DataError
        The signal is not a 1-D real array or holds NaN/infinite samples.
    AudioError
        The signal is shorter than one window, constant (DC, no variation), or the VAD
        keeps no frame (silence).
    """
    feats, _ = extract_features_with_info(signal, sample_rate, config)
    return feats


def extract_features_with_info(
    signal: ArrayLike, sample_rate: int, config: FeatureConfig | None = None
) -> tuple[np.ndarray, int]:
    """:func:`extract_features`, also returning the number of frames before the VAD.

    Returns
    -------
    features : ndarray, shape (n_kept, config.n_features), float32
    n_frames_total : int
        Frames of the utterance before the VAD.
    """
    cfg = FeatureConfig() if config is None else config
    if not isinstance(cfg, FeatureConfig):
        raise ConfigError(f"config: expected a FeatureConfig, got {type(cfg).__name__}")
    y, rate = _check_signal(signal, sample_rate)
    if rate != cfg.sample_rate:
        log.info(
            "resampling a %.2f s signal from %d Hz to the feature config's %d Hz",
            y.size / rate,
            rate,
            cfg.sample_rate,
        )
        y = resample(y, rate, cfg.sample_rate)
    need = cfg.win_length if cfg.center else cfg.fft_size
    if y.shape[0] < need:
        raise AudioError(
            f"signal is shorter than one frame: {y.shape[0]} samples at {cfg.sample_rate} Hz "
            f"({1000.0 * y.shape[0] / cfg.sample_rate:.1f} ms) < {need} samples ("
            + ("frame_length_ms" if cfg.center else "n_fft with center=false")
            + "); drop the clip or use shorter frames"
        )
    # a constant (DC) signal has no spectrum to speak of: its cepstra are the same in every
    # frame and normalise to all-zero features that would silently enter models as data
    # (digital silence is left to the VAD, whose message says "silent")
    if float(np.ptp(y)) < MIN_PEAK_TO_PEAK and (y[0] != 0 or cfg.vad == "none"):
        raise AudioError(
            f"the signal is constant (every sample {float(y[0]):.6g}, peak-to-peak "
            f"{float(np.ptp(y)):.3g}): no usable variation; drop the file"
        )
    return features_from_cepstra(_cepstra(y, cfg), frame_energy_db(y, cfg), cfg)


def features_from_cepstra(
    static: np.ndarray, energy_db: np.ndarray, cfg: FeatureConfig
) -> tuple[np.ndarray, int]:
    """Deltas, VAD and normalisation of one utterance's static cepstra.

    Parameters
    ----------
    static : ndarray, shape (n_mfcc, n_frames), float32
        librosa's layout, as :func:`mfcc` transposed.
    energy_db : ndarray, shape (n_frames,)
        :func:`frame_energy_db` of the same frames.
    cfg : FeatureConfig

    Returns
    -------
    features : ndarray, shape (n_kept, cfg.n_features), float32
    n_frames_total : int
    """
    n_total = static.shape[1]
    keep = kept_frames(energy_db, cfg)
    n_kept = int(keep.sum())
    feats = np.empty((n_kept, cfg.n_features), dtype=np.float32)
    fill_features(static, keep if n_kept < n_total else slice(None), cfg, feats)
    if cfg.normalization in ("cmn", "cmvn"):
        feats = mean_var_norm(feats, cfg.normalization == "cmvn")  # ours: in place
    else:
        feats = normalize(feats, cfg.normalization, cfg.norm_window)
    return np.ascontiguousarray(feats, dtype=np.float32), n_total


def kept_frames(energy_db: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """The VAD's mask of an utterance's frames, shape (n_frames,) bool.

    Raises
    ------
    AudioError
        Fewer frames than the delta filter is wide, or the VAD kept no frame.
    """
    n_total = int(energy_db.shape[0])
    width = 2 * int(cfg.delta_window) + 1
    if cfg.deltas and n_total < width:
        raise AudioError(
            f"too short for deltas: {n_total} frames < delta filter width {width} "
            f"(delta_window={cfg.delta_window}); drop the clip, or use a smaller delta_window "
            f"or frame_shift_ms"
        )
    keep = vad_mask(energy_db, cfg)
    if not keep.any():
        raise AudioError(
            f"the VAD kept no frame of {n_total} (loudest frame {float(energy_db.max()):.1f} "
            f"dBFS, vad_floor_db={cfg.vad_floor_db:g}): the clip is silent; skip it, or "
            f"lower vad_floor_db / set vad='none' if it is quiet speech"
        )
    return keep


def fill_features(
    static: np.ndarray, cols: np.ndarray | slice, cfg: FeatureConfig, out: np.ndarray
) -> None:
    """Write static cepstra and their librosa deltas, for the frames ``cols``, into ``out``.

    The deltas are ``librosa.feature.delta`` of all the coefficients at once, one call per
    order on a time block of at most :data:`DELTA_FRAMES` frames plus ``delta_window``
    frames of context on each side (the filter of a frame sees only its ``delta_window``
    neighbours, so a block's frames get what they get on the whole matrix).

    Parameters
    ----------
    static : ndarray, shape (n_mfcc, n)
        Consecutive frames; deltas at its first and last ``delta_window`` frames use
        librosa's ``mode="interp"`` edge fit, so away from an utterance's true ends the
        caller passes ``delta_window`` frames of context on each side beyond ``cols``.
    cols : slice or ndarray of int or bool
        The frames of ``static`` wanted, in order.
    cfg : FeatureConfig
    out : ndarray, shape (n_cols, cfg.n_features), float32
    """
    d, n = static.shape
    idx = np.arange(n)[cols]
    if idx.size and np.any(idx[1:] <= idx[:-1]):
        raise ValueError("fill_features: cols must select frames in increasing order")
    ctx = int(cfg.delta_window) if cfg.deltas else 0
    width = 2 * ctx + 1
    at = 0
    for s in range(0, n, DELTA_FRAMES):
        e = min(s + DELTA_FRAMES, n)
        b = int(np.searchsorted(idx, e))
        if b == at:
            continue
        # the block with context, at least a filter width (librosa's mode="interp" needs it)
        lo = max(min(s - ctx, n - width), 0)
        hi = min(max(e + ctx, lo + width), n)
        block = static[:, lo:hi]
        stacked = [block] + [
            librosa.feature.delta(block, width=width, order=k, axis=-1, mode="interp")
            for k in range(1, cfg.deltas + 1)
        ]
        sel = idx[at:b] - lo
        for k, rows in enumerate(stacked):
            out[at:b, k * d : (k + 1) * d] = rows.T[sel]
        at = b


__all__ = [
    "add_deltas",
    "check_window",
    "extract_features",
    "extract_features_with_info",
    "features_from_cepstra",
    "fill_features",
    "kept_frames",
    "frame_energy_db",
    "frame_view",
    "mfcc",
    "n_frames_of",
    "vad_mask",
]
