"""Affine calibration of scores to log-likelihood ratios by prior-weighted logistic regression.

``llr = a * score + b`` with ``a, b`` minimising the prior-weighted cross-entropy (the
objective of Brummer's FoCal / BOSARIS, i.e. Cllr at the effective prior ``pi``)::

    pi / N_tar  sum_tar  log(1 + exp(-(a s + b + logit pi)))
  + (1 - pi) / N_non sum_non log(1 + exp(  a s + b + logit pi))

Trained on one set of scores with known labels and applied to another. Stored as JSON (no
pickle), with the system of the scores it was fitted on (``fitted_on``: the header fields of
:func:`gmmspeech.corpus.scorefiles.system_of`), so that it is never applied to another
system's scores (:meth:`LogisticCalibration.check_scores`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._version import __version__
from ..corpus.scorefiles import check_same_system, system_fingerprint, system_of
from ..errors import DataError
from ..storage.atomic import atomic_path
from .metrics import _split

#: The ``format`` of a calibration JSON file.
CALIBRATION_FORMAT = "gmmspeech.LogisticCalibration"


def _loss(p: np.ndarray, feats: np.ndarray, sign: np.ndarray, wt: np.ndarray, c: float) -> float:
    return float((wt * np.logaddexp(0.0, -sign * (feats @ p + c))).sum())


def _newton(
    feats: np.ndarray, sign: np.ndarray, wt: np.ndarray, c: float, max_iter: int = 100
) -> np.ndarray:
    """Minimise the weighted logistic loss over the weights ``p`` of the columns of
    ``feats`` (n, m) (the last column is ones: the offset) by damped Newton steps.

    The loss is convex: Newton with step halving converges in a few iterations. A tiny
    ridge keeps the Hessian invertible when the classes separate.
    """
    m = feats.shape[1]
    p = np.zeros(m)
    p[:-1] = 1.0 / (m - 1)  # start from the mean of the standardised scores
    loss = _loss(p, feats, sign, wt, c)
    for _ in range(max_iter):
        u = sign * (feats @ p + c)
        q = np.exp(-np.logaddexp(0.0, u))  # sigmoid(-u), stable
        grad = feats.T @ (-wt * sign * q)
        hess = (feats * (wt * q * (1.0 - q))[:, None]).T @ feats + 1e-12 * np.eye(m)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-10:
            cand = p - t * step
            new = _loss(cand, feats, sign, wt, c)
            if new <= loss:
                break
            t *= 0.5
        else:
            break
        done = abs(loss - new) <= 1e-14 * max(1.0, abs(loss))
        p, loss = cand, new
        if done:
            break
    return p


def _fit_affine(x: np.ndarray, t: np.ndarray, prior: float) -> tuple[np.ndarray, float]:
    """Weights (m,) and offset of ``llr = x @ w + b`` for scores ``x`` (n, m) with labels
    ``t`` (n,), minimising the prior-weighted cross-entropy (module docstring)."""
    # standardise the scores for a well-conditioned problem; map back afterwards
    loc = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    feats = np.column_stack([(x - loc) / scale, np.ones(x.shape[0])])
    logit_pi = float(np.log(prior / (1.0 - prior)))
    wt = np.where(t, prior / t.sum(), (1.0 - prior) / (~t).sum())
    sign = np.where(t, 1.0, -1.0)
    p = _newton(feats, sign, wt, logit_pi)
    w = p[:-1] / scale
    return w, float(p[-1] - w @ loc)


class LogisticCalibration:
    """Score -> LLR calibration ``llr = slope * score + offset``.

    Parameters
    ----------
    prior : float
        The effective target prior the objective is weighted for (0.5: Cllr).

    Attributes
    ----------
    slope_, offset_ : float
        Fitted after :meth:`fit`.
    nontarget_location_, nontarget_scale_ : float or None
        Median and standard deviation of the non-target scores it was fitted on (the
        location check of :func:`gmmspeech.decisions.calguard.check_location`).
    fitted_on : dict of str to str
        The system of the scores it was fitted on (the scores file's header fields of
        :func:`gmmspeech.corpus.scorefiles.system_of`, its ``system`` fingerprint and
        ``file``); empty when unknown. Set by the caller of :meth:`fit`, which knows the file.

    Examples
    --------
    >>> cal = LogisticCalibration().fit([2.0, 3.0, 1.5, -1.0, 0.0, 2.1], [1, 1, 1, 0, 0, 0])
    >>> bool(cal.slope_ > 0)
    True
    """

    def __init__(self, prior: float = 0.5) -> None:
        if not 0.0 < float(prior) < 1.0:
            raise DataError(f"prior: must be strictly between 0 and 1, got {prior!r}")
        self.prior = float(prior)
        self.slope_: float | None = None
        self.offset_: float | None = None
        self.nontarget_location_: float | None = None
        self.nontarget_scale_: float | None = None
        self.fitted_on: dict[str, str] = {}

    def record_scores(self, header: Mapping[str, str], path: object) -> None:
        """Record the system of the scores file ``path`` (its header) it is fitted on."""
        self.fitted_on = system_of(header)
        fp = system_fingerprint(header)
        if fp is not None:
            self.fitted_on["system"] = fp
        self.fitted_on["file"] = str(path)

    def check_scores(self, header: Mapping[str, str], given_in: str, stored_in: str) -> bool:
        """Refuse scores of another system than it was fitted on (``header``: the scores
        file's). Returns whether both recorded a system (else a warning says so).

        Raises
        ------
        ModelMismatchError
            Naming each differing field, e.g. ``ubm: 1a2b... here vs 3c4d... in cal.json``.
        """
        return check_same_system(
            self.fitted_on,
            header,
            given_in=given_in,
            stored_in=stored_in,
            fix="calibrate these scores with a calibration fitted on their own system's "
            "scores (gmmspeech calibrate --train)",
        )

    def fit(self, scores: ArrayLike, is_target: ArrayLike) -> LogisticCalibration:
        """Fit on scores (n,) with labels (n,); returns ``self``.

        Raises
        ------
        DataError
            Also for constant scores: they carry no information, and there is no fit.
        """
        s, t = _split(scores, is_target)
        if s.std() <= 1e-9 * max(1.0, float(np.abs(s).max())):
            raise DataError(
                f"scores: all {s.size} are {s[0]:.6g}: constant scores carry no information, "
                f"there is no calibration to fit"
            )
        self.nontarget_location_ = float(np.median(s[~t]))
        self.nontarget_scale_ = float(s[~t].std())
        w, b = _fit_affine(s[:, None], t, self.prior)
        self.slope_, self.offset_ = float(w[0]), b
        return self

    def _check_fitted(self) -> tuple[float, float]:
        if self.slope_ is None or self.offset_ is None:
            raise DataError("LogisticCalibration: call fit() (or load()) before transform()")
        return self.slope_, self.offset_

    def transform(self, scores: ArrayLike) -> np.ndarray:
        """Calibrated LLRs (natural log), same shape as ``scores``."""
        a, b = self._check_fitted()
        return a * np.asarray(scores, dtype=np.float64) + b

    def to_dict(self) -> dict[str, Any]:
        a, b = self._check_fitted()
        out: dict[str, Any] = {
            "format": CALIBRATION_FORMAT,
            "gmmspeech_version": __version__,
            "prior": self.prior,
            "slope": a,
            "offset": b,
        }
        if self.nontarget_location_ is not None and self.nontarget_scale_ is not None:
            out["nontarget_median"] = self.nontarget_location_
            out["nontarget_std"] = self.nontarget_scale_
        if self.fitted_on:
            out["fitted_on"] = dict(self.fitted_on)
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the calibration as JSON, atomically."""
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LogisticCalibration:
        """Read a calibration written by :meth:`save`."""
        p = Path(path)
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
            if d.get("format") != CALIBRATION_FORMAT:
                raise KeyError("format")
            cal = cls(d["prior"])
            cal.slope_, cal.offset_ = float(d["slope"]), float(d["offset"])
            if "nontarget_median" in d:
                cal.nontarget_location_ = float(d["nontarget_median"])
                cal.nontarget_scale_ = float(d["nontarget_std"])
            fitted = d.get("fitted_on", {})
            if not isinstance(fitted, dict):
                raise TypeError(f"fitted_on: expected an object, got {fitted!r}")
            cal.fitted_on = {str(k): str(v) for k, v in fitted.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{p}: not a gmmspeech calibration JSON file ({exc})") from None
        for name in ("prior", "slope_", "offset_", "nontarget_location_", "nontarget_scale_"):
            value = getattr(cal, name)
            if value is not None and not math.isfinite(value):
                raise DataError(
                    f"{p}: {name.rstrip('_')} is {value}; a calibration holds finite numbers: "
                    f"fit it again (gmmspeech calibrate --train)"
                )
        return cal


class LinearFusion:
    """Fusion of several systems' scores into one LLR, ``llr = scores @ weights + offset``,
    by the same prior-weighted logistic regression as :class:`LogisticCalibration` (as in
    BOSARIS); with one system it is that calibration.

    Parameters
    ----------
    prior : float
        The effective target prior the objective is weighted for.

    Attributes
    ----------
    weights_ : ndarray, shape (n_systems,)
    offset_ : float
    """

    def __init__(self, prior: float = 0.5) -> None:
        if not 0.0 < float(prior) < 1.0:
            raise DataError(f"prior: must be strictly between 0 and 1, got {prior!r}")
        self.prior = float(prior)

    def fit(self, scores: ArrayLike, is_target: ArrayLike) -> LinearFusion:
        """Fit on scores (n, n_systems) of the same trials, labels (n,); returns ``self``."""
        x = np.asarray(scores, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] < 1:
            raise DataError(f"scores: expected (n_trials, n_systems), got shape {x.shape}")
        t = np.asarray(is_target, dtype=bool)
        for j in range(x.shape[1]):  # the same checks as one system's calibration
            _split(x[:, j], t)
        self.weights_, self.offset_ = _fit_affine(x, t, self.prior)
        return self

    def transform(self, scores: ArrayLike) -> np.ndarray:
        """Fused LLRs (n,) of scores (n, n_systems)."""
        if not hasattr(self, "weights_"):
            raise DataError("LinearFusion: call fit() before transform()")
        x = np.asarray(scores, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.weights_.size:
            raise DataError(
                f"scores: expected (n_trials, {self.weights_.size}) scores, got shape {x.shape}"
            )
        return x @ self.weights_ + self.offset_
