"""Configuration dataclasses: the only place where defaults live.

Each stage has a frozen dataclass. ``to_dict`` / ``config_hash`` give the JSON form stored
next to outputs and a stable hash used to decide whether a stage's output is up to date.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

_T = TypeVar("_T")


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
    """How :func:`gmmspeech.extract_to_store` runs (not what it computes: the store's
    features depend on :class:`FeatureConfig` alone).

    Parameters
    ----------
    max_failed_fraction : float
        The run fails (no store written; finished work kept for a rerun) when more than
        this fraction of the data directory's utterances failed, or when none succeeded.
    batch_size : int
        Utterances per part file: a killed run loses at most this many utterances of work.
    """

    max_failed_fraction: float = 0.05
    batch_size: int = 256

    def __post_init__(self) -> None:
        _check(
            not isinstance(self.max_failed_fraction, bool) and 0 <= self.max_failed_fraction <= 1,
            "max_failed_fraction",
            "in [0, 1]",
            self.max_failed_fraction,
        )
        _check(
            isinstance(self.batch_size, int)
            and not isinstance(self.batch_size, bool)
            and self.batch_size >= 1,
            "batch_size",
            "an integer >= 1",
            self.batch_size,
        )


# ============================================================================ experiments
_TASKS = ("verification", "classification")
_FOLD_BY = ("rank", "spk")
_SCORING_METHODS = ("exact", "topc", "linear")
_NORMS = ("none", "z", "t", "zt", "s", "as")
_BACKENDS = ("local", "processes", "dask")


@dataclass(frozen=True)
class SetConfig:
    """A set of audio files under ``data.root`` found by a path pattern.

    Parameters
    ----------
    path : str
        Folder searched recursively, relative to ``data.root`` (or absolute).
    pattern : str
        Layout of the file paths relative to ``path`` with named fields, e.g.
        ``{spk}/{spk}-{chapter}-{utt}.flac`` (see :func:`gmmspeech.datadir.compile_pattern`).
    utt_id : str or None
        Utterance id template over the fields (default: speaker, then the other fields).
    spk_field : str or None
        Field naming the speaker (each file is its own speaker when the pattern lacks it).
    label_field : str or None
        Field naming the class label (``utt2label``).
    include : tuple of str
        List files (relative to ``data.root``): only audio whose path relative to
        ``data.root`` appears in the first column (a ``file`` column of a CSV with a header)
        of one of them is kept, e.g. the train/val/test CSVs of a corpus.
    max_speakers : int or None
        Keep only the first this many speakers (sorted ids), e.g. for quick runs.
    max_per_speaker : int or None
        Keep only the first this many utterances (sorted ids) of each speaker.
    """

    path: str = "."
    pattern: str = ""
    utt_id: str | None = None
    spk_field: str | None = "spk"
    label_field: str | None = "label"
    include: tuple[str, ...] = ()
    max_speakers: int | None = None
    max_per_speaker: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "include", tuple(self.include))
        _check(bool(self.pattern), "pattern", "a non-empty path pattern with fields", self.pattern)
        _check(
            self.max_speakers is None or self.max_speakers >= 1,
            "max_speakers",
            "None or >= 1",
            self.max_speakers,
        )
        _check(
            self.max_per_speaker is None or self.max_per_speaker >= 1,
            "max_per_speaker",
            "None or >= 1",
            self.max_per_speaker,
        )


@dataclass(frozen=True)
class DataConfig:
    """Where the audio is and how it is split (:mod:`gmmspeech.pipeline`, stage ``prepare``).

    Parameters
    ----------
    root : str
        Corpus folder. In a YAML file a relative root is relative to the file's folder; in a
        ``--set data.root=...`` override, to the current directory.
    background : SetConfig or None
        Verification: the speakers the UBM is trained on (also the score-normalisation
        cohort).
    targets : SetConfig or None
        Verification: the speakers enrolled and tested.
    enroll_fraction : float
        Verification: fraction of each target speaker's utterances used for enrolment
        (seeded draw; at least one utterance each side). Ignored with ``enroll_labels``.
    enroll_labels : tuple of str
        Verification: enrol on the utterances with these labels, test on the others.
    trials : str or None
        Verification: a trial list ``<model> <test-utt> target|nontarget`` to use instead of
        every (model, test utterance) pair.
    dataset : SetConfig or None
        Classification: the labelled files.
    n_folds : int
        Classification: cross-validation folds.
    fold_by : {"rank", "spk"}
        Classification: fold of a file = its rank within its class modulo ``n_folds``
        (``rank``), or whole speakers per fold (``spk``: speakers in sorted order, dealt
        round-robin).
    seed : int
        Seed of the enrolment/test draw.
    """

    root: str = "."
    background: SetConfig | None = None
    targets: SetConfig | None = None
    enroll_fraction: float = 0.5
    enroll_labels: tuple[str, ...] = ()
    trials: str | None = None
    dataset: SetConfig | None = None
    n_folds: int = 5
    fold_by: str = "rank"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "enroll_labels", tuple(self.enroll_labels))
        _check(0 < self.enroll_fraction < 1, "enroll_fraction", "in (0, 1)", self.enroll_fraction)
        _check(self.n_folds >= 2, "n_folds", ">= 2", self.n_folds)
        _check(self.fold_by in _FOLD_BY, "fold_by", f"one of {_FOLD_BY}", self.fold_by)


@dataclass(frozen=True)
class EnrollConfig:
    """MAP adaptation of speaker (or class) models (:func:`gmmspeech.enroll`).

    Parameters
    ----------
    relevance_factor : float
        MAP relevance factor ``r`` (Reynolds et al. 2000).
    adapt : str
        Parameters adapted: a combination of ``m`` (means), ``w`` (weights), ``v``
        (variances).
    """

    relevance_factor: float = 16.0
    adapt: str = "m"

    def __post_init__(self) -> None:
        _check(self.relevance_factor > 0, "relevance_factor", "> 0", self.relevance_factor)
        _check(
            bool(self.adapt) and set(self.adapt) <= set("mwv"),
            "adapt",
            "a combination of m, w, v",
            self.adapt,
        )


@dataclass(frozen=True)
class ScoringConfig:
    """Scoring, score normalisation and the decision costs of the evaluation.

    Parameters
    ----------
    method : {"exact", "topc", "linear"}
        LLR scoring (:func:`gmmspeech.score_trials`).
    top_c : int
        C of top-C scoring.
    norm : {"none", "z", "t", "zt", "s", "as"}
        Score normalisation with the background speakers as cohort.
    cohort_size : int or None
        Use at most this many background speakers (sorted ids) as the cohort.
    top_n : int
        Cohort scores kept per side by adaptive S-norm (``as``).
    p_target, c_miss, c_fa : float
        Detection cost function parameters of minDCF.
    """

    method: str = "topc"
    top_c: int = 5
    norm: str = "none"
    cohort_size: int | None = None
    top_n: int = 200
    p_target: float = 0.01
    c_miss: float = 1.0
    c_fa: float = 1.0

    def __post_init__(self) -> None:
        _check(self.method in _SCORING_METHODS, "method", f"one of {_SCORING_METHODS}", self.method)
        _check(self.top_c >= 1, "top_c", ">= 1", self.top_c)
        _check(self.norm in _NORMS, "norm", f"one of {_NORMS}", self.norm)
        _check(
            self.cohort_size is None or self.cohort_size >= 2,
            "cohort_size",
            "None or >= 2",
            self.cohort_size,
        )
        _check(self.top_n >= 2, "top_n", ">= 2", self.top_n)
        _check(0 < self.p_target < 1, "p_target", "in (0, 1)", self.p_target)
        _check(self.c_miss > 0, "c_miss", "> 0", self.c_miss)
        _check(self.c_fa > 0, "c_fa", "> 0", self.c_fa)


@dataclass(frozen=True)
class ComputeConfig:
    """Where the work runs (:func:`gmmspeech.make_engine`).

    Parameters
    ----------
    backend : {"local", "processes", "dask"}
        UBM E-steps in this process, in a local process pool, or on a Dask cluster.
    n_workers : int or None
        Workers of the pool or local Dask cluster (None: the number of CPUs); with
        ``processes`` also the feature-extraction processes.
    scheduler_address : str or None
        Address of a running Dask scheduler (``dask`` only; None starts a local cluster).
    threads_per_worker : int
        BLAS threads per worker.
    """

    backend: str = "local"
    n_workers: int | None = None
    scheduler_address: str | None = None
    threads_per_worker: int = 1

    def __post_init__(self) -> None:
        _check(self.backend in _BACKENDS, "backend", f"one of {_BACKENDS}", self.backend)
        _check(
            self.n_workers is None or self.n_workers >= 1,
            "n_workers",
            "None or >= 1",
            self.n_workers,
        )
        _check(self.threads_per_worker >= 1, "threads_per_worker", ">= 1", self.threads_per_worker)


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment (``gmmspeech run``): every stage's options in one place.

    Parameters
    ----------
    name : str
        Experiment name (used in the report and the default output folder).
    task : {"verification", "classification"}
    out_dir : str or None
        Experiment folder (relative to the current directory); None is ``exp/<name>``.
    data, features, extract, ubm, enroll, scoring, compute
        The stage configurations.
    """

    name: str = "experiment"
    task: str = "verification"
    out_dir: str | None = None
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    extract: ExtractConfig = dataclasses.field(default_factory=ExtractConfig)
    ubm: UBMConfig = dataclasses.field(default_factory=UBMConfig)
    enroll: EnrollConfig = dataclasses.field(default_factory=EnrollConfig)
    scoring: ScoringConfig = dataclasses.field(default_factory=ScoringConfig)
    compute: ComputeConfig = dataclasses.field(default_factory=ComputeConfig)

    def __post_init__(self) -> None:
        _check(self.task in _TASKS, "task", f"one of {_TASKS}", self.task)
        _check(
            bool(self.name) and not any(c in self.name for c in "/\\"),
            "name",
            "a non-empty name without slashes",
            self.name,
        )
        if self.task == "verification":
            for key in ("background", "targets"):
                if getattr(self.data, key) is None:
                    raise ConfigError(
                        f"data.{key}: required for task 'verification'; add a 'data: {key}:' "
                        f"section with 'path' and 'pattern'"
                    )
        elif self.data.dataset is None:
            raise ConfigError(
                "data.dataset: required for task 'classification'; add a 'data: dataset:' "
                "section with 'path' and 'pattern' (the pattern needs a {label} field)"
            )


