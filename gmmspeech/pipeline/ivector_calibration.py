"""The held-out extractors of the i-vector system, and its calibration trials.

The UBM and the total-variability model of the target trials were trained on every
background speaker, and an extractor fits its own training speakers: their i-vectors are
better separated than those of unseen speakers, so a calibration fitted on their trials is
over-confident on the targets, and a cohort of them gives too-low cohort statistics. So the
stage ``caltv`` takes each held-out UBM of the ubm stage (:mod:`gmmspeech.decisions.heldout`),
computes the background statistics on it, trains a TV model on the OTHER background
speakers' statistics only (same settings as ``tv``) and extracts every background i-vector
with it, and, with ``scoring.norm``, every enrolment and test i-vector too. In
``calibrate`` a group's trials are scored with those i-vectors and a back end trained on
the other speakers' ones, and normalised exactly as the target trials are
(:func:`.ivector_cohort.heldout_normalize`). Outputs::

    ivectors/tv_calibration_<g>.h5   the TV model without group g (g = 1, 2)
    ivectors/calibration_<g>.h5      the i-vectors that model extracts
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..config.ivector import stats_options
from ..corpus.trials import TrialList
from ..decisions.backgroundtrials import BackgroundSplit, split_background
from ..decisions.enroltrials import enrolment_folds
from ..decisions.heldout import needs_heldout
from ..errors import DataError
from ..ivector.backend import Backend
from ..ivector.stats import compute_stats
from ..ivector.tv import IVectorSet, TotalVariability
from ..storage.scratch import scratch_folder
from .artefacts import BACKEND, CALIBRATION_IVECTORS, CALIBRATION_TV, DATA_DIR, IVECTORS
from .ivector_cohort import group_vectors, heldout_normalize
from .ivector_stages import fit_backend, new_tv, score_sets
from .verification import _per_model, fit_calibration, heldout_ubms, scoring_norm
from .workspace import StageResult, Workspace, _present

log = logging.getLogger(__name__)


def caltv(ws: Workspace) -> StageResult:
    """Per held-out UBM g, ``ivectors/tv_calibration_<g>.h5`` trained without its speakers
    and ``ivectors/calibration_<g>.h5``, the i-vectors it extracts (nothing when neither
    the background calibration trials nor a cohort normalisation needs them)."""
    s = ws.cfg.scoring
    if not needs_heldout(scoring_norm(ws), s.calibrate, s.calibration_trials):
        return [], {"calibrate": s.calibrate, "calibration_trials": s.calibration_trials}
    held = heldout_ubms(ws, ws.ubm())
    sets = ["background"] + (["enroll", "test"] if scoring_norm(ws) != "none" else [])
    outputs: list[str] = []
    info: list[dict[str, object]] = []
    with ws.store("background") as store:
        spk2utt, _ = _present(ws.datadir("background").spk2utt, store)
    for g, h in enumerate(held, 1):
        log.info("held-out extractor %d: without %d speakers", g, len(h.speakers))
        out = set(h.speakers)
        others = [x for spk in sorted(spk2utt) if spk not in out for x in spk2utt[spk]]
        model = new_tv(ws)
        ids: list[str] = []
        parts: list[np.ndarray] = []
        # the statistics under the held-out UBM are only needed here: temporary files, so
        # that memory does not grow with the sets
        tv_path = ws.output(CALIBRATION_TV, group=g)
        with ws.engine() as engine, scratch_folder(tv_path.parent) as tmp:
            for name in sets:
                with ws.store(name) as st:
                    stats = compute_stats(
                        h.ubm,
                        st,
                        engine=engine,
                        out=Path(tmp) / f"{name}.h5",
                        **stats_options(ws.cfg.ivector),
                    )
                    if name == "background":
                        model.fit(stats.select(others), engine=engine)
                    parts.append(model.transform(stats, engine=engine))
                    ids += list(stats.utt_ids)
        model.save(tv_path)
        IVectorSet(ids, np.concatenate(parts), tv=model.fingerprint).save(
            ws.output(CALIBRATION_IVECTORS, group=g)
        )
        outputs += [CALIBRATION_TV.rel(group=g), CALIBRATION_IVECTORS.rel(group=g)]
        aux = [round(x["auxiliary"], 4) for x in model.history_]
        info.append({"held_out": len(h.speakers), "utterances": len(others), "auxiliary": aux})
    return outputs, {"groups": info, "sets": sets}


def _halves(
    ws: Workspace,
    model: TotalVariability,
    split: BackgroundSplit,
    vectors: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """i-vectors (from ``model``) of the ids of ``split`` that ``vectors`` lacks: the halves
    of the frames of single-utterance speakers (:func:`.backgroundtrials.split_background`)."""
    ids = [u for utts in split.enroll.values() for u in utts] + list(split.test_spk)
    missing = {u: split.features[u] for u in ids if u not in vectors}
    if not missing:
        return {}
    with ws.engine() as engine:
        c = ws.cfg.ivector
        st = compute_stats(model.ubm_, missing, engine=engine, **stats_options(c))
        return dict(zip(missing, model.transform(st, engine=engine), strict=True))


def calibrate(ws: Workspace) -> StageResult:
    """``scores/calibrated.txt``: a logistic calibration trained on background trials, each
    group's scored with the i-vectors of ``caltv`` and a back end of the other speakers,
    and normalised as the target trials are (module docstring); the tail is
    :func:`.verification.fit_calibration`."""
    s = ws.cfg.scoring
    if not s.calibrate:
        return [], {"calibrate": False}
    if s.calibration_trials == "enroll":
        return _calibration_trials_enroll(ws)
    held = heldout_ubms(ws, ws.ubm())
    parts: list[tuple[TrialList, np.ndarray]] = []
    with ws.store("background") as store:
        spk2utt, _ = _present(ws.datadir("background").spk2utt, store)
        for g, h in enumerate(held, 1):
            vectors = group_vectors(ws, g)
            outside = {k for k in spk2utt if k not in set(h.speakers)}
            be = fit_backend(ws, vectors, {k: spk2utt[k] for k in outside}, calibration=True)
            split = split_background({k: spk2utt[k] for k in h.speakers}, store, _per_model(ws))
            if len(split.features.halved):
                model = TotalVariability.load(ws.path(CALIBRATION_TV, group=g))
                vectors |= _halves(ws, model, split, vectors)
            enroll, tests = split.enroll, split.test_spk
            pairs = [(m, t) for m in sorted(enroll) for t in sorted(tests)]
            trials = TrialList(
                [m for m, _ in pairs],
                [t for _, t in pairs],
                np.array([tests[t] == m for m, t in pairs], dtype=bool),
            )
            values = score_sets(be, enroll, vectors, trials) if pairs else np.zeros(0)
            if scoring_norm(ws) != "none" and pairs:
                values, _ = heldout_normalize(
                    ws,
                    trials.pairs,
                    values,
                    enroll,
                    set(h.speakers),
                    model_spk={m: m for m in enroll},
                    test_spk=tests,
                    known={g - 1: (be, vectors)},
                )
            parts.append((trials, values))
    n_models = sum(len(set(trials.model_ids)) for trials, _ in parts)
    info = {"groups": len(held), "models": n_models, "extractor": "held out per group"}
    return fit_calibration(ws, parts, info=info)


def _calibration_trials_enroll(ws: Workspace) -> StageResult:
    """The calibrate stage on the cross-validation trials of the enrolment set
    (:mod:`gmmspeech.decisions.enroltrials`), scored with the back end of the target trials and
    normalised like them (the TV model and the back end never saw those speakers)."""
    vectors = {
        name: v
        for part in ("background", "enroll")
        for name, v in IVectorSet.load(ws.path(IVECTORS, set=part)).as_dict().items()
    }
    en = ws.datadir("enroll")
    enrolment = {m: [u for u in utts if u in vectors] for m, utts in en.enrolment.items()}
    try:
        folds = enrolment_folds({m: u for m, u in enrolment.items() if u}, en.utt2spk)
    except DataError as exc:
        where = ws.path(DATA_DIR, set="enroll")
        raise DataError(f"{where}: scoring.calibration_trials: {exc}") from None
    be = Backend.load(ws.path(BACKEND))
    values = score_sets(be, folds.models, vectors, folds.trials)
    if scoring_norm(ws) != "none" and len(values):
        speakers = {en.utt2spk[u] for us in folds.models.values() for u in us}
        values, _ = heldout_normalize(ws, folds.trials.pairs, values, folds.models, speakers)
    info = {
        "source": "enroll",
        "folds": folds.n_folds,
        "models": len(folds.models),
        "utterances_per_model": float(np.median([len(u) for u in folds.models.values()])),
    }
    return fit_calibration(ws, [(folds.trials, values)], info=info)


__all__ = ["caltv", "calibrate"]
