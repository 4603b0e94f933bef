"""Fit, guard and fallbacks of a score calibration: the one home for the pipeline and the CLI.

:func:`fit_guarded` fits a :class:`~gmmspeech.decisions.calibration.LogisticCalibration` on
labelled calibration trials and replaces it by the identity (the scores are kept as they
are), with a warning and a ``fallback`` entry in its record, when:

* the scores are constant or nearly so: they carry no information, and the "fit" would be
  the optimiser's starting point;
* it makes the actDCF of its own trials worse: it cannot be trusted on others;
* the models of the calibration trials are enrolled on a very different amount of speech
  than the targets (:func:`gmmspeech.decisions.backgroundtrials.enrolment_mismatch`).

:func:`check_location`, before a calibration is applied, compares the median of the
calibration trials' non-target scores with the median of the scores to calibrate (nearly
all evaluation trials are non-targets, so it approximates their non-target centre). When
they differ by more than :data:`MAX_LOCATION_SHIFT` non-target standard deviations, the
calibration trials were not scored like the evaluation trials, and the identity is used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DataError
from .backgroundtrials import enrolment_mismatch
from .calibration import LogisticCalibration
from .metrics import act_dcf

log = logging.getLogger(__name__)

#: Largest distance, in standard deviations of the calibration trials' non-target scores,
#: between their median and the median of the scores a calibration is applied to.
MAX_LOCATION_SHIFT = 2.0
#: Scores whose standard deviation is below this fraction of their magnitude (1 at least)
#: are taken as constant.
CONSTANT_SPREAD = 1e-9

_KEPT = "scores/calibrated.txt keeps the scores as they are"


@dataclass
class GuardedCalibration:
    """A calibration after the guard, with the facts of its record.

    Attributes
    ----------
    calibration : LogisticCalibration
        The fit, or the identity after a fallback.
    info : dict
        JSON-ready: trials, fitted slope and offset, the actDCF check, ``fallback`` (None,
        or why the identity is used).
    """

    calibration: LogisticCalibration
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def fallback(self) -> str | None:
        return self.info.get("fallback")

    def _identity(self, reason: str) -> None:
        self.calibration.slope_, self.calibration.offset_ = 1.0, 0.0
        self.info["fallback"] = reason
        self.info["slope"], self.info["offset"] = 1.0, 0.0


def is_constant(values: np.ndarray) -> bool:
    """Whether ``values`` (n,) are all (nearly) the same number."""
    v = np.asarray(values, dtype=np.float64)
    return bool(v.size == 0 or v.std() <= CONSTANT_SPREAD * max(1.0, float(np.abs(v).max())))


def fit_guarded(
    values: ArrayLike,
    is_target: ArrayLike,
    *,
    prior: float,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
    enrol_frames: float | None = None,
    target_frames: float | None = None,
    what: str = "the calibration trials",
) -> GuardedCalibration:
    """Fit a calibration on ``values`` (n,) labelled ``is_target`` (n,), with the guard and
    fallbacks of the module docstring.

    Parameters
    ----------
    prior, c_miss, c_fa : float
        The prior the fit is weighted for, and the costs of the actDCF check.
    enrol_frames, target_frames : float, optional
        Median enrolment frames of the calibration models and of the target models (the
        enrolment-mismatch check; skipped when not given).
    what : str
        Names the trials in errors.

    Raises
    ------
    DataError
        The trials lack targets or non-targets.
    """
    s = np.asarray(values, dtype=np.float64)
    t = np.asarray(is_target, dtype=bool)
    if s.shape != t.shape or s.ndim != 1:
        raise DataError(f"{what}: {s.shape} scores for {t.shape} labels")
    if not t.any() or t.all():
        raise DataError(
            f"{what}: a calibration needs target and non-target trials "
            f"({int(t.sum())} of {t.size} are targets)"
        )
    if not np.isfinite(s).all():
        raise DataError(f"{what}: {int((~np.isfinite(s)).sum())} score(s) are NaN or infinite")
    non = s[~t]
    info: dict[str, Any] = {
        "trials": int(t.size),
        "target_trials": int(t.sum()),
        "nontarget_median": float(np.median(non)),
        "nontarget_std": float(non.std()),
    }
    cal = LogisticCalibration(prior=prior)
    out = GuardedCalibration(cal, info)
    if is_constant(s):
        log.warning(
            "calibration: the scores of %s are constant (%.6g): they carry no information, "
            "so there is nothing to fit; not calibrating: %s",
            what,
            float(s[0]),
            _KEPT,
        )
        cal.nontarget_location_, cal.nontarget_scale_ = info["nontarget_median"], 0.0
        out._identity("identity: constant scores")
        info["separable"] = False
        return out
    cal.fit(s, t)
    info["fitted_slope"], info["fitted_offset"] = cal.slope_, cal.offset_
    # no finite maximum of the likelihood: the slope is where the solver stopped
    info["separable"] = bool(s[t].min() > s[~t].max())
    if info["separable"]:
        log.warning(
            "calibration: every target score of the %d trials of %s is above every "
            "non-target one, so the fit has no finite optimum (slope %.3g where the solver "
            "stopped): the calibrated LLRs are over-confident; more trials would help",
            t.size,
            what,
            cal.slope_,
        )
    info["slope"], info["offset"] = cal.slope_, cal.offset_
    costs = {"p_target": prior, "c_miss": c_miss, "c_fa": c_fa}
    raw = act_dcf(s, t, **costs)
    calibrated = act_dcf(cal.transform(s), t, **costs)
    info["trials_act_dcf_raw"] = round(raw, 4)
    info["trials_act_dcf_calibrated"] = round(calibrated, 4)
    info["fallback"] = None
    if calibrated > raw:
        log.warning(
            "calibration: actDCF on %s is worse calibrated (%.3f) than raw (%.3f); not "
            "calibrating: %s (set scoring.calibrate: false to skip this stage)",
            what,
            calibrated,
            raw,
            _KEPT,
        )
        out._identity("identity")
        return out
    if enrol_frames is not None and target_frames is not None:
        ratio = enrolment_mismatch(enrol_frames, target_frames)
        if ratio is not None:
            log.warning(
                "calibration: the models of %s are enrolled on %.0f frames (median) and the "
                "target models on %.0f (ratio %.2f): their scores are on another scale, so a "
                "calibration fitted on them does not transfer; not calibrating: %s (give the "
                "background speakers several utterances each, or set "
                "scoring.calibration_trials: enroll, or scoring.calibrate: false)",
                what,
                enrol_frames,
                target_frames,
                ratio,
                _KEPT,
            )
            out._identity("identity: enrolment mismatch")
            info["enrol_ratio"] = round(ratio, 4)
    return out


def check_location(
    cal: LogisticCalibration, scores: ArrayLike, *, where: str = "the scores"
) -> dict[str, Any]:
    """Before applying ``cal`` to ``scores`` (n,): the distance between their median and the
    median of the calibration trials' non-target scores, in standard deviations of those;
    beyond :data:`MAX_LOCATION_SHIFT`, ``cal`` becomes the identity, with a warning.

    Returns
    -------
    dict
        ``location_shift`` (None when ``cal`` records no non-target location, e.g. a file
        saved by an older version) and, on a fallback, ``fallback``.
    """
    loc, scale = cal.nontarget_location_, cal.nontarget_scale_
    s = np.asarray(scores, dtype=np.float64)
    if loc is None or scale is None or s.size == 0:
        return {"location_shift": None}
    median = float(np.median(s))
    if scale <= 0:
        return {"location_shift": None, "scores_median": round(median, 4)}
    shift = (median - loc) / scale
    out: dict[str, Any] = {
        "location_shift": round(shift, 4),
        "scores_median": round(median, 4),
        "max_location_shift": MAX_LOCATION_SHIFT,
    }
    if abs(shift) > MAX_LOCATION_SHIFT:
        log.warning(
            "calibration: the median of %s (%.3f) is %.1f standard deviations from the "
            "median of the calibration trials' non-target scores (%.3f, sd %.3f; at most %g "
            "allowed): the calibration trials were not scored like these, and the "
            "calibration would mislead; not calibrating: the scores are kept as they are",
            where,
            median,
            abs(shift),
            loc,
            scale,
            MAX_LOCATION_SHIFT,
        )
        cal.slope_, cal.offset_ = 1.0, 0.0
        out["fallback"] = "identity: location shift"
    return out


__all__ = [
    "CONSTANT_SPREAD",
    "MAX_LOCATION_SHIFT",
    "GuardedCalibration",
    "check_location",
    "fit_guarded",
    "is_constant",
]
