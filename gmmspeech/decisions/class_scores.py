"""Class decisions from MAP-adapted class models: frame-averaged LLRs and their argmax.

Kept apart from :mod:`gmmspeech.decisions.classifier` (the scikit-learn estimator) so that
the pipeline, which imports this for its classification folds, does not load scikit-learn:
every ``gmmspeech run``, the demo's included, would otherwise pay about 0.6 s for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import SpeakerModels
from .scoring import score_matrix


def class_llrs(
    ubm: DiagGMM,
    class_models: SpeakerModels,
    features: Any,
    utt_ids: Sequence[str],
    *,
    method: str = "topc",
    top_c: int | None = 5,
    progress: bool = False,
) -> np.ndarray:
    """Frame-averaged LLR of every class model for every utterance.

    Parameters
    ----------
    ubm : DiagGMM
        The UBM the class models were adapted from.
    class_models : SpeakerModels
        One model per class.
    features : mapping of str to ndarray (n_frames, n_features)
    utt_ids : sequence of str, length n
    method, top_c, progress
        As :func:`gmmspeech.score_matrix`.

    Returns
    -------
    ndarray, shape (n, n_classes)
        Column ``j`` belongs to ``class_models.ids[j]``.
    """
    return score_matrix(
        ubm, class_models, features, utt_ids, method=method, top_c=top_c, progress=progress
    ).T


def best_classes(llrs: np.ndarray, class_ids: Sequence[str]) -> list[str]:
    """The class of highest LLR in each row (equal priors; the first on a tie).

    Parameters
    ----------
    llrs : ndarray, shape (n, n_classes)
        As :func:`class_llrs` returns.
    class_ids : sequence of str, length n_classes
        The class of each column.

    Returns
    -------
    list of str, length n
    """
    return [class_ids[j] for j in np.argmax(llrs, axis=1)]
