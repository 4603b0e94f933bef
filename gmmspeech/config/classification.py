"""The ``classification:`` section (the back end that decides a file's class) and the
feature presets (``features.preset: speech | sounds``).

A preset is a set of feature options filled in under the ones a config gives: ``speech`` is
the :class:`~gmmspeech.config.sections.FeatureConfig` defaults, ``sounds`` keeps every frame
and the absolute levels that carry timbre. Classification uses ``sounds`` unless the config
names a preset (:func:`apply_feature_preset`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from .base import check as _check
from .base import check_choice, check_min, normalise

log = logging.getLogger(__name__)

#: Classification back ends (``classification.method``).
CLASSIFICATION_METHODS = ("llr", "supervector", "ivector")
#: Linear classifiers of the supervector and i-vector back ends.
CLASSIFIERS = ("logistic", "linear_svc")
#: i-vector scorers of ``method: ivector``.
IVECTOR_SCORERS = ("cosine", "logistic")

#: Feature presets: options filled in where a config's ``features`` section does not set them.
#: ``sounds``: no VAD (the quiet tails of notes and textures are part of the sound) and no
#: per-file mean removal (the long-term spectrum is the timbre).
FEATURE_PRESETS: dict[str, dict[str, object]] = {
    "speech": {"vad": "energy", "normalization": "cmvn"},
    "sounds": {"vad": "none", "normalization": "none"},
}
#: The preset of each task when a config names none.
TASK_PRESETS = {"verification": "speech", "classification": "sounds"}


@dataclass(frozen=True)
class ClassificationConfig:
    """How a classification experiment decides each test file's class.

    Parameters
    ----------
    method : {"llr", "supervector", "ivector"}
        ``llr``: one MAP-adapted GMM per class, the class of highest frame-averaged LLR.
        ``supervector``: each file's MAP means (``enroll.relevance_factor``) scaled by the
        UBM's ``sqrt(w) / sigma`` (the KL kernel), then a linear ``classifier``.
        ``ivector``: i-vectors (``ivector`` section) with LDA and length normalisation
        (``backend.lda_dim``), then ``ivector_scorer``.
    classifier : {"logistic", "linear_svc"}
        scikit-learn ``LogisticRegression`` or ``LinearSVC``.
    ivector_scorer : {"cosine", "logistic"}
        Cosine similarity to each class's mean i-vector, or ``classifier`` on the i-vectors.
    c_grid : list of float
        Candidate inverse regularisations ``C``; the one with the best accuracy in a
        leave-one-fold-out over the training folds (never the test fold) is used.
    random_state : int
        Seed of the linear classifiers.
    """

    method: str = "llr"
    classifier: str = "linear_svc"
    ivector_scorer: str = "cosine"
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
    random_state: int = 0

    def __post_init__(self) -> None:
        normalise(self)
        check_choice(self, "method", CLASSIFICATION_METHODS)
        check_choice(self, "classifier", CLASSIFIERS)
        check_choice(self, "ivector_scorer", IVECTOR_SCORERS)
        grid = tuple(float(c) for c in self.c_grid)
        _check(bool(grid) and all(c > 0 for c in grid), "c_grid", "positive numbers", grid)
        object.__setattr__(self, "c_grid", grid)
        check_min(self, "random_state", 0)


def apply_feature_preset(values: Mapping[str, object], where: str = "config") -> dict[str, object]:
    """``values`` (an experiment config as plain data) with ``features.preset`` expanded.

    The preset is ``features.preset`` when given, else the task's (:data:`TASK_PRESETS`); its
    options are filled in where ``features`` does not set them, ``preset`` is removed, and
    the choice is logged (the run log says which preset a run used).
    """
    out = dict(values)
    features = out.get("features")
    if features is None:
        features = {}
    if not isinstance(features, dict):
        return out  # the section's own check reports the wrong type
    task = out.get("task", "verification")
    default = TASK_PRESETS.get(task if isinstance(task, str) else "", "speech")
    features = dict(features)
    preset = features.pop("preset", None)
    if preset is None:
        preset = default
    if not isinstance(preset, str) or preset not in FEATURE_PRESETS:
        raise ConfigError(
            f"{where}: features.preset: expected one of {tuple(FEATURE_PRESETS)}, got {preset!r}"
        )
    given = {k: v for k, v in features.items() if k in FEATURE_PRESETS[preset]}
    log.info(
        "features: preset %r (%s)%s",
        preset,
        ", ".join(f"{k}={v}" for k, v in FEATURE_PRESETS[preset].items()),
        f"; the config sets {given}" if given else "",
    )
    out["features"] = {**FEATURE_PRESETS[preset], **features}
    return out
