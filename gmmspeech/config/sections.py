"""The experiment config: scoring, compute, and every section of a ``gmmspeech run``.

Each section is a frozen dataclass that checks its values when built (the only place
defaults live); the sections of other concepts are re-exported from their modules. YAML is
read by :mod:`.loader`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import ConfigError
from .base import check as _check
from .base import check_choice, check_in, check_min, normalise
from .base import config_hash as config_hash  # the JSON form and hash, re-exported
from .base import to_dict as to_dict
from .classification import ClassificationConfig as ClassificationConfig
from .data import DataConfig as DataConfig  # the data sections, re-exported
from .data import SetConfig as SetConfig
from .features import ExtractConfig as ExtractConfig  # the front end's, re-exported
from .features import FeatureConfig as FeatureConfig
from .fusion import FusedSystem as FusedSystem  # the fusion sections, re-exported
from .fusion import FusionConfig as FusionConfig
from .fusion import check_fusion_system
from .ivector import SYSTEMS
from .ivector import BackendConfig as BackendConfig  # the i-vector sections, re-exported
from .ivector import IVectorConfig as IVectorConfig
from .models import ADAPT_LETTERS as ADAPT_LETTERS  # model training's, re-exported
from .models import EnrollConfig as EnrollConfig
from .models import UBMConfig as UBMConfig
from .models import check_adapt as check_adapt
from .models import check_relevance_factor as check_relevance_factor

# ============================================================================ experiments
TASKS = ("verification", "classification")
#: LLR scoring methods (``scoring.method``).
SCORING_METHODS = ("exact", "topc", "linear")
#: Score normalisations (``scoring.norm``).
NORMS = ("auto", "none", "z", "t", "zt", "s", "as")
#: Sources of the calibration trials (``scoring.calibration_trials``).
CALIBRATION_SOURCES = ("background", "enroll")

#: Engines (``compute.backend``).
BACKENDS = ("local", "processes", "dask")


@dataclass(frozen=True)
class ScoringConfig:
    """Scoring, score normalisation and the decision costs of the evaluation.

    Parameters
    ----------
    method : {"exact", "topc", "linear"}
        LLR scoring (:func:`gmmspeech.score_trials`).
    top_c : int
        C of top-C scoring.
    norm : {"auto", "none", "z", "t", "zt", "s", "as"}
        Score normalisation with the background speakers as cohort. ``auto``: adaptive
        S-norm when there are at least 16 background speakers, else none (logged; see
        :func:`gmmspeech.decisions.heldout.choose_norm`).
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
    norm: str = "auto"
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


#: Defaults that differ by task (``task -> section -> option -> value``) where a config does not
#: set the option (:func:`task_default`). Classes adapt means and weights: FSDD digits (UBM 128)
#: 84.2 % with ``mw``, 78.4 % with ``m``; environmental sounds 93.3 % against 92.8 %.
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
    data, features, extract, ubm, enroll, scoring, compute, ivector, backend, fusion, classification
        The stage configurations (``enroll`` is read by ``gmm-ubm``, ``ivector`` and ``backend``
        by ``ivector``, ``fusion`` by ``fusion``, ``classification`` by task classification).
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
    classification: ClassificationConfig = dataclasses.field(default_factory=ClassificationConfig)

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
