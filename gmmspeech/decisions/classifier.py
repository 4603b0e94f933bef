"""GMM classifier for audio sources (speakers, sound classes, keywords), scikit-learn style.

Each utterance (a (n_frames, D) array) is classified by the class model under which its
frames are most likely: ``log P(class | X) = log prior + sum_t log p_class(x_t)``, normalised
over the classes. Two ways of making the class models:

``mode="map"``
    a UBM trained on the frames of all classes, then one MAP-adapted model per class
    (Reynolds 2000); scores can use top-C (the class models are evaluated on the UBM's C best
    components per frame).
``mode="ml"``
    an independent EM-trained GMM per class (maximum likelihood).

With a UBM, every class decision goes through
:func:`~gmmspeech.decisions.class_scores.class_llrs` (the frame-averaged LLR of each class
model, :func:`gmmspeech.score_matrix`): :class:`GMMClassifier` in ``map`` mode,
``gmmspeech classify`` and the cross-validation folds of the pipeline all score that way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d, validate_data

from ..errors import DataError
from ..features.frames import as_frames
from ..mixture.estimator import check_fitted
from ..mixture.gmm import DiagGMM
from ..mixture.map import check_adapt
from ..mixture.speakermodels import SpeakerModels, enroll
from ..mixture.ubm import train_ubm
from .class_scores import class_llrs

log = logging.getLogger(__name__)


class GMMClassifier(ClassifierMixin, BaseEstimator):
    """Classify variable-length feature sequences with one GMM per class.

    A scikit-learn classifier: ``X`` is a list of (n_frames_i, D) arrays, one per
    utterance, or a 2-D array (or a list of 1-D rows) of shape (n_samples, D), read as
    n_samples utterances of one frame each, so that it works in pipelines and
    cross-validation as scikit-learn expects.

    Parameters
    ----------
    n_components : int
        Components of the UBM (``map``) or of each class GMM (``ml``).
    mode : {"map", "ml"}
    relevance_factor : float
        MAP relevance factor (``map`` mode).
    adapt : str
        Parameters to MAP-adapt (``map`` mode), e.g. ``"m"`` or ``"mwv"``. The default
        ``"mw"`` adapts the weights too: sound classes often differ in *which* regions of
        feature space they occupy, which mean-only adaptation cannot express (components a
        class never visits keep the UBM's values in every class model).
    top_c : int, optional
        ``map`` mode: score with the UBM's top-C components per frame (None: exact).
    priors : {"uniform", "empirical"} or array-like of shape (n_classes,)
        Class priors in the posteriors: equal, the training class frequencies, or given.
    random_state : int, optional
        Seed passed to UBM training.
    ubm_options : dict, optional
        More keyword options for :func:`gmmspeech.train_ubm` (e.g. ``iterations_per_stage``).
    progress : bool
        Progress bars during training.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
    ubm_ : DiagGMM or None
        The shared UBM (``map`` mode).
    models_ : list of DiagGMM
        One model per class, in the order of ``classes_``.
    log_priors_ : ndarray, shape (n_classes,)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(m, 1.0, size=(50, 2)) for m in (0, 0, 4, 4)]
    >>> clf = GMMClassifier(n_components=2, mode="ml").fit(X, ["a", "a", "b", "b"])
    >>> clf.predict([rng.normal(4, 1.0, size=(30, 2))]).tolist()
    ['b']
    """

    def __init__(
        self,
        n_components: int = 64,
        *,
        mode: str = "map",
        relevance_factor: float = 16.0,
        adapt: str = "mw",
        top_c: int | None = None,
        priors: Any = "uniform",
        random_state: int | None = 0,
        ubm_options: dict[str, Any] | None = None,
        progress: bool = False,
    ) -> None:
        self.n_components = n_components
        self.mode = mode
        self.relevance_factor = relevance_factor
        self.adapt = adapt
        self.top_c = top_c
        self.priors = priors
        self.random_state = random_state
        self.ubm_options = ubm_options
        self.progress = progress

    # ------------------------------------------------------------------ sklearn API
    def fit(self, X: Sequence[Any], y: Sequence[Any]) -> GMMClassifier:
        """Train one model per class.

        Parameters
        ----------
        X : list of array-like, each of shape (n_frames_i, D)
            One feature sequence per utterance.
        y : sequence of labels, length len(X)
        """
        if self.mode not in ("map", "ml"):
            raise DataError(f"mode: expected 'map' or 'ml', got {self.mode!r}")
        if self.mode == "map":
            check_adapt(self.adapt)
        xs = self._frames_list(X, reset=True)
        labels = column_or_1d(np.asarray(y) if not isinstance(y, np.ndarray) else y, warn=True)
        if labels.shape[0] != len(xs):
            raise DataError(
                f"y: expected {len(xs)} labels, one per utterance, got {labels.shape[0]} (a "
                f"2-D array X is read as {len(xs)} one-frame utterances; pass a list of "
                f"(n_frames, D) arrays for longer ones)"
            )
        check_classification_targets(labels)
        self.classes_ = np.unique(labels)
        if self.classes_.size < 2:
            raise DataError(
                f"y: need at least 2 classes, got {self.classes_.size} class(es): "
                f"{self.classes_.tolist()}"
            )
        opts = dict(self.ubm_options or {})
        self.ubm_: DiagGMM | None = None
        if self.mode == "map":
            self.ubm_ = train_ubm(
                xs,
                self.n_components,
                random_state=self.random_state,
                progress=self.progress,
                **opts,
            )
            feats = {str(i): x for i, x in enumerate(xs)}
            spk2utt = {str(c): [str(i) for i in np.flatnonzero(labels == c)] for c in self.classes_}
            bank = enroll(
                self.ubm_,
                feats,
                spk2utt,
                relevance_factor=self.relevance_factor,
                adapt=self.adapt,
                progress=self.progress,
            )
            self.class_models_: SpeakerModels | None = bank
            self.models_ = [bank[str(c)] for c in self.classes_]
        else:
            self.class_models_ = None
            self.models_ = []
            for c in self.classes_:
                frames = [xs[i] for i in np.flatnonzero(labels == c)]
                self.models_.append(
                    train_ubm(
                        frames,
                        self.n_components,
                        random_state=self.random_state,
                        progress=self.progress,
                        **opts,
                    )
                )
        if isinstance(self.priors, str):
            if self.priors == "uniform":
                p = np.full(self.classes_.size, 1.0 / self.classes_.size)
            elif self.priors == "empirical":
                p = np.array([(labels == c).mean() for c in self.classes_])
            else:
                raise DataError(
                    f"priors: expected 'uniform', 'empirical' or an array, got {self.priors!r}"
                )
        else:
            p = np.asarray(self.priors, dtype=np.float64)
            if p.shape != self.classes_.shape or (p <= 0).any():
                raise DataError(
                    f"priors: expected {self.classes_.size} positive values (one per class in "
                    f"sorted order {self.classes_.tolist()}), got {p.tolist()}"
                )
            p = p / p.sum()
        self.log_priors_ = np.log(p)
        return self

    def _frames_list(self, X: Any, *, reset: bool = False) -> list[np.ndarray]:
        """The utterances of ``X`` as float32 (n_frames, D) arrays; ``reset`` (in fit) sets
        ``n_features_in_``, otherwise ``X`` is checked against it."""
        rows = isinstance(X, (list, tuple)) and all(np.ndim(x) <= 1 for x in X) and len(X) > 0
        if rows or not isinstance(X, (list, tuple)):
            # an array, array-like (sparse, data frame) or a list of rows: one frame per row
            arr = validate_data(self, X, reset=reset, dtype=(np.float64, np.float32))
            return [as_frames(arr[i : i + 1]) for i in range(arr.shape[0])]
        d = None if reset else getattr(self, "n_features_in_", None)
        xs = [as_frames(x, d, name=f"X[{i}]") for i, x in enumerate(X)]
        if not xs:
            raise DataError("X: no utterances")
        for i, x in enumerate(xs):
            if x.shape[0] == 0:
                raise DataError(f"X[{i}]: no frames")
            if d is None:
                d = x.shape[1]
            elif x.shape[1] != d:
                raise DataError(f"X[{i}]: {x.shape[1]} features, X[0] has {d}")
        if reset:
            self.n_features_in_ = d
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        return xs

    def _check_fitted(self) -> None:
        check_fitted(self, "models_")

    def log_likelihoods(self, X: Sequence[Any]) -> np.ndarray:
        """Total log-likelihood of each utterance under each class model, shape (n, n_classes).

        In ``map`` mode the class models are scored by :func:`class_llrs` (exactly, or on
        the UBM's C best components per frame with ``top_c``), so that
        ``log p_class = n_frames * (LLR + mean log p_ubm)``.
        """
        self._check_fitted()
        xs = self._frames_list(X)
        out = np.empty((len(xs), len(self.models_)))
        ubm = self.ubm_
        if ubm is not None and self.class_models_ is not None:
            feats = {str(i): x for i, x in enumerate(xs)}
            method = "exact" if self.top_c is None else "topc"
            top_c = None if self.top_c is None else min(int(self.top_c), ubm.n_components)
            llrs = class_llrs(
                ubm, self.class_models_, feats, list(feats), method=method, top_c=top_c
            )
            for i, x in enumerate(xs):
                out[i] = x.shape[0] * (llrs[i] + ubm.score(x))
            return out
        for i, x in enumerate(xs):
            out[i] = [m.log_likelihood(x).sum() for m in self.models_]
        return out

    def predict_log_proba(self, X: Sequence[Any]) -> np.ndarray:
        """Normalised log class posteriors, shape (n, n_classes); ``exp`` rows sum to 1."""
        ll = self.log_likelihoods(X) + self.log_priors_
        m = ll.max(axis=1, keepdims=True)
        return ll - (m + np.log(np.exp(ll - m).sum(axis=1, keepdims=True)))

    def predict_proba(self, X: Sequence[Any]) -> np.ndarray:
        """Class posteriors, shape (n, n_classes)."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        """Most probable class per utterance, shape (n,)."""
        lp = self.predict_log_proba(X)
        return self.classes_[np.argmax(lp, axis=1)]

    def score(self, X: Sequence[Any], y: Sequence[Any], sample_weight: Any = None) -> float:
        """Accuracy of :meth:`predict` against ``y`` (weighted by ``sample_weight``)."""
        pred = self.predict(X)
        yy = column_or_1d(np.asarray(y) if not isinstance(y, np.ndarray) else y)
        if yy.shape != pred.shape:
            raise DataError(f"y: expected {pred.shape[0]} labels, got {yy.shape[0]}")
        return float(np.average(pred == yy, weights=sample_weight))

    @property
    def models(self) -> list[DiagGMM]:
        """The class models (alias of ``models_``)."""
        self._check_fitted()
        return self.models_
