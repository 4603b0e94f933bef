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
    "DiagGMM": "gmm",
    "SufficientStats": "stats",
    "accumulate": "stats",
    "em_step": "ubm",
    "train_ubm": "ubm",
    # configs: the dataclasses and the YAML layer
    "UBMConfig": "config",
    "EnrollConfig": "config",
    "ScoringConfig": "config",
    "ComputeConfig": "config",
    "DataConfig": "config",
    "ExperimentConfig": "config",
    "load_config": "configio",
    "ConfigSource": "configio",
    # audio, features and data
    "load_audio": "audio",
    "FeatureConfig": "config",
    "ExtractConfig": "config",
    "extract_features": "features",
    "DataDir": "datadir",
    "scan_audio": "layout",
    "split_speakers": "prepare",
    "make_trials": "prepare",
    "FeatureStore": "featstore",
    "extract_to_store": "extraction",
    # where work runs
    "LocalEngine": "engine",
    "ProcessEngine": "engine",
    "DaskEngine": "engine",
    "make_engine": "engine",
    # speaker models, scoring and decisions
    "map_adapt": "map",
    "SpeakerModels": "speakermodels",
    "enroll": "speakermodels",
    "llr": "scoring",
    "score_trials": "scoring",
    "score_matrix": "scoring",
    "TrialList": "trials",
    "read_trials": "trials",
    "read_scores": "scorefiles",
    "write_scores": "scorefiles",
    "align_scores": "scorefiles",
    "znorm": "norm",
    "tnorm": "norm",
    "ztnorm": "norm",
    "snorm": "norm",
    "adaptive_snorm": "norm",
    "LogisticCalibration": "calibration",
    "eer": "metrics",
    "min_dcf": "metrics",
    "act_dcf": "metrics",
    "cllr": "metrics",
    "min_cllr": "metrics",
    "det_curve": "metrics",
    "identification_accuracy": "metrics",
    "confusion_matrix": "metrics",
    "plot_det": "plots",
    "plot_score_histograms": "plots",
    "GMMClassifier": "classifier",
    # i-vectors and their back end
    "UtteranceStats": "uttstats",
    "utterance_stats": "uttstats",
    "compute_stats": "uttstats",
    "StatsSet": "uttstats",
    "StatsFile": "uttstats",
    "TotalVariability": "ivector",
    "IVectorSet": "ivector",
    "Backend": "backend",
    "LDA": "backend",
    "WCCN": "backend",
    "PLDA": "backend",
    "length_normalize": "backend",
    "cosine_score": "backend",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .audio import load_audio
    from .backend import LDA, PLDA, WCCN, Backend, cosine_score, length_normalize
    from .calibration import LogisticCalibration
    from .classifier import GMMClassifier
    from .config import (
        ComputeConfig,
        DataConfig,
        EnrollConfig,
        ExperimentConfig,
        ExtractConfig,
        FeatureConfig,
        ScoringConfig,
        UBMConfig,
    )
    from .configio import ConfigSource, load_config
    from .datadir import DataDir
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
    from .extraction import extract_to_store
    from .featstore import FeatureStore
    from .features import extract_features
    from .gmm import DiagGMM
    from .ivector import IVectorSet, TotalVariability
    from .layout import scan_audio
    from .map import map_adapt
    from .metrics import (
        act_dcf,
        cllr,
        confusion_matrix,
        det_curve,
        eer,
        identification_accuracy,
        min_cllr,
        min_dcf,
    )
    from .norm import adaptive_snorm, snorm, tnorm, znorm, ztnorm
    from .plots import plot_det, plot_score_histograms
    from .prepare import make_trials, split_speakers
    from .scorefiles import align_scores, read_scores, write_scores
    from .scoring import llr, score_matrix, score_trials
    from .speakermodels import SpeakerModels, enroll
    from .stats import SufficientStats, accumulate
    from .trials import TrialList, read_trials
    from .ubm import em_step, train_ubm
    from .uttstats import StatsFile, StatsSet, UtteranceStats, compute_stats, utterance_stats


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
