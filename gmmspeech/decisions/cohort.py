"""The one cohort builder: cohort score matrices from a score function, for any system.

A system gives a :class:`Scorer`: how its trial models score utterances, how a cohort
speaker is enrolled as a cohort model, and how cohort models score utterances. The GMM-UBM
system scores by MAP models under a UBM (:func:`gmm_scorer`), the i-vector system by its
back end (:mod:`gmmspeech.pipeline.ivector_cohort`). :func:`cohort_matrices` then builds
the Z, T and ZT cohort matrices of :mod:`gmmspeech.decisions.norm`, and
:func:`normalize_pairs` normalises trial scores with one or more cohort parts, each scored
under its own model (the held-out parts of :mod:`gmmspeech.decisions.heldout`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import SpeakerModels, enroll
from .norm import CohortScores, log_top_n, normalize
from .scoring import ModelBank, score_matrix

log = logging.getLogger(__name__)


@dataclass
class Scorer:
    """How a system scores, for the cohort builder.

    Attributes
    ----------
    trial : callable
        ``trial(model_ids, utt_ids) -> ndarray (len(model_ids), len(utt_ids))``: the trials'
        models against utterances.
    enrol : callable
        ``enrol(spk2utt) -> cohort models`` (any object :attr:`cohort` takes), one per
        speaker in the order of ``spk2utt``.
    cohort : callable
        ``cohort(models, utt_ids) -> ndarray (n_models, len(utt_ids))``.
    """

    trial: Callable[[Sequence[str], Sequence[str]], np.ndarray]
    enrol: Callable[[Mapping[str, Sequence[str]]], Any]
    cohort: Callable[[Any, Sequence[str]], np.ndarray]


@dataclass
class CohortPart:
    """A cohort (speaker -> utterances, in column order) and the scorer that scores it."""

    spk2utt: Mapping[str, Sequence[str]]
    scorer: Scorer


def _leave_out(
    matrix: np.ndarray,
    row_ids: Sequence[str],
    row_spk: Mapping[str, str] | None,
    col_spk: np.ndarray,
) -> np.ndarray:
    """``matrix`` (rows, cohort) with NaN where a row's speaker is the cohort column's."""
    if row_spk is None:
        return matrix
    spk = np.array([row_spk.get(r, "") for r in row_ids], dtype=object)
    same = spk[:, None] == col_spk.astype(object)[None, :]
    return np.where(same, np.nan, matrix)


def cohort_matrices(
    method: str,
    model_ids: Sequence[str],
    test_ids: Sequence[str],
    part: CohortPart,
    *,
    enroll_utts: int | None = None,
    model_spk: Mapping[str, str] | None = None,
    test_spk: Mapping[str, str] | None = None,
) -> CohortScores:
    """The cohort score matrices of :func:`gmmspeech.decisions.norm.normalize`.

    The Z side scores the trial models against every cohort utterance; the T side enrols
    one cohort model per cohort speaker on its first ``enroll_utts`` utterances (all: None)
    and scores it against every test utterance; ZT-norm also scores the cohort models
    against the cohort utterances. Entries of a row's own speaker are NaN (left out): a
    cohort model's own utterances, and with ``model_spk`` / ``test_spk`` the cohort speaker
    that a model or test utterance belongs to.

    Parameters
    ----------
    method : {"z", "t", "zt", "s", "as"}
    model_ids, test_ids : sequence of str
        Distinct ids, in the order of the rows.
    part : CohortPart
    enroll_utts : int, optional
    model_spk, test_spk : mapping of str to str, optional

    Returns
    -------
    model_cohort : ndarray, shape (len(model_ids), n_cohort_utts), or None
        Z side (methods z, zt, s, as).
    test_cohort : ndarray, shape (len(test_ids), n_cohort_speakers), or None
        T side (methods t, zt, s, as).
    cohort_cohort : ndarray, shape (n_cohort_speakers, n_cohort_utts), or None
        Cohort models against cohort utterances (method zt).
    """
    spk2utt = {spk: list(utts) for spk, utts in part.spk2utt.items()}
    cohort_utts = [u for utts in spk2utt.values() for u in utts]
    utt_spk = np.array([spk for spk, utts in spk2utt.items() for _ in utts], dtype=object)
    cohort_ids = np.array(list(spk2utt), dtype=object)
    mc = tc = cc = None
    if method in ("z", "zt", "s", "as"):
        log.info("Z side: %d models x %d cohort utterances", len(model_ids), len(cohort_utts))
        mc = _leave_out(
            part.scorer.trial(list(model_ids), cohort_utts), model_ids, model_spk, utt_spk
        )
    if method in ("t", "zt", "s", "as"):
        n = enroll_utts
        models = part.scorer.enrol({spk: utts[:n] for spk, utts in spk2utt.items()})
        log.info("T side: %d cohort models x %d test utterances", len(spk2utt), len(test_ids))
        tc = part.scorer.cohort(models, list(test_ids)).T
        tc = _leave_out(tc, test_ids, test_spk, cohort_ids)
        if method == "zt":
            same = cohort_ids[:, None] == utt_spk[None, :]
            cc = np.where(same, np.nan, part.scorer.cohort(models, cohort_utts))
    return mc, tc, cc


def normalize_pairs(
    method: str,
    values: np.ndarray,
    keys: Sequence[tuple[str, str]],
    parts: Sequence[CohortPart],
    *,
    top_n: int,
    enroll_utts: int | None = None,
    model_spk: Mapping[str, str] | None = None,
    test_spk: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Scores ``values`` (n,) of the (model, test id) pairs ``keys`` normalised by
    ``method`` with the cohort ``parts`` side by side (each scored by its own scorer;
    ZT's cohort-against-cohort block only within a part).

    Returns
    -------
    ndarray, shape (n,), float64
    """
    if method == "none":
        return np.asarray(values, dtype=np.float64).copy()
    model_ids = sorted({k[0] for k in keys})
    test_ids = sorted({k[1] for k in keys})
    if method == "as":
        n_spk = sum(len(p.spk2utt) for p in parts)
        log_top_n(top_n, n_spk, sum(len(u) for p in parts for u in p.spk2utt.values()))
    mats = [
        cohort_matrices(
            method,
            model_ids,
            test_ids,
            p,
            enroll_utts=enroll_utts,
            model_spk=model_spk,
            test_spk=test_spk,
        )
        for p in parts
    ]
    mc, tc, cc = _join(mats)
    m_pos = {m: i for i, m in enumerate(model_ids)}
    t_pos = {t: i for i, t in enumerate(test_ids)}
    return normalize(
        method,
        values,
        model_index=np.array([m_pos[k[0]] for k in keys], dtype=np.int64),
        test_index=np.array([t_pos[k[1]] for k in keys], dtype=np.int64),
        model_cohort=mc,
        test_cohort=tc,
        cohort_cohort=cc,
        top_n=top_n,
    )


