"""Cohort score normalisation of i-vector scores (``system: ivector`` with ``scoring.norm``).

The cohort is background speakers' i-vectors. Each cohort speaker gives a cohort model,
enrolled like the target models on its first ``per_model`` utterances (sorted ids), and every
one of its utterances is a cohort utterance. With the back end's scorer (cosine or PLDA):

* Z side: each trial model against every cohort utterance;
* T side: every cohort model against each test utterance;
* ZT-norm also scores the cohort models against the cohort utterances (same-speaker pairs
  left out).

The normalisation itself is :func:`gmmspeech.decisions.norm.normalize`, the one the GMM system uses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..corpus.scorefiles import read_scores, write_scores
from ..decisions.norm import CohortScores, log_top_n, normalize
from ..ivector.backend import Backend
from ..ivector.tv import IVectorSet
from .artefacts import BACKEND, IVECTORS, RAW_SCORES, SCORES
from .verification import _cohort, _labels, _per_model
from .workspace import StageResult, Workspace

log = logging.getLogger(__name__)


def cohort_scores(
    method: str,
    be: Backend,
    enroll: Mapping[str, Sequence[str]],
    test_ids: Sequence[str],
    vectors: Mapping[str, np.ndarray],
    cohort: Mapping[str, Sequence[str]],
    per_model: int,
) -> CohortScores:
    """The cohort score matrices of :func:`gmmspeech.decisions.norm.normalize` for i-vector trials.

    Parameters
    ----------
    method : {"z", "t", "zt", "s", "as"}
    be : Backend
        The back end that scored the trials.
    enroll : mapping of str to sequence of str
        Trial model id -> its enrolment utterances, in the order of the rows of
        ``model_cohort``.
    test_ids : sequence of str
        Test utterances, in the order of the rows of ``test_cohort``.
    vectors : mapping of str to ndarray (R,)
        i-vectors of every enrolment, test and cohort utterance.
    cohort : mapping of str to sequence of str
        Cohort speaker -> its utterances; the columns follow this order.
    per_model : int
        Utterances per cohort model (the first of each speaker's list).

    Returns
    -------
    model_cohort : ndarray, shape (len(enroll), n_cohort_utts), or None
        Z side (methods z, zt, s, as).
    test_cohort : ndarray, shape (len(test_ids), n_cohort_speakers), or None
        T side (methods t, zt, s, as).
    cohort_cohort : ndarray, shape (n_cohort_speakers, n_cohort_utts), or None
        Cohort models against cohort utterances, NaN for a speaker's own (method zt).
    """
    cohort_utts = [u for utts in cohort.values() for u in utts]
    utt_spk = np.array([spk for spk, utts in cohort.items() for _ in utts], dtype=object)
    c_utts = np.stack([vectors[u] for u in cohort_utts])
    c_models = [np.stack([vectors[u] for u in list(utts)[:per_model]]) for utts in cohort.values()]
    mc = tc = cc = None
    if method in ("z", "zt", "s", "as"):
        models = [np.stack([vectors[u] for u in utts]) for utts in enroll.values()]
        mc = be.score(models, c_utts)
    if method in ("t", "zt", "s", "as"):
        tc = be.score(c_models, np.stack([vectors[t] for t in test_ids])).T
    if method == "zt":
        same = np.array(list(cohort), dtype=object)[:, None] == utt_spk[None, :]
        cc = np.where(same, np.nan, be.score(c_models, c_utts))
    return mc, tc, cc


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
    """Trial scores ``values`` (n,) of the (model, test) pairs ``keys`` normalised with the
    i-vector cohort of :func:`cohort_scores` by :func:`gmmspeech.decisions.norm.normalize`."""
    if method == "none":
        return np.asarray(values, dtype=np.float64).copy()
    model_ids = sorted({k[0] for k in keys})
    test_ids = sorted({k[1] for k in keys})
    if method == "as":
        log_top_n(top_n, len(cohort), sum(len(u) for u in cohort.values()))
    mc, tc, cc = cohort_scores(
        method, be, {m: enroll[m] for m in model_ids}, test_ids, vectors, cohort, per_model
    )
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


def normalize_stage(ws: Workspace) -> StageResult:
    """``scores/scores.txt``: the raw back-end scores, normalised (``scoring.norm``) with a
    cohort of the first ``scoring.cohort_size`` background speakers' i-vectors."""
    s = ws.cfg.scoring
    raw = read_scores(ws.path(RAW_SCORES))
    keys = list(raw)
    values = np.array([raw[k] for k in keys])
    info: dict[str, Any] = {"norm": s.norm}
    if s.norm != "none":
        vectors = {
            name: v
            for part in ("background", "enroll", "test")
            for name, v in IVectorSet.load(ws.path(IVECTORS, set=part)).as_dict().items()
        }
        enroll = {
            m: [u for u in utts if u in vectors]
            for m, utts in ws.datadir("enroll").enrolment.items()
        }
        with ws.store("background") as store:
            cohort = {k: [u for u in v if u in vectors] for k, v in _cohort(ws, store).items()}
        values = normalize_trials(
            s.norm,
            values,
            keys,
            be=Backend.load(ws.path(BACKEND)),
            enroll=enroll,
            vectors=vectors,
            cohort=cohort,
            per_model=_per_model(ws),
            top_n=s.top_n,
        )
        info |= {
            "cohort_speakers": len(cohort),
            "cohort_utterances": sum(len(x) for x in cohort.values()),
            "cohort_utterances_per_model": _per_model(ws),
        }
        tar = _labels(ws, keys)
        if (~tar).any():
            info["nontarget_mean"] = round(float(values[~tar].mean()), 4)
            info["nontarget_std"] = round(float(values[~tar].std()), 4)
    write_scores(ws.output(SCORES), [k[0] for k in keys], [k[1] for k in keys], values)
    return [SCORES.rel()], info


__all__ = ["cohort_scores", "normalize_stage", "normalize_trials"]
