"""Configuration dataclasses: the only place where defaults live.

Each stage has a frozen dataclass. ``to_dict`` / ``config_hash`` give the JSON form stored
next to outputs and a stable hash used to decide whether a stage's output is up to date.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-compatible dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_hash(cfg: Any) -> str:
    """A stable 16-hex-digit hash of a config dataclass or JSON-compatible dict."""
    data = cfg if isinstance(cfg, dict) else to_dict(cfg)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _check(cond: bool, name: str, rule: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{name}: must be {rule}, got {value!r}")


@dataclass(frozen=True)
class UBMConfig:
    """Options of UBM training (:func:`gmmspeech.train_ubm`).

    Parameters
    ----------
    n_components : int
        Target number of Gaussians. Any positive integer: binary splitting up to the largest
        power of two below it, then the heaviest components only (never rounded).
    iterations_per_stage : tuple of int
        EM iterations after each split; stage ``j`` (after the ``j``-th split) runs entry
        ``j - 1``, and the last entry repeats for later stages.
    final_max_iterations : int
        At the target size, after the scheduled iterations, EM continues until the relative
        change of the mean log-likelihood per frame falls below ``tolerance`` or this many
        extra iterations have run.
    tolerance : float
        Relative log-likelihood change that ends the final stage.
    split_epsilon : float
        Split offset in standard deviations: means ``mu -/+ split_epsilon * sigma`` along
        each component's highest-variance dimension.
    var_floor_ratio : float
        Variance floor as a fraction of the global per-dimension variance of the data,
        applied at every M-step.
    min_count : float
        A component with fewer (soft) frames than this is dead and re-seeded.
    min_weight : float
        A component with a smaller weight than this is dead and re-seeded.
    chunk_size : int
        Frames per block in the E-step (memory O(chunk_size x K)).
    shard_frames : int
        Frames per map-reduce task (engines other than the in-process one run shards in
        parallel; the split never depends on the number of workers).
    max_frames : int or None
        If in-memory data has more frames, train on a seeded random subset of this many.
    subsample_every : int
        Train on every k-th frame of each utterance (1: all frames).
    subsample_fraction : float or None
        Train on a seeded random fraction of each utterance's frames.
    random_state : int
        Seed of ``max_frames`` and ``subsample_fraction`` (training is otherwise
        deterministic).
    """

    n_components: int = 512
    iterations_per_stage: tuple[int, ...] = (1, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8)
    final_max_iterations: int = 10
    tolerance: float = 1e-4
    split_epsilon: float = 0.5
    var_floor_ratio: float = 1e-2
    min_count: float = 10.0
    min_weight: float = 1e-5
    chunk_size: int = 2048
    shard_frames: int = 262_144
    max_frames: int | None = None
    subsample_every: int = 1
    subsample_fraction: float | None = None
    random_state: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "iterations_per_stage", tuple(self.iterations_per_stage))
        _check(int(self.n_components) >= 1, "n_components", ">= 1", self.n_components)
        _check(
            len(self.iterations_per_stage) >= 1
            and all(int(i) >= 0 for i in self.iterations_per_stage),
            "iterations_per_stage",
            "a non-empty list of iteration counts >= 0",
            self.iterations_per_stage,
        )
        _check(
            self.final_max_iterations >= 0,
            "final_max_iterations",
            ">= 0",
            self.final_max_iterations,
        )
        _check(self.tolerance >= 0, "tolerance", ">= 0", self.tolerance)
        _check(0 < self.split_epsilon <= 5, "split_epsilon", "in (0, 5]", self.split_epsilon)
        _check(0 <= self.var_floor_ratio < 1, "var_floor_ratio", "in [0, 1)", self.var_floor_ratio)
        _check(self.min_count >= 0, "min_count", ">= 0", self.min_count)
        _check(0 <= self.min_weight < 1, "min_weight", "in [0, 1)", self.min_weight)
        _check(self.chunk_size >= 1, "chunk_size", ">= 1", self.chunk_size)
        _check(self.shard_frames >= 1, "shard_frames", ">= 1", self.shard_frames)
        _check(
            self.max_frames is None or self.max_frames >= 1,
            "max_frames",
            "None or >= 1",
            self.max_frames,
        )
        _check(self.subsample_every >= 1, "subsample_every", ">= 1", self.subsample_every)
        _check(
            self.subsample_fraction is None or 0.0 < self.subsample_fraction <= 1.0,
            "subsample_fraction",
            "None or in (0, 1]",
            self.subsample_fraction,
        )


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
        Analysis window length in milliseconds. Frame ``t`` covers samples
        ``[t * shift, t * shift + length)`` (no padding at the edges, like Kaldi's
        ``snip-edges``), so a clip shorter than one window gives no frame.
    frame_shift_ms : float
        Hop between frames in milliseconds.
    n_fft : int or None
        FFT size; ``None`` is the next power of two at or above the window length.
    window : str
        Window function name understood by ``scipy.signal.get_window`` (e.g. ``hamming``).
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
        Half-width ``N`` of the delta regression ``sum_n n (c[t+n] - c[t-n]) / (2 sum_n n^2)``,
        with the first and last frames repeated at the edges.
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
