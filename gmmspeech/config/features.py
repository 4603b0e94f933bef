"""The sections of the front end: the features (what is computed) and their extraction
(how the job runs).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .base import check as _check
from .base import check_in, normalise

_ENERGY_MODES = ("c0", "log_energy")
_VAD_MODES = ("energy", "gmm", "none")
_NORM_MODES = ("none", "cmn", "cmvn", "sliding_cmn", "sliding_cmvn", "warp")
_FEATURE_FLOATS = (
    "frame_length_ms",
    "frame_shift_ms",
    "pre_emphasis",
    "fmin",
    "fmax",
    "top_db",
    "vad_threshold_db",
    "vad_quantile",
    "vad_floor_db",
)
_FEATURE_INTS = (
    "sample_rate",
    "n_fft",
    "n_mels",
    "n_mfcc",
    "deltas",
    "delta_window",
    "norm_window",
)


@dataclass(frozen=True)
class FeatureConfig:
    """Options of feature extraction (:func:`gmmspeech.extract_features`).

    The defaults follow common speaker-recognition practice: 16 kHz audio, 25 ms Hamming
    windows every 10 ms, pre-emphasis 0.97, 40 mel bands, 20 MFCCs including c0, deltas and
    delta-deltas (60 features), energy VAD and per-utterance CMVN.

    Parameters
    ----------
    sample_rate : int
        Rate (Hz) the features are computed at; other rates are resampled to it (logged).
    frame_length_ms : float
        Analysis window length in milliseconds (librosa's ``win_length``).
    frame_shift_ms : float
        Hop between frames in milliseconds (librosa's ``hop_length``).
    n_fft : int or None
        FFT size; ``None`` is the next power of two at or above the window length.
    center : bool
        Frames as ``librosa.stft`` makes them: with ``True`` (librosa's default) the signal
        is padded with ``n_fft // 2`` zeros at both ends and frame ``t`` is centred on
        sample ``t * hop``, giving ``1 + n_samples // hop`` frames; with ``False`` frame ``t``
        covers samples ``[t * hop, t * hop + n_fft)`` (``1 + (n_samples - n_fft) // hop``
        frames). The window sits in the middle of each ``n_fft``-sample frame either way.
    window : str
        Analysis window, in its periodic form: any name ``librosa.filters.get_window``
        (scipy's ``get_window``) knows, e.g. ``hamming``, ``hann``, ``blackman``, ``boxcar``.
    pre_emphasis : float
        Coefficient of the pre-emphasis filter ``y[n] = x[n] - a x[n-1]``; 0 disables it.
    n_mels : int
        Mel filterbank channels.
    fmin : float
        Lowest filterbank frequency in Hz.
    fmax : float or None
        Highest filterbank frequency in Hz; ``None`` is the Nyquist frequency.
    n_mfcc : int
        Cepstral coefficients kept, including c0.
    energy : {"c0", "log_energy"}
        Keep c0 as the first coefficient, or replace it with the natural log of the raw
        frame energy (sum of squared samples before pre-emphasis and windowing).
    top_db : float or None
        Log-mel values are clipped at ``top_db`` below the utterance's maximum (librosa's
        ``power_to_db`` convention); ``None`` disables clipping.
    deltas : int
        0 (static only), 1 (+ deltas) or 2 (+ deltas and delta-deltas).
    delta_window : int
        Half-width ``N`` of the delta filter: ``librosa.feature.delta`` with
        ``width = 2 N + 1`` (a Savitzky-Golay derivative filter, edges by polynomial
        interpolation, ``mode="interp"``); the second-order deltas are its ``order=2``
        filter, not deltas of deltas. An utterance with fewer than ``2 N + 1`` frames
        (before the VAD) cannot be filtered that way and fails with an
        :class:`~gmmspeech.AudioError` (counted as a per-utterance failure by extraction).
    vad : {"energy", "gmm", "none"}
        Voice activity detection on the frame log-energy (dB relative to full scale).
        ``energy``: keep frames within ``vad_threshold_db`` of the ``vad_quantile`` quantile
        of the utterance's frame energies. ``gmm``: fit two Gaussians to the frame energies
        and keep the frames more likely under the louder one. Both also drop every frame
        quieter than ``vad_floor_db``. ``none`` keeps every frame.
    vad_threshold_db : float
        Dynamic range kept by ``vad="energy"``, in dB below the reference level.
    vad_quantile : float
        Quantile of the frame energies used as the reference level (robust to clicks).
    vad_floor_db : float
        Absolute floor in dBFS (0 dB = a full-scale square wave); quieter frames are never
        speech, so digital silence is always dropped.
    normalization : {"none", "cmn", "cmvn", "sliding_cmn", "sliding_cmvn", "warp"}
        Per-utterance mean (and variance) normalisation over the frames kept by the VAD,
        the same over a sliding window of ``norm_window`` frames, or feature warping to a
        standard normal over that window (Pelecanos & Sridharan 2001).
    norm_window : int
        Window (frames, odd) of the sliding normalisations and of warping.
    """

    sample_rate: int = 16000
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    n_fft: int | None = None
    center: bool = True
    window: str = "hamming"
    pre_emphasis: float = 0.97
    n_mels: int = 40
    fmin: float = 20.0
    fmax: float | None = None
    n_mfcc: int = 20
    energy: str = "c0"
    top_db: float | None = 80.0
    deltas: int = 2
    delta_window: int = 2
    vad: str = "energy"
    vad_threshold_db: float = 30.0
    vad_quantile: float = 0.99
    vad_floor_db: float = -75.0
    normalization: str = "cmvn"
    norm_window: int = 301

    def __post_init__(self) -> None:
        # Coerce numbers so that 25 and 25.0 (e.g. from YAML) give the same config hash.
        for name in _FEATURE_FLOATS:
            value = getattr(self, name)
            if value is None and name in ("fmax", "top_db"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name}: must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in _FEATURE_INTS:
            value = getattr(self, name)
            if value is None and name == "n_fft":
                continue
            if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            ):
                raise ConfigError(f"{name}: must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        _check(
            isinstance(self.sample_rate, int) and 1000 <= self.sample_rate <= 384000,
            "sample_rate",
            "an integer rate in Hz in [1000, 384000]",
            self.sample_rate,
        )
        _check(self.frame_length_ms > 0, "frame_length_ms", "> 0", self.frame_length_ms)
        _check(self.frame_shift_ms > 0, "frame_shift_ms", "> 0", self.frame_shift_ms)
        _check(
            self.win_length >= 2, "frame_length_ms", "at least 2 samples long", self.frame_length_ms
        )
        _check(
            self.hop_length >= 1, "frame_shift_ms", "at least 1 sample long", self.frame_shift_ms
        )
        _check(
            self.n_fft is None or (isinstance(self.n_fft, int) and self.n_fft >= self.win_length),
            "n_fft",
            f"None or an integer >= the window length ({self.win_length} samples)",
            self.n_fft,
        )
        _check(isinstance(self.center, bool), "center", "true or false", self.center)
        _check(
            isinstance(self.window, str) and bool(self.window),
            "window",
            "a window name",
            self.window,
        )
        _check(0 <= self.pre_emphasis < 1, "pre_emphasis", "in [0, 1)", self.pre_emphasis)
        _check(
            isinstance(self.n_mels, int) and self.n_mels >= 1,
            "n_mels",
            "an integer >= 1",
            self.n_mels,
        )
        nyquist = self.sample_rate / 2
        _check(0 <= self.fmin < nyquist, "fmin", f"in [0, {nyquist:g}) Hz (Nyquist)", self.fmin)
        _check(
            self.fmax is None or self.fmin < self.fmax <= nyquist,
            "fmax",
            f"None or in (fmin, {nyquist:g}] Hz (Nyquist)",
            self.fmax,
        )
        _check(
            isinstance(self.n_mfcc, int) and 1 <= self.n_mfcc <= self.n_mels,
            "n_mfcc",
            f"an integer in [1, n_mels={self.n_mels}]",
            self.n_mfcc,
        )
        _check(self.energy in _ENERGY_MODES, "energy", f"one of {_ENERGY_MODES}", self.energy)
        _check(self.top_db is None or self.top_db > 0, "top_db", "None or > 0", self.top_db)
        _check(self.deltas in (0, 1, 2), "deltas", "0, 1 or 2", self.deltas)
        _check(
            isinstance(self.delta_window, int) and self.delta_window >= 1,
            "delta_window",
            "an integer >= 1",
            self.delta_window,
        )
        _check(self.vad in _VAD_MODES, "vad", f"one of {_VAD_MODES}", self.vad)
        _check(self.vad_threshold_db > 0, "vad_threshold_db", "> 0", self.vad_threshold_db)
        _check(0 < self.vad_quantile <= 1, "vad_quantile", "in (0, 1]", self.vad_quantile)
        _check(self.vad_floor_db < 0, "vad_floor_db", "< 0 dBFS", self.vad_floor_db)
        _check(
            self.normalization in _NORM_MODES,
            "normalization",
            f"one of {_NORM_MODES}",
            self.normalization,
        )
        _check(
            isinstance(self.norm_window, int)
            and self.norm_window >= 3
            and self.norm_window % 2 == 1,
            "norm_window",
            "an odd integer >= 3",
            self.norm_window,
        )

    @property
    def win_length(self) -> int:
        """Window length in samples at :attr:`sample_rate`."""
        return int(round(self.sample_rate * self.frame_length_ms / 1000.0))

    @property
    def hop_length(self) -> int:
        """Frame shift in samples at :attr:`sample_rate`."""
        return int(round(self.sample_rate * self.frame_shift_ms / 1000.0))

    @property
    def fft_size(self) -> int:
        """The FFT size actually used (``n_fft`` or the next power of two)."""
        if self.n_fft is not None:
            return int(self.n_fft)
        return 1 << (self.win_length - 1).bit_length()

    @property
    def n_features(self) -> int:
        """Feature dimension: ``n_mfcc * (deltas + 1)``."""
        return self.n_mfcc * (self.deltas + 1)


@dataclass(frozen=True)
class ExtractConfig:
    """How :func:`gmmspeech.extract_to_store` runs (the features depend on
    :class:`FeatureConfig` alone).

    Parameters
    ----------
    max_failed_fraction : float
        The run fails (no store written; finished work kept for a rerun) when more than this
        fraction of the utterances failed, or none succeeded.
    batch_size : int
        Utterances per part file: a killed run loses at most this many utterances of work.
    processes : int or None
        Worker processes of ``gmmspeech run``'s extract stage when ``compute.backend`` is
        ``local`` (other backends extract on their own workers). None: ``min(CPUs, 4)``;
        0: in the run's own process.
    """

    max_failed_fraction: float = 0.05
    batch_size: int = 256
    processes: int | None = None

    def __post_init__(self) -> None:
        normalise(self)
        check_in(self, "max_failed_fraction", "[0, 1]")
        batch = self.batch_size
        ok = isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1
        _check(ok, "batch_size", "an integer >= 1", batch)
        n = self.processes
        ok = n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 0)
        _check(ok, "processes", "null or an integer >= 0", n)
