"""Cohort scores from a UBM that has not seen the cohort.

The cohort speakers are background speakers, and the UBM was trained on them: it fits their
utterances better than unseen ones, so a target model's scores against them (the Z side)
are lower than against unseen impostors, and cohort models adapted from it score lower too
(the T side). The cohort statistics are then too low, and S-normalised non-target scores
centre above 0 (0.45 on Arabic Speech Commands). As for the calibration trials
(:mod:`gmmspeech.decisions.backgroundtrials`), the cohort is split into groups, and the
cohort scores of a group are computed with :func:`heldout_ubm`, the UBM re-estimated
without that group's frames, and with the trials' models enrolled again from it, so that
model, UBM and cohort stand as the target models, the UBM and the unseen test utterances
do. Used by the pipeline's normalize and calibrate stages and by ``gmmspeech score
--heldout-ubm``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..features.store import FeatureStore
from ..mixture.em import Chunked, accumulate_shard, estimate
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import SpeakerModels
from .norm import CohortScores, cohort_matrices, log_top_n, normalize

log = logging.getLogger(__name__)

#: Groups of speakers held out from the UBM in turn (the cohort here, the background
#: speakers of the calibration trials in :mod:`gmmspeech.decisions.backgroundtrials`).
GROUPS = 2


def speaker_groups(speakers: Sequence[str], n_groups: int = GROUPS) -> list[list[str]]:
    """``n_groups`` groups of the sorted speakers, dealt in turn (sizes differ by <= 1)."""
    ordered = sorted(speakers)
    return [ordered[g::n_groups] for g in range(n_groups)]


def heldout_ubm(
    ubm: DiagGMM, frames: Chunked, *, min_count: float, min_weight: float, chunk_size: int
) -> DiagGMM:
    """The UBM re-estimated on ``frames`` only: one E-step under ``ubm``, one M-step.

    Starting from the trained UBM, one EM step on the frames of the other speakers moves
    it most of the way to a UBM that never saw the left-out ones, at the cost of one pass.
    """
    stats = accumulate_shard(frames, (ubm, chunk_size))
    floor = ubm.var_floor if ubm.var_floor is not None else ubm.variances.min(axis=0)
    w, m, v, _ = estimate(
        stats, var_floor=floor, min_count=min_count, min_weight=min_weight, split_epsilon=0.5
    )
    out = DiagGMM(w, m, v, var_floor=ubm.var_floor)
    return out


@dataclass
class CohortOptions:
    """Options of :func:`gmmspeech.decisions.norm.cohort_matrices` and of the held-out UBMs."""

    relevance_factor: float
    adapt: str
    score_method: str
    top_c: int | None
    enroll_utts: int
    min_count: float
    min_weight: float
    chunk_size: int
    progress: bool = False


def heldout_cohort_scores(
    method: str,
    model_ids: Sequence[str],
    test_ids: Sequence[str],
    *,
    ubm: DiagGMM,
    enrol: Callable[[DiagGMM], SpeakerModels],
    test_features: Mapping[str, np.ndarray],
    store: FeatureStore,
    background: Mapping[str, Sequence[str]],
    cohort: Mapping[str, Sequence[str]],
    opts: CohortOptions,
) -> CohortScores:
    """Cohort matrices of :func:`gmmspeech.decisions.norm.cohort_matrices`, each group of the cohort
    scored with a UBM re-estimated without it (module docstring).

    Parameters
    ----------
    method : {"z", "t", "zt", "s", "as"}
    model_ids, test_ids : sequence of str
        Distinct ids, in the order of the rows.
    ubm : DiagGMM
        The trained UBM.
    enrol : callable
        UBM -> the models of ``model_ids`` enrolled from it (as they were from ``ubm``).
    test_features : mapping of str to ndarray (n_frames, n_features)
    store : FeatureStore
        Features of the background (and cohort) utterances.
    background : mapping of str to sequence of str
        Every background speaker the UBM was trained on, with its utterances.
    cohort : mapping of str to sequence of str
        The cohort speakers (a subset of ``background``) and their utterances.
    opts : CohortOptions

    Returns
    -------
    model_cohort, test_cohort, cohort_cohort
        As :func:`gmmspeech.decisions.norm.cohort_matrices` with the cohort in the order of the
        groups (:func:`speaker_groups`); ``cohort_cohort`` is NaN
        between groups (only scored within a group, under that group's UBM).
    """
    groups = [g for g in speaker_groups(list(cohort)) if g]
    parts: list[CohortScores] = []
    for g, group in enumerate(groups):
        inside = set(group)
        others = [u for spk in sorted(background) if spk not in inside for u in background[spk]]
        ubm_g = heldout_ubm(
            ubm,
            store.select(others),
            min_count=opts.min_count,
            min_weight=opts.min_weight,
            chunk_size=opts.chunk_size,
        )
        log.info(
            "cohort group %d/%d: %d speakers, UBM without them", g + 1, len(groups), len(group)
        )
        parts.append(
            cohort_matrices(
                method,
                model_ids,
                test_ids,
                ubm=ubm_g,
                models=enrol(ubm_g),
                test_features=test_features,
                cohort_features=store,
                cohort_spk2utt={spk: list(cohort[spk]) for spk in group},
                relevance_factor=opts.relevance_factor,
                adapt=opts.adapt,
                score_method=opts.score_method,
                top_c=opts.top_c,
                enroll_utts=opts.enroll_utts,
                progress=opts.progress,
            )
        )
    return _join(parts)


def heldout_normalize(
    method: str,
    values: np.ndarray,
    keys: Sequence[tuple[str, str]],
    *,
    top_n: int,
    **kwargs: Any,
) -> np.ndarray:
    """Normalise trial scores ``values`` (n,) of the (model, test id) pairs ``keys`` with
    :func:`heldout_cohort_scores` (``kwargs``: its keyword arguments); ``top_n`` is the
    adaptive S-norm's."""
    model_ids = sorted({k[0] for k in keys})
    test_ids = sorted({k[1] for k in keys})
    if method == "as":
        cohort = kwargs["cohort"]
        log_top_n(top_n, len(cohort), sum(len(u) for u in cohort.values()))
    mc, tc, cc = heldout_cohort_scores(method, model_ids, test_ids, **kwargs)
    m_pos = {m: i for i, m in enumerate(model_ids)}
    t_pos = {t: i for i, t in enumerate(test_ids)}
    return normalize(
        method,
        values,
        model_index=np.array([m_pos[k[0]] for k in keys]),
        test_index=np.array([t_pos[k[1]] for k in keys]),
        model_cohort=mc,
        test_cohort=tc,
        cohort_cohort=cc,
        top_n=top_n,
    )


def _join(parts: list[CohortScores]) -> CohortScores:
    """Cohort matrices of the groups side by side (``cohort_cohort`` block-diagonal)."""
    mc = [p[0] for p in parts if p[0] is not None]
    tc = [p[1] for p in parts if p[1] is not None]
    cc = [p[2] for p in parts if p[2] is not None]
    cohort_cohort = None
    if cc:
        rows, cols = sum(c.shape[0] for c in cc), sum(c.shape[1] for c in cc)
        cohort_cohort = np.full((rows, cols), np.nan)
        r = c0 = 0
        for c in cc:
            cohort_cohort[r : r + c.shape[0], c0 : c0 + c.shape[1]] = c
            r, c0 = r + c.shape[0], c0 + c.shape[1]
    return (
        np.hstack(mc) if mc else None,
        np.hstack(tc) if tc else None,
        cohort_cohort,
    )


__all__ = [
    "GROUPS",
    "CohortOptions",
    "heldout_cohort_scores",
    "heldout_normalize",
    "heldout_ubm",
    "speaker_groups",
]