# ------------------------------------------------------------------------- YAML layer
def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(tp: Any, value: Any, key: str, where: str, ctx: _BuildContext) -> Any:
    """Check ``value`` against the annotation ``tp`` (YAML types) and convert it."""
    import types
    import typing

    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:
            return _coerce(others[0], value, key, where, ctx)
        raise ConfigError(f"{where}: {key}: unsupported annotation {tp!r}")  # pragma: no cover
    if origin is tuple:
        item_tp = typing.get_args(tp)[0]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"{where}: {key}: expected a list (e.g. [1, 2]), got {value!r}; write it as a "
                f"YAML list"
            )
        return tuple(_coerce(item_tp, v, f"{key}[{i}]", where, ctx) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(
                f"{where}: {key}: expected a mapping of {getattr(tp, '__name__', tp)} options, got {value!r}"
            )
        return _build(tp, value, key + ".", ctx)
    if tp is str and not isinstance(value, str) and key in ctx.raw:
        return ctx.raw[key]  # --set name=2024: the text as typed
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:  # pragma: no cover - every config field has one of the types above
        return value
    if not ok:
        none_ok = " or null" if key in ctx.optional else ""
        raise ConfigError(
            f"{where}: {key}: expected {_type_name(tp)}{none_ok}, got {value!r} "
            f"({type(value).__name__})"
        )
    return float(value) if tp is float else value


@dataclass
class _BuildContext:
    marks: dict[str, str]
    default_where: str
    raw: dict[str, str] = dataclasses.field(default_factory=dict)
    optional: set[str] = dataclasses.field(default_factory=set)


def _build(cls: Any, values: dict[str, Any], prefix: str, ctx: _BuildContext) -> Any:
    import typing

    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    section_where = ctx.marks.get(prefix.rstrip("."), ctx.default_where)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        where = ctx.marks.get(dotted, section_where)
        if not isinstance(key, str) or key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = (
                f"; did you mean {prefix + close[0]!r}?"
                if close
                else f"; known keys here: {', '.join(names)}"
            )
            raise ConfigError(f"{where}: unknown key {dotted!r}{hint}")
        tp = hints[key]
        if type(None) in typing.get_args(tp):
            ctx.optional.add(dotted)
        kwargs[key] = _coerce(tp, value, dotted, where, ctx)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        msg = str(exc)
        field = msg.split(":", 1)[0]
        if field in names:
            where = ctx.marks.get(prefix + field, section_where)
            raise ConfigError(f"{where}: {prefix}{msg}") from None
        raise ConfigError(f"{section_where}: {msg}") from None


def _collect_marks(node: Any, prefix: str, where: str, marks: dict[str, str]) -> None:
    """Record ``file:line`` of every mapping key (dotted) and reject duplicate keys."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        line = key_node.start_mark.line + 1
        dotted = f"{prefix}{key}"
        if key in seen:
            raise ConfigError(
                f"{where}:{line}: duplicate key {dotted!r} (first at line {seen[key]}); "
                f"keep only one"
            )
        seen[key] = line
        marks[dotted] = f"{where}:{line}"
        _collect_marks(value_node, dotted + ".", where, marks)


def read_yaml(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a YAML config file with ``yaml.safe_load`` (plain data only, no tags).

    Returns
    -------
    values : dict
        The top-level mapping (empty for an empty file).
    marks : dict of str to str
        Dotted key -> ``"file:line"`` of the key, for error messages.

    Raises
    ------
    ConfigError
        Unreadable file, invalid YAML (with its line), duplicate keys, or a top level that
        is not a mapping.
    """
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the config ({exc})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"{p}{line}: not valid YAML ({problem}); configs are plain YAML mappings (no !tags)"
        ) from None
    if values is None:
        return {}, {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"{p}:1: expected a mapping of config sections (e.g. 'ubm: {{n_components: 512}}'), "
            f"got {type(values).__name__}"
        )
    marks: dict[str, str] = {}
    _collect_marks(node, "", str(p), marks)
    return values, marks


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``"ubm.n_components=256"`` into the dotted key and its YAML value.

    A value that is not valid YAML is kept as its text (string options such as patterns);
    the type check of the option then decides whether that is acceptable.
    """
    import yaml

    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"--set {item}: expected KEY=VALUE with a dotted key, e.g. --set ubm.n_components=256"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML (e.g. a pattern like {spk}-{idx}): the text itself
    return key, value


def apply_overrides(
    values: dict[str, Any],
    overrides: Sequence[str],
    marks: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Apply ``--set key=value`` overrides to a nested dict (a deep copy is returned)."""
    out = copy.deepcopy(values)
    for item in overrides:
        key, value = parse_override(item)
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if not isinstance(child, dict):
                if child is not None:
                    raise ConfigError(
                        f"--set {item}: {'.'.join(parts[: i + 1])} is not a section "
                        f"(it holds {child!r})"
                    )
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
        if marks is not None:
            for i in range(1, len(parts) + 1):
                marks[".".join(parts[:i])] = f"--set {item}"
        if raw is not None:
            raw[key] = item.partition("=")[2]
    return out


