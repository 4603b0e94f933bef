"""The i-vector stages (``system: ivector``): stats, tv, ivectors, backend, score.

Preparation, extraction and the UBM are those of :mod:`.verification`; the cohort
normalisation is in :mod:`.ivector_cohort`, the calibration and its held-out extractors in
:mod:`.ivector_calibration`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from ..config.ivector import stats_options
from ..corpus.scorefiles import system_header, write_scores
from ..corpus.trials import TrialList
from ..errors import DataError
from ..ivector.backend import Backend
from ..ivector.limits import Choice
from ..ivector.stats import StatsFile, compute_stats
from ..ivector.tv import IVectorSet, TotalVariability, check_same_tv
from .artefacts import BACKEND, DATA_DIR, IVECTORS, RAW_SCORES, STATS, TRIALS, TV
from .feasibility import backend_choice
from .verification import SETS
from .workspace import StageResult, Workspace

log = logging.getLogger(__name__)

#: The sets whose i-vectors the score stage reads: the models' and the test utterances'.
SCORED = ("enroll", "test")


def stats(ws: Workspace) -> StageResult:
    """Statistics of every set on the UBM, streamed to ``ivectors/stats_<set>.h5``."""
    ubm_ = ws.ubm()
    outputs, info = [], {}
    with ws.engine() as engine:
        for name in SETS:
            path = ws.output(STATS, set=name)
            with ws.store(name) as store:
                c = ws.cfg.ivector
                out = compute_stats(ubm_, store, engine=engine, out=path, **stats_options(c))
            outputs.append(STATS.rel(set=name))
            info[name] = len(out)
    return outputs, {"utterances": info}


def new_tv(ws: Workspace) -> TotalVariability:
    """An unfitted total-variability model of the ``ivector:`` settings."""
    c = ws.cfg.ivector
    return TotalVariability(
        rank=c.rank,
        n_iter=c.n_iter,
        min_divergence=c.min_divergence,
        random_state=c.random_state,
        batch_size=c.batch_size,
    )


def tv(ws: Workspace) -> StageResult:
    """The total-variability model ``ivectors/tv.h5``, trained on the background statistics."""
    c = ws.cfg.ivector
    ubm_ = ws.ubm()
    model = new_tv(ws)
    with ws.engine() as engine:
        model.fit(StatsFile(ws.path(STATS, set="background"), ubm_), engine=engine)
    model.save(ws.output(TV))
    aux = [round(h["auxiliary"], 4) for h in model.history_]
    return [TV.rel()], {"rank": c.rank, "iterations": c.n_iter, "auxiliary": aux}


def ivectors(ws: Workspace) -> StageResult:
    """i-vectors of every set, ``ivectors/<set>.h5``."""
    ubm_ = ws.ubm()
    model = TotalVariability.load(ws.path(TV), ubm_)
    outputs = []
    with ws.engine() as engine:
        for name in SETS:
            src = StatsFile(ws.path(STATS, set=name), ubm_)
            with ws.store(name) as store:
                src.check_utterances(list(store), f"the feature store of {name}")
            vectors = model.transform(src, engine=engine)
            IVectorSet(src.utt_ids, vectors, tv=model.fingerprint).save(
                ws.output(IVECTORS, set=name)
            )
            outputs.append(IVECTORS.rel(set=name))
    return outputs, {"rank": model.rank}


def backend_config(ws: Workspace, vectors: Mapping[str, np.ndarray]) -> Choice:
    """``backend.*`` with its ``auto`` options chosen for every back end of the experiment
    (:func:`.feasibility.backend_choice`), on the background utterances that have i-vectors
    in ``vectors``: the choice the feasibility check logged, unless extraction lost some."""
    background = {
        spk: [u for u in utts if u in vectors]
        for spk, utts in ws.datadir("background").spk2utt.items()
    }
    return backend_choice(ws.cfg, background)


def fit_backend(
    ws: Workspace,
    vectors: Mapping[str, np.ndarray],
    spk2utt: Mapping[str, Sequence[str]],
    calibration: bool = False,
) -> Backend:
    """A back end of ``backend.*`` (``auto`` chosen by :func:`backend_config`) trained on the
    i-vectors of ``spk2utt``; a :class:`DataError` names the data dir and the settings that
    avoid the problem (``calibration``: the back end of a calibration group, on the other
    group's speakers)."""
    ids = [u for spk in sorted(spk2utt) for u in spk2utt[spk] if u in vectors]
    y = [spk for spk in sorted(spk2utt) for u in spk2utt[spk] if u in vectors]
    config = backend_config(ws, vectors).config
    try:
        return Backend(config).fit(np.stack([vectors[u] for u in ids]), y)
    except DataError as exc:
        what, also = "backend", ""
        if calibration:
            what = f"the calibration back end on {len(spk2utt)} of the background speakers"
            also = ", or scoring.calibrate: false"
        raise DataError(
            f"{ws.path(DATA_DIR, set='background')}: {what}: {exc}; or set backend.scorer: cosine "
            f"with backend.lda_dim: null and backend.wccn: false (no speaker labels "
            f"needed){also}"
        ) from None


def backend(ws: Workspace) -> StageResult:
    """The back end ``backend/backend.h5``, trained on the background i-vectors."""
    ivs = IVectorSet.load(ws.path(IVECTORS, set="background"))
    spk2utt = ws.datadir("background").spk2utt
    choice = backend_config(ws, ivs.as_dict())
    if choice.reasons:  # logged by the feasibility check at the start of the run
        log.debug("%s", choice.summary())
    be = fit_backend(ws, ivs.as_dict(), spk2utt)
    be.tv_fingerprint_ = ivs.tv
    be.save(ws.output(BACKEND))
    c = be.config
    return [BACKEND.rel()], {
        "scorer": c.scorer,
        "lda_dim": c.lda_dim,
        "auto": {f"backend.{k}": why for k, why in choice.reasons.items()},
        "speakers": len(spk2utt),
        "dim": be.mean_.size,
    }


def score_sets(
    be: Backend,
    enroll: Mapping[str, Sequence[str]],
    vectors: Mapping[str, np.ndarray],
    trials: TrialList,
) -> np.ndarray:
    """Back-end scores of ``trials`` (model ids of ``enroll``, test ids of ``vectors``).

    Parameters
    ----------
    be : Backend
    enroll : mapping of str to sequence of str
        Model id -> the utterance ids it is enrolled on (all in ``vectors``).
    vectors : mapping of str to ndarray (R,)
        i-vectors of the enrolment and test utterances.
    trials : TrialList

    Returns
    -------
    ndarray, shape (n_trials,)
    """
    models = sorted(set(trials.model_ids))
    tests = sorted(set(trials.test_ids))
    mat = be.score(
        [np.stack([vectors[u] for u in enroll[m]]) for m in models],
        np.stack([vectors[t] for t in tests]),
    )
    mi = {m: i for i, m in enumerate(models)}
    ti = {t: i for i, t in enumerate(tests)}
    return np.array([mat[mi[m], ti[t]] for m, t in trials.pairs])


def score(ws: Workspace) -> StageResult:
    """Raw back-end scores of the trials that have i-vectors, ``scores/raw.txt``."""
    be = Backend.load(ws.path(BACKEND))
    sets = {ws.path(IVECTORS, set=s): IVectorSet.load(ws.path(IVECTORS, set=s)) for s in SCORED}
    tv_fp = check_same_tv(
        {ws.path(BACKEND): be.tv_fingerprint_} | {p: x.tv for p, x in sets.items()}
    )
    vectors = {u: v for iv in sets.values() for u, v in iv.as_dict().items()}
    enroll = {
        m: [u for u in utts if u in vectors] for m, utts in ws.datadir("enroll").enrolment.items()
    }
    enroll = {m: u for m, u in enroll.items() if u}
    all_trials = ws.datadir("test").trials or TrialList([], [])
    trials = all_trials.select(
        [i for i, (m, t) in enumerate(all_trials.pairs) if t in vectors and m in enroll]
    )
    if not len(trials):
        raise DataError(f"{ws.path(TRIALS)}: no trial can be scored")
    values = score_sets(be, enroll, vectors, trials)
    head = system_header(tv=tv_fp, scorer=be.config.scorer, norm="none")
    write_scores(ws.output(RAW_SCORES), trials.model_ids, trials.test_ids, values, head)
    return [RAW_SCORES.rel()], {
        "trials_scored": len(trials),
        "trials_dropped": len(all_trials) - len(trials),
    }
