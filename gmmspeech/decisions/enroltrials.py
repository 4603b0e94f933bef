"""Calibration trials by cross-validation over the target models' enrolment utterances.

With ``scoring.calibration_trials: enroll`` the calibration is trained on trials built from the
enrolment set alone, for corpora whose background speakers cannot give trials like the
targets' (one utterance each: half-utterance models score on another scale than targets
enrolled on a minute, :mod:`gmmspeech.decisions.backgroundtrials`).

Each model with two or more enrolment utterances holds out up to :data:`MAX_FOLDS` of them
(spread over its sorted ids). In fold ``k`` every model is enrolled without its ``k``-th
held-out utterance (a model with fewer held-out utterances, or a single one, is enrolled on
all of its), and every utterance held out in fold ``k`` is tested against every model of the
fold. A pair is a target trial when the utterance's speaker is a speaker of the model; a
pair whose utterance the fold model is enrolled on (an utterance shared by two models) is
left out. The held-out utterances are unseen by the UBM, as the evaluation's test
utterances are, and a fold model is enrolled on ``(n - 1) / n`` of a target model's speech.
The evaluation's test utterances are never read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ..corpus.trials import TrialList
from ..engine import blas_threads
from ..errors import DataError
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import SpeakerModels
from ..mixture.stats import SufficientStats, accumulate
from ..storage.provenance import check_features

#: Held-out utterances per model at most: a calibration has two parameters, and a few hundred
#: target trials fit it well.
MAX_FOLDS = 10
#: Fold model ids are ``<model><FOLD_MARK><k>`` (k from 1).
FOLD_MARK = "#cv"


@dataclass
class EnrolmentFolds:
    """The fold models and the labelled trials of the cross-validation (module docstring).

    Attributes
    ----------
    models : dict of str to list of str
        Fold model id -> the enrolment utterances it is enrolled on (sorted).
    base : dict of str to str
        Fold model id -> the target model it is a fold of.
    trials : TrialList
        (fold model id, held-out utterance) pairs, labelled, in fold then model order.
    n_folds : int
    """

    models: dict[str, list[str]]
    base: dict[str, str]
    trials: TrialList
    n_folds: int


def enrolment_folds(
    model2utt: Mapping[str, Sequence[str]],
    utt2spk: Mapping[str, str],
    max_folds: int = MAX_FOLDS,
) -> EnrolmentFolds:
    """Cross-validation folds over the enrolment utterances (module docstring).

    Parameters
    ----------
    model2utt : mapping of str to sequence of str
        Target model -> its enrolment utterances.
    utt2spk : mapping of str to str
        Speaker of every enrolment utterance (decides which trials are targets).
    max_folds : int
        Held-out utterances per model at most.

    Raises
    ------
    DataError
        No model has two enrolment utterances, or the folds give no target or no non-target
        trial (e.g. a single speaker).
    """
    speakers = {m: {utt2spk[u] for u in utts} for m, utts in model2utt.items()}
    held: dict[str, list[str]] = {}
    for m in sorted(model2utt):
        utts = sorted(model2utt[m])
        if len(utts) >= 2:
            held[m] = utts[:: math.ceil(len(utts) / max_folds)][:max_folds]
    if not held:
        raise DataError(
            f"every one of the {len(model2utt)} models is enrolled on a single utterance, so "
            f"none can be enrolled without one; use scoring.calibration_trials: background"
        )
    n_folds = max(len(h) for h in held.values())
    models: dict[str, list[str]] = {}
    base: dict[str, str] = {}
    model_ids: list[str] = []
    test_ids: list[str] = []
    is_target: list[bool] = []
    for k in range(n_folds):
        tests = sorted({h[k] for h in held.values() if k < len(h)})
        for m in sorted(model2utt):
            out = held.get(m, [])
            left_out = out[k] if k < len(out) else None
            fold_model = f"{m}{FOLD_MARK}{k + 1}"
            models[fold_model] = [u for u in sorted(model2utt[m]) if u != left_out]
            base[fold_model] = m
            enrolled = set(models[fold_model])
            for t in tests:
                if t not in enrolled:
                    model_ids.append(fold_model)
                    test_ids.append(t)
                    is_target.append(utt2spk[t] in speakers[m])
    labels = np.array(is_target, dtype=bool)
    if not labels.any() or labels.all():
        kind = "target" if not labels.any() else "non-target"
        raise DataError(
            f"the cross-validation over the enrolment utterances gives no {kind} trial "
            f"({len(model2utt)} models); use scoring.calibration_trials: background"
        )
    return EnrolmentFolds(models, base, TrialList(model_ids, test_ids, labels), n_folds)


def enrol_folds(
    ubm: DiagGMM,
    features: Mapping[str, ArrayLike],
    folds: EnrolmentFolds,
    *,
    relevance_factor: float,
    adapt: str,
) -> SpeakerModels:
    """MAP models of the fold models, as :func:`gmmspeech.enroll` gives them.

    Each utterance's statistics are accumulated once per target model and summed for each
    fold of it (in the same order as :func:`gmmspeech.enroll` sums them), so the folds cost
    about one enrolment, not ``n_folds``.

    Parameters
    ----------
    ubm : DiagGMM
    features : mapping of str to array of shape (n_frames, D)
        Features of the enrolment utterances.
    folds : EnrolmentFolds
    relevance_factor, adapt
        See :func:`gmmspeech.map_adapt`.
    """
    check_features(features, ubm.feature_config, "the UBM")
    by_base: dict[str, list[str]] = {}
    for fold_model, m in folds.base.items():
        by_base.setdefault(m, []).append(fold_model)
    stats: dict[str, SufficientStats] = {}
    with blas_threads(1):  # per-utterance matrices are small: see engine.blas_threads
        for fold_models in by_base.values():
            utts = sorted({u for fm in fold_models for u in folds.models[fm]})
            per = {u: accumulate(ubm, np.asarray(features[u])) for u in utts}
            for fm in fold_models:
                total = SufficientStats.zeros(ubm.n_components, ubm.n_features, ubm.center)
                for u in folds.models[fm]:
                    total = total + per[u]
                stats[fm] = total
    ordered = {fm: stats[fm] for fm in folds.models}
    return SpeakerModels.from_stats(ubm, ordered, relevance_factor=relevance_factor, adapt=adapt)


__all__ = ["EnrolmentFolds", "FOLD_MARK", "MAX_FOLDS", "enrol_folds", "enrolment_folds"]
