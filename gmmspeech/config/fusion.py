"""The ``fusion:`` section of an experiment config (``system: fusion``).

A fusion experiment reads the scores of earlier experiments (or of score files) and fits a
linear logistic-regression fusion of them on their calibration trials
(:mod:`gmmspeech.decisions.fusion`, :mod:`gmmspeech.pipeline.fusion_stages`). :class:`FusedSystem` is
one entry of ``fusion.systems``, :class:`FusionConfig` the section; both are re-exported by
:mod:`gmmspeech.config.sections`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError
from .base import check as _check
from .base import check_min, normalise

#: What a system name may hold: it names files (``systems/<name>/``) and report rows.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: The score files a system given without an experiment needs.
SCORE_FILES = ("scores", "calibration_trials", "calibration_scores")


@dataclass(frozen=True)
class FusedSystem:
    """One system of a fusion: an experiment folder, or its score files.

    Parameters
    ----------
    name : str or None
        The system's name in the results and report (letters, digits, ``_.+-``); None: the
        experiment folder's name, or the stem of ``scores``.
    experiment : str or None
        The folder of an earlier ``gmmspeech run`` (verification, run through its calibrate
        stage with ``scoring.calibrate: true``): its ``scores/scores.txt`` (normalised, not
        calibrated), ``calibration/trials`` and ``calibration/scores.txt`` are read.
    scores : str or None
        Without ``experiment``: the scores of the evaluation trials (before calibration).
    calibration_trials, calibration_scores : str or None
        Without ``experiment``: labelled trials to fit the fusion on, and this system's
        scores of them.

    Relative paths are relative to the config file's folder (also when they come from
    ``${env:...}``); from ``--set``, to the current directory.
    """

    name: str | None = None
    experiment: str | None = None
    scores: str | None = None
    calibration_trials: str | None = None
    calibration_scores: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None:
            ok = isinstance(self.name, str) and NAME_PATTERN.fullmatch(self.name) is not None
            _check(ok, "name", "letters, digits and _.- (it names files)", self.name)
        files = [k for k in SCORE_FILES if getattr(self, k) is not None]
        if self.experiment is not None and files:
            raise ConfigError(
                f"experiment: give an experiment folder or score files ({', '.join(files)}), "
                f"not both"
            )
        if self.experiment is None and len(files) != len(SCORE_FILES):
            missing = [k for k in SCORE_FILES if k not in files]
            raise ConfigError(
                f"experiment: a system needs 'experiment: FOLDER' of an earlier gmmspeech run, "
                f"or the score files {', '.join(SCORE_FILES)} (missing: {', '.join(missing)})"
            )

    @property
    def label(self) -> str:
        """The name, or the one derived from the experiment folder or the scores file."""
        if self.name is not None:
            return self.name
        # __post_init__ makes sure one of them is given
        path = self.experiment if self.experiment is not None else (self.scores or "")
        base = path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
        return base if self.experiment is not None else base.rsplit(".", 1)[0] or base


@dataclass(frozen=True)
class FusionConfig:
    """Fusion of several systems' scores (``system: fusion``; :mod:`gmmspeech.decisions.fusion`).

    Parameters
    ----------
    systems : tuple of FusedSystem
        The systems to fuse (at least two), each an experiment folder or its score files.
        They must have scored the same evaluation trials and the same calibration trials.
    trials : str or None
        The labelled evaluation trials; None: ``data/test/trials`` of the first system
        given as an experiment (needed when every system is given by score files).
    guard : bool
        Keep the fusion only when its cross-validated Cllr (at ``scoring.p_target``) on the
        calibration trials is lower than that of each system calibrated alone by more than
        one standard error over the folds; otherwise keep the best of those
        (:mod:`gmmspeech.decisions.fusion`). Only the calibration trials decide, never the evaluation
        trials. false: always fuse every system.
    cv_folds : int
        Folds of that cross-validation; the calibration trials are split by model, so a
        model's trials are never both fitted and judged.
    """

    systems: tuple[FusedSystem, ...] = ()
    trials: str | None = None
    guard: bool = True
    cv_folds: int = 5

    def __post_init__(self) -> None:
        normalise(self)
        _check(isinstance(self.guard, bool), "guard", "true or false", self.guard)
        check_min(self, "cv_folds", 2)

    def check_systems(self) -> None:
        """At least two systems with distinct names, and evaluation trials to score them on
        (the rules of ``system: fusion``)."""
        n = len(self.systems)
        _check(n >= 2, "systems", "a list of at least two systems to fuse", f"{n} system(s)")
        labels = [s.label for s in self.systems]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ConfigError(
                f"systems: two systems are called {twice[0]!r}; give each a distinct 'name:'"
            )
        for s in self.systems:
            ok = NAME_PATTERN.fullmatch(s.label) is not None
            _check(ok, "systems", "systems with names of letters, digits and _.-", s.label)
        if self.trials is None and all(s.experiment is None for s in self.systems):
            raise ConfigError(
                "trials: needed when every system is given by score files: the labelled "
                "evaluation trials"
            )


def check_fusion_system(task: str, fusion: FusionConfig) -> None:
    """A fusion is of verification systems, at least two; a :class:`ConfigError` otherwise."""
    if task != "verification":
        raise ConfigError(f"system: 'fusion' is for task 'verification', not {task!r}")
    try:
        fusion.check_systems()
    except ConfigError as exc:
        raise ConfigError(f"fusion.{exc}") from None


__all__ = ["FusedSystem", "FusionConfig", "check_fusion_system"]
