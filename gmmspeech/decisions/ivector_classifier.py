"""Classification by i-vectors: LDA, length normalisation, then cosine or a linear classifier.

The i-vectors come from :mod:`gmmspeech.ivector` (a total-variability model trained on the
training files' statistics). LDA (between- to within-class scatter, on the training files)
keeps at most ``n_classes - 1`` directions; after length normalisation each test file gets
the class whose mean training vector is nearest in angle (``cosine``), or the class of a
scikit-learn linear classifier (``logistic``, its ``C`` chosen by
:func:`~gmmspeech.decisions.supervector.fit_linear` on the training folds).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from ..ivector.backend import LDA, length_normalize
from .supervector import fit_linear

log = logging.getLogger(__name__)


def lda_projection(X: np.ndarray, y: Sequence[str], lda_dim: int | None = None) -> tuple[LDA, int]:
    """An LDA fitted on ``(X, y)`` with ``lda_dim`` (None: ``n_classes - 1``) directions.

    Raises a :class:`~gmmspeech.errors.DataError` naming ``ivector.rank`` when the
    within-class scatter is singular (more i-vector dimensions than training files less
    classes): LDA then has no unique answer.
    """
    n_classes = len(set(y))
    if n_classes < 2:
        raise DataError("classification: i-vector LDA needs at least two classes")
    dim = X.shape[1]
    if dim > X.shape[0] - n_classes:
        raise DataError(
            f"ivector.rank: {dim} dimensions but only {X.shape[0]} training files in "
            f"{n_classes} classes; the within-class scatter is singular; set ivector.rank "
            f"below {X.shape[0] - n_classes}"
        )
    k = min(n_classes - 1, dim) if lda_dim is None else min(int(lda_dim), n_classes - 1, dim)
    if lda_dim is not None and k < int(lda_dim):
        log.warning(
            "backend.lda_dim: %d directions asked, but %d classes and %d dimensions allow "
            "%d; using %d (set backend.lda_dim: auto to silence this)",
            int(lda_dim),
            n_classes,
            dim,
            k,
            k,
        )
    return LDA(k).fit(X, np.asarray(y)), k


def cosine_classes(train: np.ndarray, y: Sequence[str], test: np.ndarray) -> np.ndarray:
    """Class of highest cosine between each test row and the class means of ``train``
    (rows length-normalised), shape (n_test,)."""
    yv = np.asarray(y)
    labels = np.unique(yv)
    means = np.stack([train[yv == c].mean(axis=0) for c in labels])
    scores = length_normalize(test) @ length_normalize(means).T
    return labels[np.argmax(scores, axis=1)]


def classify_ivectors(
    train: np.ndarray,
    y: Sequence[str],
    groups: Sequence[int],
    test: np.ndarray,
    *,
    scorer: str = "cosine",
    lda_dim: int | None = None,
    classifier: str = "logistic",
    c_grid: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0),
    random_state: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Predicted classes of ``test`` i-vectors from labelled ``train`` i-vectors.

    Parameters
    ----------
    train : ndarray, shape (n, R)
    y : sequence of str, length n
    groups : sequence of int, length n
        The training fold of each training file (for the choice of ``C``).
    test : ndarray, shape (m, R)
    scorer : {"cosine", "logistic"}
    lda_dim, classifier, c_grid, random_state
        See :class:`~gmmspeech.config.classification.ClassificationConfig`.

    Returns
    -------
    predicted : ndarray, shape (m,)
    info : dict
        ``lda_dim`` and, for ``logistic``, ``C``.
    """
    lda, k = lda_projection(train, y, lda_dim)
    a = length_normalize(lda.transform(train))
    b = length_normalize(lda.transform(test))
    if scorer == "cosine":
        return cosine_classes(a, y, b), {"lda_dim": k}
    if scorer == "logistic":
        model, c, _ = fit_linear(
            a, y, groups, classifier=classifier, c_grid=c_grid, random_state=random_state
        )
        return model.predict(b), {"lda_dim": k, "C": c}
    raise DataError(f"classification.ivector_scorer: 'cosine' or 'logistic', got {scorer!r}")
