"""Configuration dataclasses, one frozen dataclass per stage: the only place defaults live.

Each checks its values when built; a rule the library applies too (:func:`check_adapt`,
:func:`check_relevance_factor`) is stated here once and called from both sides. ``to_dict``
and ``config_hash`` come from ``_configbase``; YAML is :mod:`.configio`."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from ..errors import ConfigError, short_repr
from .base import check as _check
from .base import check_choice, check_in, check_min, normalise
from .base import config_hash as config_hash  # the JSON form and hash, re-exported
from .base import to_dict as to_dict
from .data import DataConfig as DataConfig  # the data sections, re-exported
from .data import SetConfig as SetConfig
from .fusion import FusedSystem as FusedSystem  # the fusion sections, re-exported
from .fusion import FusionConfig as FusionConfig
from .fusion import check_fusion_system
from .ivector import SYSTEMS
from .ivector import BackendConfig as BackendConfig  # the i-vector sections, re-exported
from .ivector import IVectorConfig as IVectorConfig

# ------------------------------------------------------------- rules the library shares
ADAPT_LETTERS = "mwv"


def check_adapt(adapt: str) -> str:
    """The canonical form (letters in the order ``mwv``) of a MAP ``adapt`` string: a
    non-empty combination of ``m`` (means), ``w`` (weights) and ``v`` (variances), each at
    most once; a :class:`ConfigError` for anything else (e.g. ``"mm"``)."""
    text = adapt if isinstance(adapt, str) else ""
    if not text or not set(text) <= set(ADAPT_LETTERS) or len(set(text)) != len(text):
        raise ConfigError(
            f"adapt: expected a non-empty combination of 'm' (means), 'w' (weights) and "
            f"'v' (variances), each at most once, e.g. 'm' or 'mwv'; got {short_repr(adapt)}"
        )
    return "".join(ch for ch in ADAPT_LETTERS if ch in text)


def check_relevance_factor(relevance_factor: float) -> float:
    """A MAP relevance factor ``r`` (``alpha_k = n_k / (n_k + r)``) as a float: ``r >= 0``
    (0 gives the ML estimate under the UBM's responsibilities, ``inf`` the UBM itself); a
    :class:`ConfigError` for NaN, negative or non-numbers."""
    ok = isinstance(relevance_factor, numbers.Real) and not isinstance(relevance_factor, bool)
    r = float(relevance_factor) if ok else math.nan
    if not r >= 0.0:
        rule = "a number >= 0 (16 is usual; .inf keeps the UBM)"
        raise ConfigError(f"relevance_factor: must be {rule}, got {short_repr(relevance_factor)}")
    return r


@dataclass(frozen=True)
class UBMConfig:
    """Options of UBM training (:func:`gmmspeech.train_ubm`).

    Parameters
    ----------
    n_components : int
        Target number of Gaussians. Binary splitting up to the largest power of two below
        it, then the heaviest components only (never rounded).
    iterations_per_stage : tuple of int
        EM iterations after each split: stage ``j`` runs entry ``j - 1``, the last repeats.
    final_max_iterations, tolerance : int, float
        At the target size EM then runs until the relative change of the mean log-likelihood
        per frame is below ``tolerance``, at most ``final_max_iterations`` more iterations.
        A ConvergenceWarning says the cap was reached (news: 512 components take about 8).
    split_epsilon : float
        Split offset: means ``mu -/+ split_epsilon * sigma`` along the highest-variance axis.
    var_floor_ratio : float
        Variance floor, a fraction of the data's global per-dimension variance (every M-step).
    min_count, min_weight : float
        A component with fewer (soft) frames or a smaller weight is dead and re-seeded.
    chunk_size : int
        Frames per block in the E-step (memory O(chunk_size x K)).
    shard_frames : int
        Frames per map-reduce task (the split never depends on the number of workers).
    max_frames : int or None
        If in-memory data has more frames, train on a seeded random subset of this many.
    subsample_every : int
        Train on every k-th frame of each utterance (1: all frames).
    subsample_fraction : float or None
        Train on a seeded random fraction of each utterance's frames.
    random_state : int
        Seed of ``max_frames`` and ``subsample_fraction`` (training is otherwise deterministic).
    selection : {"auto", "dense"}
        ``auto``: Gaussian selection from 256 components on (:mod:`gmmspeech.mixture.selection`).
    """

    n_components: int = 512
    iterations_per_stage: tuple[int, ...] = (1, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8)
    final_max_iterations: int = 20
    tolerance: float = 2e-4
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
    selection: str = "auto"

    def __post_init__(self) -> None:
        normalise(self)
        check_min(self, "n_components", 1)
        check_choice(self, "selection", ("auto", "dense"))
        its = self.iterations_per_stage
        ok = len(its) >= 1 and all(int(i) >= 0 for i in its)
        _check(ok, "iterations_per_stage", "a non-empty list of iteration counts >= 0", its)
        for name in ("final_max_iterations", "tolerance", "min_count"):
            check_min(self, name, 0)
        for name in ("chunk_size", "shard_frames", "subsample_every"):
            check_min(self, name, 1)
        check_min(self, "max_frames", 1, optional=True)
        check_in(self, "split_epsilon", "(0, 5]")
        check_in(self, "var_floor_ratio", "[0, 1)")
        check_in(self, "min_weight", "[0, 1)")
        check_in(self, "subsample_fraction", "(0, 1]", optional=True)


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


# ============================================================================ experiments
TASKS = ("verification", "classification")
#: LLR scoring methods (``scoring.method``).
SCORING_METHODS = ("exact", "topc", "linear")
#: Score normalisations (``scoring.norm``).
NORMS = ("none", "z", "t", "zt", "s", "as")
#: Sources of the calibration trials (``scoring.calibration_trials``).
CALIBRATION_SOURCES = ("background", "enroll")

#: Engines (``compute.backend``).
BACKENDS = ("local", "processes", "dask")


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
        object.__setattr__(self, "relevance_factor", check_relevance_factor(self.relevance_factor))
        object.__setattr__(self, "adapt", check_adapt(self.adapt))


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
    cohort_utts : int or None
        Utterances (first in sorted id order) per cohort model and per model of the
        calibration trials; None: as many as the median target model is enrolled on.
    calibrate : bool
        Train a logistic-regression calibration on trials of the background speakers and
        report calibrated LLRs (verification).
    calibration_trials : {"background", "enroll"}
        The background speakers (split into models and tests, scored with a UBM that has
        not seen them), or folds of the targets' enrolment utterances (never the test ones;
        :mod:`gmmspeech.decisions.enroltrials`), for backgrounds of one utterance per speaker.
    p_target, c_miss, c_fa : float
        Detection cost function parameters of minDCF; ``p_target`` is also the prior the
        calibration is trained for.
    """

    method: str = "topc"
    top_c: int = 5
    norm: str = "none"
    cohort_size: int | None = None
    top_n: int = 200
    cohort_utts: int | None = None
    calibrate: bool = True
    calibration_trials: str = "background"
    p_target: float = 0.01
    c_miss: float = 1.0
    c_fa: float = 1.0

    def __post_init__(self) -> None:
        normalise(self)
        check_choice(self, "method", SCORING_METHODS)
        check_min(self, "top_c", 1)
        check_choice(self, "norm", NORMS)
        check_min(self, "cohort_size", 2, optional=True)
        check_min(self, "top_n", 2)
        check_min(self, "cohort_utts", 1, optional=True)
        _check(isinstance(self.calibrate, bool), "calibrate", "true or false", self.calibrate)
        check_choice(self, "calibration_trials", CALIBRATION_SOURCES)
        check_in(self, "p_target", "(0, 1)")
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
        ``processes`` also the extraction processes.
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
        normalise(self)
        check_choice(self, "backend", BACKENDS)
        check_min(self, "n_workers", 1, optional=True)
        check_min(self, "threads_per_worker", 1)


#: Defaults that differ by task: ``task -> section -> option -> value``, used where a config
#: does not set the option (:func:`task_default`). Classes adapt means and weights: on the
#: FSDD digits (UBM 128) MAP of ``mw`` gave 84.2 % accuracy against 78.4 % for ``m``, on the
#: environmental sounds 93.3 % against 92.8 % (as :class:`gmmspeech.GMMClassifier` does).
TASK_DEFAULTS: dict[str, dict[str, dict[str, object]]] = {
    "classification": {"enroll": {"adapt": "mw"}},
}


def task_default(values: dict[str, object], task: object) -> dict[str, object]:
    """``values`` (a config's sections as plain data) with the options of
    :data:`TASK_DEFAULTS` for ``task`` filled in where the sections do not set them."""
    out = dict(values)
    for section, options in TASK_DEFAULTS.get(task if isinstance(task, str) else "", {}).items():
        given = out.get(section)
        if given is None:
            given = {}
        if isinstance(given, dict):
            out[section] = {**options, **given}
    return out


def check_ivector_system(task: str) -> None:
    """The i-vector system is for verification (any ``scoring.norm``: its cohort is the
    background speakers' i-vectors); a :class:`ConfigError` otherwise."""
    if task != "verification":
        raise ConfigError(f"system: 'ivector' is for task 'verification', not {task!r}")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment (``gmmspeech run``): every stage's options in one place.

    Parameters
    ----------
    name : str
        Experiment name (in the report and the default output folder).
    task : {"verification", "classification"}
    system : {"gmm-ubm", "ivector", "fusion"}
        MAP-adapted speaker GMMs scored against the UBM, i-vectors on the UBM's statistics
        with a back end (``ivector`` and ``backend`` sections), or a fusion of earlier
        experiments' scores (``fusion`` section; no ``data``); the last two verification only.
    out_dir : str or None
        Experiment folder (relative to the current directory); None is ``exp/<name>``.
    data, features, extract, ubm, enroll, scoring, compute, ivector, backend, fusion
        The stage configurations (``enroll`` is read by ``gmm-ubm``, ``ivector`` and
        ``backend`` by ``ivector``, ``fusion`` by ``fusion``).
    """

    name: str = "experiment"
    task: str = "verification"
    system: str = "gmm-ubm"
    out_dir: str | None = None
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    extract: ExtractConfig = dataclasses.field(default_factory=ExtractConfig)
    ubm: UBMConfig = dataclasses.field(default_factory=UBMConfig)
    enroll: EnrollConfig = dataclasses.field(default_factory=EnrollConfig)
    scoring: ScoringConfig = dataclasses.field(default_factory=ScoringConfig)
    compute: ComputeConfig = dataclasses.field(default_factory=ComputeConfig)
    ivector: IVectorConfig = dataclasses.field(default_factory=IVectorConfig)
    backend: BackendConfig = dataclasses.field(default_factory=BackendConfig)
    fusion: FusionConfig = dataclasses.field(default_factory=FusionConfig)

    def __post_init__(self) -> None:
        check_choice(self, "task", TASKS)
        check_choice(self, "system", SYSTEMS)
        if self.system == "ivector":
            check_ivector_system(self.task)
        ok = bool(self.name) and not any(c in self.name for c in "/\\")
        _check(ok, "name", "a non-empty name without slashes", self.name)
        if self.system == "fusion":
            check_fusion_system(self.task, self.fusion)
            return  # the fused experiments hold the data
        if self.task == "verification":
            missing = [k for k in ("background", "targets") if getattr(self.data, k) is None]
        else:
            missing = [] if self.data.dataset is not None else ["dataset"]
        for key in missing:
            label = " (the pattern needs a {label} field)" if key == "dataset" else ""
            raise ConfigError(
                f"data.{key}: required for task {self.task!r}; add a 'data: {key}:' section "
                f"with 'path' and 'pattern'{label}"
            )