def config_from_dict(
    cls: type[_T],
    values: dict[str, Any],
    *,
    where: str = "config",
    marks: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    prefix: str = "",
) -> _T:
    """Build a config dataclass (nested sections included) from plain YAML data.

    Every key is checked (unknown keys get a "did you mean" suggestion), every value is
    type-checked against the field's annotation, and the dataclass's own validation runs;
    errors name ``file:line`` (from ``marks``, keyed by dotted key) and the dotted key
    (``prefix`` + key, e.g. ``prefix="ubm."`` for the ``ubm`` section of a file).
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    ctx = _BuildContext(marks=dict(marks or {}), default_where=where, raw=dict(raw or {}))
    return _build(cls, values, prefix, ctx)


def _resolve_paths(values: dict[str, Any], marks: dict[str, str], config_dir: Path) -> None:
    """Make ``data.root`` and ``data.trials`` absolute: relative to the config file's folder,
    or to the current directory when they come from a ``--set`` override."""
    data = values.get("data")
    if not isinstance(data, dict):
        return
    for key in ("root", "trials"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            continue
        p = Path(value).expanduser()
        if not p.is_absolute():
            from_cli = marks.get(f"data.{key}", "").startswith("--set")
            p = (Path.cwd() if from_cli else config_dir) / p
        data[key] = str(p.resolve())


def load_experiment_config(
    path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """Read an experiment YAML file, apply ``--set`` overrides and validate everything.

    Parameters
    ----------
    path : path-like or None
        The YAML file (``yaml.safe_load``); None starts from the defaults.
    overrides : sequence of str
        ``"section.key=value"`` items; values are YAML (``256``, ``[1, 2]``, ``null``) and
        are type-checked like the file's.

    Returns
    -------
    ExperimentConfig
        With ``data.root`` and ``data.trials`` made absolute.

    Raises
    ------
    ConfigError
        Naming ``file:line`` (or the ``--set`` item), the dotted key, what was expected and
        what was found.
    """
    if path is None:
        values: dict[str, Any] = {}
        marks: dict[str, str] = {}
        where, config_dir = "config", Path.cwd()
    else:
        values, marks = read_yaml(path)
        where, config_dir = str(path), Path(path).resolve().parent
    raw: dict[str, str] = {}
    values = apply_overrides(values, overrides, marks, raw)
    _resolve_paths(values, marks, config_dir)
    return config_from_dict(ExperimentConfig, values, where=where, marks=marks, raw=raw)


def dump_yaml(cfg: Any) -> str:
    """The resolved config as YAML text (every field, defaults included), with its hash."""
    import yaml

    data = to_dict(cfg)
    head = f"# resolved gmmspeech config; config_hash: {config_hash(data)}\n"
    return head + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def load_sections(
    path: str | os.PathLike[str] | None,
    overrides: Sequence[str],
    sections: dict[str, type],
    *,
    bare: str | None = None,
) -> dict[str, Any]:
    """Some sections of a config file, with ``--set`` overrides, typed and validated.

    For commands that need part of an experiment config (``train-ubm``: ``ubm`` and
    ``compute``; ``extract``: ``features`` and ``compute``). An experiment config file works
    as it is; its other sections are checked for unknown names only.

    Parameters
    ----------
    path : path-like or None
        A YAML file (``yaml.safe_load``); None starts from the defaults.
    overrides : sequence of str
        ``section.key=value`` items.
    sections : dict of str to dataclass type
        The sections to build, e.g. ``{"ubm": UBMConfig}``.
    bare : str, optional
        A section whose keys may also be given at the top level of the file (when it has no
        section names) and in undotted ``--set key=value`` items.

    Returns
    -------
    dict of str to dataclass instance
        One built config per requested section.

    Raises
    ------
    ConfigError
        Unknown section or key (with a suggestion), wrong type or invalid value, naming the
        file:line or the ``--set`` item.
    """
    values: dict[str, Any] = {}
    marks: dict[str, str] = {}
    where = "config"
    if path is not None:
        values, marks = read_yaml(path)
        where = str(path)
    names = [f.name for f in dataclasses.fields(ExperimentConfig)]
    if bare is not None:
        if values and not any(k in names for k in values):
            values = {bare: values}
            marks = {f"{bare}.{k}": v for k, v in marks.items()}
        overrides = [o if "." in o.partition("=")[0] else f"{bare}.{o}" for o in overrides]
    raw: dict[str, str] = {}
    values = apply_overrides(values, overrides, marks, raw)
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; sections are {names}"
            raise ConfigError(f"{marks.get(str(key), where)}: unknown section {key!r}{hint}")
    out: dict[str, Any] = {}
    for name, cls in sections.items():
        section = values.get(name) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{marks.get(name, where)}: {name}: expected a mapping of options")
        out[name] = config_from_dict(
            cls, section, where=where, marks=marks, raw=raw, prefix=f"{name}."
        )
    return out
