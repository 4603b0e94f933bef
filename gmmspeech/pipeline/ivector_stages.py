"""The i-vector verification stages (``system: ivector``): stats, tv, ivectors, backend, score,
and the calibration trials scored with the i-vector back end.

The UBM, preparation, extraction, normalisation, evaluation and report stages are those of
:mod:`.verification`; :mod:`.runner` lists both in its stage table. Outputs::

    ivectors/stats_<set>.h5   Baum-Welch statistics (background, enroll, test)
    ivectors/tv.h5            the total-variability model, trained on the background set
    ivectors/<set>.h5         i-vectors
    backend/backend.h5        LDA / WCCN / length norm / PLDA, trained on the background set
    scores/raw.txt            back-end scores of the trials
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from ..backend import Backend
from ..enroltrials import enrolment_folds
from ..errors import DataError
from ..gmm import DiagGMM
from ..ivector import IVectorSet, TotalVariability
from ..scorefiles import write_scores
from ..trials import TrialList
from ..uttstats import StatsFile, compute_stats
from .backgroundtrials import BackgroundSplit, speaker_groups, split_background
from .verification import SETS, _per_model, fit_calibration
from .workspace import StageResult, Workspace, _present

log = logging.getLogger(__name__)


def stats(ws: Workspace) -> StageResult:
    """Statistics of every set on the UBM, streamed to ``ivectors/stats_<set>.h5``."""
    ws.path("ivectors").mkdir(parents=True, exist_ok=True)
    ubm_ = DiagGMM.load(ws.path("ubm/ubm.h5"))
    outputs, info = [], {}
    with ws.engine() as engine:
        for name in SETS:
            rel = f"ivectors/stats_{name}.h5"
            with ws.store(name) as store:
                out = compute_stats(
                    ubm_, store, top_n=ws.cfg.ivector.top_n, engine=engine, out=ws.path(rel)
                )
            outputs.append(rel)
            info[name] = len(out)
    return outputs, {"utterances": info}


def tv(ws: Workspace) -> StageResult:
    """The total-variability model ``ivectors/tv.h5``, trained on the background statistics."""
    c = ws.cfg.ivector
    ubm_ = DiagGMM.load(ws.path("ubm/ubm.h5"))
    model = TotalVariability(
        rank=c.rank,
        n_iter=c.n_iter,
        min_divergence=c.min_divergence,
        random_state=c.random_state,
        batch_size=c.batch_size,
    )
    with ws.engine() as engine:
        model.fit(StatsFile(ws.path("ivectors/stats_background.h5"), ubm_), engine=engine)
    model.save(ws.path("ivectors/tv.h5"))
    aux = [round(h["auxiliary"], 4) for h in model.history_]
    return ["ivectors/tv.h5"], {"rank": c.rank, "iterations": c.n_iter, "auxiliary": aux}


def ivectors(ws: Workspace) -> StageResult:
    """i-vectors of every set, ``ivectors/<set>.h5``."""
    ubm_ = DiagGMM.load(ws.path("ubm/ubm.h5"))
    model = TotalVariability.load(ws.path("ivectors/tv.h5"), ubm_)
    outputs = []
    with ws.engine() as engine:
        for name in SETS:
            src = StatsFile(ws.path(f"ivectors/stats_{name}.h5"), ubm_)
            with ws.store(name) as store:
                ids = list(store)  # compute_stats keeps the store's order
            IVectorSet(ids, model.transform(src, engine=engine)).save(
                ws.path(f"ivectors/{name}.h5")
            )
            outputs.append(f"ivectors/{name}.h5")
    return outputs, {"rank": model.rank}


def _fit_backend(
    ws: Workspace,
    vectors: Mapping[str, np.ndarray],
    spk2utt: Mapping[str, Sequence[str]],
    calibration: bool = False,
) -> Backend:
    """A back end of ``backend.*`` trained on the i-vectors of ``spk2utt``; a
    :class:`DataError` names the data dir and the settings that avoid the problem
    (``calibration``: the back end of a calibration group, on the other group's speakers)."""
    ids = [u for spk in sorted(spk2utt) for u in spk2utt[spk] if u in vectors]
    y = [spk for spk in sorted(spk2utt) for u in spk2utt[spk] if u in vectors]
    try:
        return Backend(ws.cfg.backend).fit(np.stack([vectors[u] for u in ids]), y)
    except DataError as exc:
        what, also = "backend", ""
        if calibration:
            what = f"the calibration back end on {len(spk2utt)} of the background speakers"
            also = ", or scoring.calibrate: false"
        raise DataError(
            f"{ws.path('data/background')}: {what}: {exc}; or set backend.scorer: cosine "
            f"with backend.lda_dim: null and backend.wccn: false (no speaker labels "
            f"needed){also}"
        ) from None


def backend(ws: Workspace) -> StageResult:
    """The back end ``backend/backend.h5``, trained on the background i-vectors."""
    ws.path("backend").mkdir(parents=True, exist_ok=True)
    vectors = IVectorSet.load(ws.path("ivectors/background.h5")).as_dict()
    spk2utt = ws.datadir("background").spk2utt
    be = _fit_backend(ws, vectors, spk2utt)
    be.save(ws.path("backend/backend.h5"))
    c = ws.cfg.backend
    return ["backend/backend.h5"], {
        "scorer": c.scorer,
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
    ws.path("scores").mkdir(parents=True, exist_ok=True)
    be = Backend.load(ws.path("backend/backend.h5"))
    vectors = {
        **IVectorSet.load(ws.path("ivectors/enroll.h5")).as_dict(),
        **IVectorSet.load(ws.path("ivectors/test.h5")).as_dict(),
    }
    enroll = {
        m: [u for u in utts if u in vectors] for m, utts in ws.datadir("enroll").enrolment.items()
    }
    enroll = {m: u for m, u in enroll.items() if u}
    all_trials = ws.datadir("test").trials or TrialList([], [])
    trials = all_trials.select(
        [i for i, (m, t) in enumerate(all_trials.pairs) if t in vectors and m in enroll]
    )
    if not len(trials):
        raise DataError(f"{ws.path('data/test/trials')}: no trial can be scored")
    values = score_sets(be, enroll, vectors, trials)
    write_scores(ws.path("scores/raw.txt"), trials.model_ids, trials.test_ids, values)
    return ["scores/raw.txt"], {
        "trials_scored": len(trials),
        "trials_dropped": len(all_trials) - len(trials),
    }


def _halves(
    ws: Workspace, split: BackgroundSplit, vectors: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """i-vectors of the ids of ``split`` that ``vectors`` lacks: the halves of the frames
    of single-utterance speakers (:func:`.backgroundtrials.split_background`)."""
    ids = [u for utts in split.enroll.values() for u in utts] + list(split.test_spk)
    missing = {u: split.features[u] for u in ids if u not in vectors}
    if not missing:
        return {}
    ubm_ = DiagGMM.load(ws.path("ubm/ubm.h5"))
    model = TotalVariability.load(ws.path("ivectors/tv.h5"), ubm_)
    with ws.engine() as engine:
        st = compute_stats(ubm_, missing, top_n=ws.cfg.ivector.top_n, engine=engine)
        return dict(zip(missing, model.transform(st, engine=engine), strict=True))


def calibrate(ws: Workspace) -> StageResult:
    """``scores/calibrated.txt``: a logistic calibration trained on background trials.

    The background speakers are split into groups (:func:`.backgroundtrials.speaker_groups`)
    and each group into models and tests (:func:`.backgroundtrials.split_background`); a
    group's trials are scored with a back end trained on the OTHER background speakers. The
    total-variability model is shared (it is trained without speaker labels, on all of them).
    A speaker with one utterance is enrolled and tested on the two halves of its frames,
    whose i-vectors are computed here. With ``scoring.calibration_trials: enroll`` the
    trials are those of the cross-validation over the enrolment utterances
    (:mod:`gmmspeech.enroltrials`), scored with the back end of the target trials (the TV
    model and the back end never saw them).
    """
    s = ws.cfg.scoring
    if not s.calibrate:
        return [], {"calibrate": False}
    ws.path("calibration").mkdir(parents=True, exist_ok=True)
    if s.calibration_trials == "enroll":
        return _calibration_trials_enroll(ws)
    vectors = IVectorSet.load(ws.path("ivectors/background.h5")).as_dict()
    parts: list[tuple[TrialList, np.ndarray]] = []
    with ws.store("background") as store:
        spk2utt, _ = _present(ws.datadir("background").spk2utt, store)
        groups = speaker_groups(list(spk2utt))
        for group in groups:
            others = {k: v for k, v in spk2utt.items() if k not in set(group)}
            be = _fit_backend(ws, vectors, others, calibration=True)
            split = split_background({k: spk2utt[k] for k in group}, store, _per_model(ws))
            vectors |= _halves(ws, split, vectors)
            enroll, tests = split.enroll, split.test_spk
            pairs = [(m, t) for m in sorted(enroll) for t in sorted(tests)]
            trials = TrialList(
                [m for m, _ in pairs],
                [t for _, t in pairs],
                np.array([tests[t] == m for m, t in pairs], dtype=bool),
            )
            parts.append(
                (trials, score_sets(be, enroll, vectors, trials) if pairs else np.zeros(0))
            )
    n_models = sum(len(set(trials.model_ids)) for trials, _ in parts)
    info = {"source": "background", "groups": len(groups), "models": n_models}
    return fit_calibration(ws, parts, info=info)


def _calibration_trials_enroll(ws: Workspace) -> StageResult:
    """The calibrate stage on the cross-validation trials of the enrolment set."""
    vectors = IVectorSet.load(ws.path("ivectors/enroll.h5")).as_dict()
    en = ws.datadir("enroll")
    enrolment = {m: [u for u in utts if u in vectors] for m, utts in en.enrolment.items()}
    try:
        folds = enrolment_folds({m: u for m, u in enrolment.items() if u}, en.utt2spk)
    except DataError as exc:
        raise DataError(f"{ws.path('data/enroll')}: scoring.calibration_trials: {exc}") from None
    be = Backend.load(ws.path("backend/backend.h5"))
    values = score_sets(be, folds.models, vectors, folds.trials)
    info = {
        "source": "enroll", "folds": folds.n_folds, "models": len(folds.models),
        "utterances_per_model": float(np.median([len(u) for u in folds.models.values()])),
    }  # fmt: skip
    return fit_calibration(ws, [(folds.trials, values)], info=info)