def _join(parts: list[CohortScores]) -> CohortScores:
    """Cohort matrices of the parts side by side (``cohort_cohort`` block-diagonal, NaN
    between parts: only scored within a part, under that part's model)."""
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


class Either(Mapping[str, Any]):
    """Features of ``first``, else of ``second`` (test and cohort utterances in one mapping)."""

    def __init__(self, first: Mapping[str, Any], second: Mapping[str, Any]) -> None:
        self.first, self.second = first, second
        # the feature config check of the scorers reads ``config`` (a FeatureStore's)
        self.config = getattr(first, "config", None) or getattr(second, "config", None)

    def __getitem__(self, key: str) -> Any:
        return self.first[key] if key in self.first else self.second[key]

    def __contains__(self, key: object) -> bool:
        return key in self.first or key in self.second

    def __iter__(self) -> Iterator[str]:
        yield from self.first
        yield from (k for k in self.second if k not in self.first)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def gmm_scorer(
    ubm: DiagGMM,
    models: SpeakerModels,
    features: Mapping[str, np.ndarray],
    *,
    relevance_factor: float,
    adapt: str,
    method: str = "topc",
    top_c: int | None = 5,
    progress: bool = False,
) -> Scorer:
    """The GMM-UBM :class:`Scorer`: MAP models (``models``; cohort models enrolled from
    ``ubm``) scored by :func:`gmmspeech.decisions.scoring.score_matrix` on ``features``
    (test and cohort utterances: see :class:`Either`)."""
    kw: dict[str, Any] = {"method": method, "top_c": top_c, "progress": progress}

    def trial(model_ids: Sequence[str], utts: Sequence[str]) -> np.ndarray:
        return score_matrix(
            ubm, ModelBank(ubm, models.subset(list(model_ids))), features, utts, **kw
        )

    def enrol(spk2utt: Mapping[str, Sequence[str]]) -> SpeakerModels:
        return enroll(ubm, features, spk2utt, relevance_factor=relevance_factor, adapt=adapt)

    def cohort(cm: SpeakerModels, utts: Sequence[str]) -> np.ndarray:
        return score_matrix(ubm, ModelBank(ubm, cm), features, utts, **kw)

    return Scorer(trial, enrol, cohort)


__all__ = [
    "CohortPart",
    "Either",
    "Scorer",
    "cohort_matrices",
    "gmm_scorer",
    "normalize_pairs",
]
