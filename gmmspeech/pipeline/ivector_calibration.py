"""Calibration trials of the i-vector system, from extractors that have not seen them.

The background speakers are split into groups (:func:`.backgroundtrials.speaker_groups`)
and each group into models and tests (:func:`.backgroundtrials.split_background`). The
UBM and the total-variability model of the target trials were trained on every background
speaker, and an extractor fits its own training speakers: their i-vectors are better
separated than those of unseen speakers, so a calibration fitted on their trials is
over-confident on the targets (on Arabic Speech Commands, calibrated actDCF 4.1 against 1.0
raw). So the stage ``caltv`` re-estimates, for each group, the UBM without the group
(:func:`.backgroundtrials.heldout_ubm`, as the GMM system does), computes the background
statistics on it, trains a TV model on the OTHER background speakers' statistics only (same
settings as ``tv``) and extracts every background i-vector with it; in
``calibrate`` a group's trials are scored with those i-vectors and a back end trained on
the other speakers' ones, and normalised (``scoring.norm``) with a cohort of the other
speakers: targets, too, are unseen by the extractor and the back end, and their cohort is
not. Outputs::

    ivectors/tv_calibration_<g>.h5   the TV model without group g (g = 1, 2)
    ivectors/calibration_<g>.h5      every background i-vector from that model
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..corpus.trials import TrialList
from ..decisions.backgroundtrials import (
    BackgroundSplit,
    group_heldout_ubm,
    speaker_groups,
    split_background,
)
from ..decisions.enroltrials import enrolment_folds
from ..errors import DataError
from ..ivector.backend import Backend
from ..ivector.stats import StatsFile, compute_stats
from ..ivector.tv import IVectorSet, TotalVariability
from ..mixture.gmm import DiagGMM
from ..storage.scratch import scratch_folder
from .ivector_cohort import normalize_trials
from .ivector_stages import _fit_backend, new_tv, score_sets
from .verification import _cohort, _per_model, fit_calibration
from .workspace import StageResult, Workspace, _present

log = logging.getLogger(__name__)


def caltv(ws: Workspace) -> StageResult:
    """Per calibration group g, ``ivectors/tv_calibration_<g>.h5`` trained without the
    group (on a UBM re-estimated without it) and ``ivectors/calibration_<g>.h5``, the
    background i-vectors it extracts (nothing when ``scoring.calibrate`` is false)."""
    if not ws.cfg.scoring.calibrate:
        return [], {"calibrate": False}
    if ws.cfg.scoring.calibration_trials == "enroll":
        # the enrolment folds are scored by the extractor of the targets, which never saw them
        return [], {"calibration_trials": "enroll"}
    ubm_ = DiagGMM.load(ws.path("ubm/ubm.h5"))
    outputs: list[str] = []
    held_out: list[dict[str, object]] = []
    with ws.store("background") as store:
        spk2utt, _ = _present(ws.datadir("background").spk2utt, store)
        for g, group in enumerate(speaker_groups(list(spk2utt)), 1):
            log.info("calibration extractor %d: without %d speakers", g, len(group))
            others = [x for spk in sorted(spk2utt) if spk not in set(group) for x in spk2utt[spk]]
            where = ws.path("data/background")
            ubm_g = group_heldout_ubm(ubm_, store, spk2utt, group, ws.cfg.ubm, where)
            model = new_tv(ws)
            # the statistics under ubm_g are only needed here: a temporary file, so that
            # memory does not grow with the background set
            with ws.engine() as engine, scratch_folder(ws.path("ivectors")) as tmp:
                stats = compute_stats(
                    ubm_g, store, top_n=ws.cfg.ivector.top_n, engine=engine,
                    out=Path(tmp) / "stats.h5",
                )  # fmt: skip
                assert isinstance(stats, StatsFile)
                model.fit(stats.select(others), engine=engine)
                vectors = model.transform(stats, engine=engine)
                ids = list(stats.utt_ids)
            model.save(ws.path(f"ivectors/tv_calibration_{g}.h5"))
            IVectorSet(ids, vectors, tv=model.fingerprint).save(
                ws.path(f"ivectors/calibration_{g}.h5")
            )
            outputs += [f"ivectors/tv_calibration_{g}.h5", f"ivectors/calibration_{g}.h5"]
            aux = [round(h["auxiliary"], 4) for h in model.history_]
            held_out.append({"held_out": len(group), "utterances": len(others), "auxiliary": aux})
    return outputs, {"groups": held_out}


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
        st = compute_stats(model.ubm_, missing, top_n=ws.cfg.ivector.top_n, engine=engine)
        return dict(zip(missing, model.transform(st, engine=engine), strict=True))


def calibrate(ws: Workspace) -> StageResult:
    """``scores/calibrated.txt``: a logistic calibration trained on background trials, each
    group's scored with the i-vectors of ``caltv`` and a back end, and a cohort, of the other
    speakers (module docstring); the tail is :func:`.verification.fit_calibration`."""
    s = ws.cfg.scoring
    if not s.calibrate:
        return [], {"calibrate": False}
    ws.path("calibration").mkdir(parents=True, exist_ok=True)
    if s.calibration_trials == "enroll":
        return _calibration_trials_enroll(ws)
    parts: list[tuple[TrialList, np.ndarray]] = []
    with ws.store("background") as store:
        spk2utt, _ = _present(ws.datadir("background").spk2utt, store)
        groups = speaker_groups(list(spk2utt))
        for g, group in enumerate(groups, 1):
            vectors = IVectorSet.load(ws.path(f"ivectors/calibration_{g}.h5")).as_dict()
            outside = {k for k in spk2utt if k not in set(group)}
            be = _fit_backend(ws, vectors, {k: spk2utt[k] for k in outside}, calibration=True)
            split = split_background({k: spk2utt[k] for k in group}, store, _per_model(ws))
            if len(split.features.halved):
                model = TotalVariability.load(ws.path(f"ivectors/tv_calibration_{g}.h5"))
                vectors |= _halves(ws, model, split, vectors)
            enroll, tests = split.enroll, split.test_spk
            pairs = [(m, t) for m in sorted(enroll) for t in sorted(tests)]
            trials = TrialList(
                [m for m, _ in pairs],
                [t for _, t in pairs],
                np.array([tests[t] == m for m, t in pairs], dtype=bool),
            )
            values = score_sets(be, enroll, vectors, trials) if pairs else np.zeros(0)
            if s.norm != "none" and pairs:
                values = normalize_trials(
                    s.norm, values, trials.pairs, be=be, enroll=enroll, vectors=vectors,
                    cohort=_cohort(ws, store, outside), per_model=_per_model(ws), top_n=s.top_n,
                )  # fmt: skip
            parts.append((trials, values))
    n_models = sum(len(set(trials.model_ids)) for trials, _ in parts)
    info = {"groups": len(groups), "models": n_models, "extractor": "held out per group"}
    return fit_calibration(ws, parts, info=info)


def _calibration_trials_enroll(ws: Workspace) -> StageResult:
    """The calibrate stage on the cross-validation trials of the enrolment set
    (:mod:`gmmspeech.decisions.enroltrials`), scored with the back end of the target trials and
    normalised like them (the TV model and the back end never saw those speakers)."""
    s = ws.cfg.scoring
    vectors = {
        name: v
        for part in ("background", "enroll")
        for name, v in IVectorSet.load(ws.path(f"ivectors/{part}.h5")).as_dict().items()
    }
    en = ws.datadir("enroll")
    enrolment = {m: [u for u in utts if u in vectors] for m, utts in en.enrolment.items()}
    try:
        folds = enrolment_folds({m: u for m, u in enrolment.items() if u}, en.utt2spk)
    except DataError as exc:
        raise DataError(f"{ws.path('data/enroll')}: scoring.calibration_trials: {exc}") from None
    be = Backend.load(ws.path("backend/backend.h5"))
    values = score_sets(be, folds.models, vectors, folds.trials)
    if s.norm != "none" and len(values):
        with ws.store("background") as store:
            cohort = {k: [u for u in v if u in vectors] for k, v in _cohort(ws, store).items()}
        values = normalize_trials(
            s.norm, values, folds.trials.pairs, be=be, enroll=folds.models, vectors=vectors,
            cohort=cohort, per_model=_per_model(ws), top_n=s.top_n,
        )  # fmt: skip
    info = {
        "source": "enroll", "folds": folds.n_folds, "models": len(folds.models),
        "utterances_per_model": float(np.median([len(u) for u in folds.models.values()])),
    }  # fmt: skip
    return fit_calibration(ws, [(folds.trials, values)], info=info)


__all__ = ["caltv", "calibrate"]
