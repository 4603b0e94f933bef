"""gmmspeech: GMM-UBM speaker modelling.

Public names are imported lazily (PEP 562) so that ``import gmmspeech`` and the CLI start
fast and heavy modules (librosa, h5py) are loaded only when used. Each public name maps to
the module that defines it; add a line to ``_EXPORTS`` when a module gains a public name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS: dict[str, str] = {
    # errors
    "GmmSpeechError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "AudioError": "errors",
    "ModelFormatError": "errors",
    "ModelMismatchError": "errors",
    "ConvergenceWarning": "errors",
    # core model and training
    "DiagGMM": "mixture.gmm",
    "GaussianMixture": "mixture.estimator",
    "SufficientStats": "mixture.stats",
    "accumulate": "mixture.stats",
    "em_step": "mixture.ubm",
    "train_ubm": "mixture.ubm",
    # configs: the dataclasses and the YAML layer
    "UBMConfig": "config.sections",
    "EnrollConfig": "config.sections",
    "ScoringConfig": "config.sections",
    "ComputeConfig": "config.sections",
    "DataConfig": "config.sections",
    "ExperimentConfig": "config.sections",
    "load_config": "config.loader",
    "ConfigSource": "config.loader",
    # audio, features and data
    "load_audio": "features.audio",
    "FeatureConfig": "config.sections",
    "ExtractConfig": "config.sections",
    "extract_features": "features.frontend",
    "DataDir": "corpus.datadir",
    "scan_audio": "corpus.layout",
    "split_speakers": "corpus.prepare",
    "make_trials": "corpus.prepare",
    "FeatureStore": "features.store",
    "extract_to_store": "features.extraction",
    # where work runs
    "LocalEngine": "engine",
    "ProcessEngine": "engine",
    "DaskEngine": "engine",
    "make_engine": "engine",
    # speaker models, scoring and decisions
    "map_adapt": "mixture.map",
    "SpeakerModels": "mixture.speakermodels",
    "enroll": "mixture.speakermodels",
    "llr": "decisions.scoring",
    "score_trials": "decisions.scoring",
    "score_matrix": "decisions.scoring",
    "TrialList": "corpus.trials",
    "read_trials": "corpus.trials",
    "read_scores": "corpus.scorefiles",
    "write_scores": "corpus.scorefiles",
    "align_scores": "corpus.scorefiles",
    "znorm": "decisions.norm",
    "tnorm": "decisions.norm",
    "ztnorm": "decisions.norm",
    "snorm": "decisions.norm",
    "adaptive_snorm": "decisions.norm",
    "LogisticCalibration": "decisions.calibration",
    "eer": "decisions.metrics",
    "min_dcf": "decisions.metrics",
    "act_dcf": "decisions.metrics",
    "cllr": "decisions.metrics",
    "min_cllr": "decisions.metrics",
    "det_curve": "decisions.metrics",
    "identification_accuracy": "decisions.metrics",
    "confusion_matrix": "decisions.metrics",
    "plot_det": "decisions.plots",
    "plot_score_histograms": "decisions.plots",
    "GMMClassifier": "decisions.classifier",
    # i-vectors and their back end
    "UtteranceStats": "ivector.stats",
    "utterance_stats": "ivector.stats",
    "compute_stats": "ivector.stats",
    "StatsSet": "ivector.stats",
    "StatsFile": "ivector.stats",
    "TotalVariability": "ivector.tv",
    "IVectorSet": "ivector.tv",
    "Backend": "ivector.backend",
    "LDA": "ivector.backend",
    "WCCN": "ivector.backend",
    "PLDA": "ivector.backend",
    "length_normalize": "ivector.backend",
    "cosine_score": "ivector.backend",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .config.loader import ConfigSource, load_config
    from .config.sections import (
        ComputeConfig,
        DataConfig,
        EnrollConfig,
        ExperimentConfig,
        ExtractConfig,
        FeatureConfig,
        ScoringConfig,
        UBMConfig,
    )
    from .corpus.datadir import DataDir
    from .corpus.layout import scan_audio
    from .corpus.prepare import make_trials, split_speakers
    from .corpus.scorefiles import align_scores, read_scores, write_scores
    from .corpus.trials import TrialList, read_trials
    from .decisions.calibration import LogisticCalibration
    from .decisions.classifier import GMMClassifier
    from .decisions.metrics import (
        act_dcf,
        cllr,
        confusion_matrix,
        det_curve,
        eer,
        identification_accuracy,
        min_cllr,
        min_dcf,
    )
    from .decisions.norm import adaptive_snorm, snorm, tnorm, znorm, ztnorm
    from .decisions.plots import plot_det, plot_score_histograms
    from .decisions.scoring import llr, score_matrix, score_trials
    from .engine import DaskEngine, LocalEngine, ProcessEngine, make_engine
    from .errors import (
        AudioError,
        ConfigError,
        ConvergenceWarning,
        DataError,
        GmmSpeechError,
        ModelFormatError,
        ModelMismatchError,
    )
    from .features.audio import load_audio
    from .features.extraction import extract_to_store
    from .features.frontend import extract_features
    from .features.store import FeatureStore
    from .ivector.backend import LDA, PLDA, WCCN, Backend, cosine_score, length_normalize
    from .ivector.stats import StatsFile, StatsSet, UtteranceStats, compute_stats, utterance_stats
    from .ivector.tv import IVectorSet, TotalVariability
    from .mixture.estimator import GaussianMixture
    from .mixture.gmm import DiagGMM
    from .mixture.map import map_adapt
    from .mixture.speakermodels import SpeakerModels, enroll
    from .mixture.stats import SufficientStats, accumulate
    from .mixture.ubm import em_step, train_ubm


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gmmspeech' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = ["__version__", *_EXPORTS]
