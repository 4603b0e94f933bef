"""Cohort score normalisation of i-vector scores (``system: ivector`` with ``scoring.norm``).

The i-vector :class:`~gmmspeech.decisions.cohort.Scorer` scores with the back end: trial
models are their enrolment i-vectors, a cohort model is a cohort speaker's first
``per_model`` i-vectors. The cohort builder and the cohort rule are those of the GMM system
(:mod:`gmmspeech.decisions.cohort`, :mod:`gmmspeech.decisions.heldout`): each part of the
cohort is scored with the extractor of a held-out group (``caltv``: a TV model trained on a
UBM re-estimated without the group, and every background, enrolment and test i-vector
extracted by it) and a back end trained on the other speakers' i-vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..corpus.scorefiles import read_scores, write_scores
from ..decisions.cohort import CohortPart, Scorer, normalize_pairs
from ..decisions.heldout import HeldoutUBM, cohort_speakers, heldout_parts
from ..ivector.backend import Backend
from ..ivector.tv import IVectorSet
from .artefacts import CALIBRATION_IVECTORS, IVECTORS, RAW_SCORES, SCORES
from .ivector_stages import fit_backend
from .verification import (
    _labels,
    _per_model,
    heldout_ubms,
    normalised_header,
    normalize_parts,
    scoring_norm,
)
from .workspace import StageResult, Workspace, _present

log = logging.getLogger(__name__)


def ivector_scorer(
    be: Backend, enroll: Mapping[str, Sequence[str]], vectors: Mapping[str, np.ndarray]
) -> Scorer:
    """The i-vector :class:`~gmmspeech.decisions.cohort.Scorer`: models of ``enroll`` (model
    id -> its enrolment utterances) and cohort models scored by ``be`` on ``vectors``."""

    def stack(utts: Sequence[str]) -> np.ndarray:
        return np.stack([vectors[u] for u in utts])

    def trial(model_ids: Sequence[str], utts: Sequence[str]) -> np.ndarray:
        return be.score([stack(enroll[m]) for m in model_ids], stack(utts))

    def enrol(spk2utt: Mapping[str, Sequence[str]]) -> list[np.ndarray]:
        return [stack(u) for u in spk2utt.values()]

    def cohort(models: list[np.ndarray], utts: Sequence[str]) -> np.ndarray:
        return be.score(models, stack(utts))

    return Scorer(trial, enrol, cohort)


def normalize_trials(
    method: str,
    values: np.ndarray,
    keys: Sequence[tuple[str, str]],
    *,
    be: Backend,
    enroll: Mapping[str, Sequence[str]],
    vectors: Mapping[str, np.ndarray],
    cohort: Mapping[str, Sequence[str]],
    per_model: int,
    top_n: int,
) -> np.ndarray:
    """Trial scores ``values`` (n,) of the (model, test) pairs ``keys`` normalised with one
    i-vector cohort scored by ``be`` (no held-out extractor)."""
    part = CohortPart(cohort, ivector_scorer(be, enroll, vectors))
    return normalize_pairs(method, values, keys, [part], top_n=top_n, enroll_utts=per_model)


def group_vectors(ws: Workspace, g: int) -> dict[str, np.ndarray]:
    """The i-vectors of held-out group ``g`` (from 1), extracted by ``caltv``."""
    return IVectorSet.load(ws.path(CALIBRATION_IVECTORS, group=g)).as_dict()


def heldout_normalize(
    ws: Workspace,
    keys: Sequence[tuple[str, str]],
    values: np.ndarray,
    enroll: Mapping[str, Sequence[str]],
    trial_speakers: set[str],
    *,
    model_spk: Mapping[str, str] | None = None,
    test_spk: Mapping[str, str] | None = None,
    known: Mapping[int, tuple[Backend, Mapping[str, np.ndarray]]] | None = None,
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """``values`` of the pairs ``keys`` normalised (``scoring.norm``) by the cohort rule of
    :func:`gmmspeech.decisions.heldout.heldout_parts`: part ``g`` of the cohort scored with
    the extractor of group ``g`` and a back end on the other speakers (``known[g]``: the
    back end and i-vectors the caller already has). Also returns the cohort."""
    s = ws.cfg.scoring
    held = heldout_ubms(ws, ws.ubm())
    with ws.store("background") as store:
        background, _ = _present(ws.datadir("background").spk2utt, store)

    def scorer(g: int, h: HeldoutUBM) -> Scorer:
        if known is not None and g in known:
            be, vectors = known[g]
        else:
            vectors = group_vectors(ws, g + 1)
            outside = {k: v for k, v in background.items() if k not in set(h.speakers)}
            be = fit_backend(ws, vectors, outside, calibration=True)
        return ivector_scorer(be, enroll, vectors)

    cohort = cohort_speakers(background, s.cohort_size)
    parts = heldout_parts(held, cohort, background, trial_speakers, scorer)
    normed = normalize_parts(ws, keys, values, parts, model_spk, test_spk)
    return normed, cohort


def normalize_stage(ws: Workspace) -> StageResult:
    """``scores/scores.txt``: the raw back-end scores, normalised (``scoring.norm``) with a
    cohort of the first ``scoring.cohort_size`` background speakers, each part scored by an
    extractor and a back end that have not seen it (module docstring)."""
    raw = read_scores(ws.path(RAW_SCORES))
    keys = list(raw)
    values = np.array([raw[k] for k in keys])
    info: dict[str, Any] = {"norm": scoring_norm(ws, announce=True)}
    if info["norm"] != "none":
        en = ws.datadir("enroll")
        have = set(IVectorSet.load(ws.path(IVECTORS, set="enroll")).utt_ids)
        enroll = {
            m: [u for u in en.enrolment[m] if u in have] for m in sorted({k[0] for k in keys})
        }
        speakers = {en.utt2spk[u] for utts in enroll.values() for u in utts}
        values, cohort = heldout_normalize(ws, keys, values, enroll, speakers)
        info |= {
            "cohort_speakers": len(cohort),
            "cohort_utterances": sum(len(x) for x in cohort.values()),
            "cohort_utterances_per_model": _per_model(ws),
            "cohort_extractor": "held out",
        }
        tar = _labels(ws, keys)
        if (~tar).any():
            info["nontarget_mean"] = round(float(values[~tar].mean()), 4)
            info["nontarget_std"] = round(float(values[~tar].std()), 4)
    head = normalised_header(ws)
    write_scores(ws.output(SCORES), [k[0] for k in keys], [k[1] for k in keys], values, head)
    return [SCORES.rel()], info


__all__ = [
    "group_vectors",
    "heldout_normalize",
    "ivector_scorer",
    "normalize_stage",
    "normalize_trials",
]
