"""The speaker-verification stages: background / enrol / test sets, trials, LLRs, cohort norm.

Every function takes the :class:`~.workspace.Workspace` and returns the stage's outputs and
record info; :mod:`.runner` lists them in its stage table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..corpus.prepare import read_enroll_list, single_utterance_models, split_verification
from ..corpus.scorefiles import read_scores, write_scores
from ..corpus.trials import TrialList, read_trials, write_trials
from ..decisions.backgroundtrials import (
    enrolment_mismatch,
    group_heldout_ubm,
    score_background,
    speaker_groups,
    split_background,
)
from ..decisions.calibration import LogisticCalibration
from ..decisions.enroltrials import enrol_folds, enrolment_folds
from ..decisions.heldout import CohortOptions, heldout_normalize
from ..decisions.metrics import act_dcf
from ..decisions.norm import cohort_normalize
from ..decisions.scoring import score_trials
from ..errors import ConfigError, DataError
from ..features.store import FeatureStore
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import SpeakerModels, enroll
from .artefacts import (
    CALIBRATED_SCORES,
    CALIBRATION,
    CALIBRATION_SCORES,
    CALIBRATION_SUMMARY,
    CALIBRATION_TRIALS,
    DATA_DIR,
    MODELS,
    RAW_SCORES,
    SCORES,
    TRIALS,
    UBM,
    UBM_CHECKPOINTS,
)
from .common import extract_stage
from .report import write_json
from .workspace import StageResult, Workspace, _present

log = logging.getLogger(__name__)

SETS = ("background", "enroll", "test")


def prepare(ws: Workspace) -> StageResult:
    """Stage 1: ``data/{background,enroll,test}`` and the trial list ``data/test/trials``."""
    return _prepare_verification(ws)


def _prepare_verification(ws: Workspace) -> StageResult:
    d = ws.cfg.data
    if d.background is None or d.targets is None:  # checked by ExperimentConfig
        raise ConfigError(f"{ws.where}: data: verification needs background and targets")
    bg = ws.scan_set("background", d.background)
    tg = ws.scan_set("targets", d.targets)
    try:
        trials = tg.trials
        if d.trials is not None:
            trials = read_trials(d.trials, format=d.trials_format)
        models = None
        if d.enroll_list is not None:
            models = read_enroll_list(d.enroll_list, tg)
        elif d.trials_format == "voxceleb" and trials is not None:
            models = single_utterance_models(trials)
        sets = split_verification(
            tg,
            background=bg,
            enroll=d.enroll_fraction,
            enroll_labels=list(d.enroll_labels) or None,
            enroll_per_speaker=d.enroll_per_speaker,
            enroll_models=models,
            seed=d.seed,
            trials=trials,
        )
    except (ConfigError, DataError) as exc:
        raise type(exc)(f"{ws.where}: data: {exc}") from None
    sets.write(ws.output(DATA_DIR, set="test").parent)  # the folder of the data dirs
    outputs = [f"{DATA_DIR.rel(set=name)}/wav.scp" for name in SETS]
    return [*outputs, TRIALS.rel()], sets.counts()


def extract(ws: Workspace) -> StageResult:
    """Stage 2: features of the background, enrolment and test sets."""
    return extract_stage(ws, SETS)


def ubm(ws: Workspace) -> StageResult:
    """Stage 3: the UBM ``ubm/ubm.h5`` on the background set."""
    with ws.store("background") as store:
        info = ws.train_ubm(store, ws.output(UBM), ws.path(UBM_CHECKPOINTS))
    return [UBM.rel()], info


def enroll_speakers(ws: Workspace) -> StageResult:
    """Stage 4: one MAP model per enrolled model (``data/enroll/model2utt``, else per
    speaker), ``models/models.h5``."""
    e = ws.cfg.enroll
    ubm_ = DiagGMM.load(ws.path(UBM))
    en = ws.datadir("enroll")
    with ws.store("enroll") as store:
        spk2utt, dropped = _present(en.enrolment, store)
        models = enroll(
            ubm_,
            store,
            spk2utt,
            relevance_factor=e.relevance_factor,
            adapt=e.adapt,
            progress=ws.progress,
        )
    models.save(ws.output(MODELS))
    return [MODELS.rel()], {"models": len(models), "utterances_missing_features": dropped}


def score(ws: Workspace) -> StageResult:
    """Stage 5: raw LLRs of the trials that have features and a model, ``scores/raw.txt``."""
    s = ws.cfg.scoring
    ubm_ = DiagGMM.load(ws.path(UBM))
    models = SpeakerModels.load(ws.path(MODELS), ubm_)
    te = ws.datadir("test")
    all_trials = te.trials or TrialList([], [])
    with ws.store("test") as store:
        trials = all_trials.select(
            [i for i, (m, t) in enumerate(all_trials.pairs) if t in store and m in models]
        )
        n_dropped = len(all_trials) - len(trials)
        if not len(trials):
            raise DataError(f"{ws.path(TRIALS)}: no trial can be scored")
        with ws.engine() as engine:
            scores = score_trials(
                ubm_,
                models,
                store,
                trials,
                engine=engine,
                method=s.method,
                top_c=s.top_c,
                progress=ws.progress,
            )
    write_scores(ws.output(RAW_SCORES), trials.model_ids, trials.test_ids, scores)
    return [RAW_SCORES.rel()], {"trials_scored": len(trials), "trials_dropped": n_dropped}


def normalize(ws: Workspace) -> StageResult:
    """Stage 6: ``scores/scores.txt``, the raw scores normalised with the background cohort."""
    s = ws.cfg.scoring
    raw = read_scores(ws.path(RAW_SCORES))
    keys = list(raw)
    values = np.array([raw[k] for k in keys])
    if s.norm == "none":
        normed = values
        info: dict[str, Any] = {"norm": "none"}
    else:
        normed, info = _cohort_normalize(ws, keys, values)
    write_scores(ws.output(SCORES), [k[0] for k in keys], [k[1] for k in keys], normed)
    return [SCORES.rel()], info


def _per_model(ws: Workspace) -> int:
    """Utterances per cohort / calibration model: ``scoring.cohort_utts``, or as many as the
    median target model is enrolled on (models enrolled on more audio score differently)."""
    s = ws.cfg.scoring
    if s.cohort_utts is not None:
        return s.cohort_utts
    counts = [len(u) for u in ws.datadir("enroll").spk2utt.values()]
    return max(1, int(np.median(counts))) if counts else 1


def _cohort(
    ws: Workspace, store: FeatureStore, within: set[str] | None = None
) -> dict[str, list[str]]:
    """The first ``scoring.cohort_size`` background speakers (sorted ids; only those of
    ``within`` when given), utterances sorted."""
    spk2utt, _ = _present(ws.datadir("background").spk2utt, store)
    spks = [k for k in sorted(spk2utt) if within is None or k in within]
    return {k: sorted(spk2utt[k]) for k in spks[: ws.cfg.scoring.cohort_size]}


def _cohort_options(ws: Workspace) -> CohortOptions:
    s, e, u = ws.cfg.scoring, ws.cfg.enroll, ws.cfg.ubm
    return CohortOptions(
        e.relevance_factor,
        e.adapt,
        s.method,
        s.top_c,
        _per_model(ws),
        u.min_count,
        u.min_weight,
        u.chunk_size,
        ws.progress,
    )


def _cohort_normalize(
    ws: Workspace, keys: list[tuple[str, str]], values: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Normalise the target trials with cohort scores from UBMs that have not seen the
    cohort (:mod:`gmmspeech.decisions.heldout`)."""
    s, e = ws.cfg.scoring, ws.cfg.enroll
    with ws.store("test") as tstore, ws.store("enroll") as estore:
        enrolment = ws.datadir("enroll").enrolment
        spk2utt = {m: enrolment[m] for m in sorted({k[0] for k in keys})}

        def enrol(ubm_g: DiagGMM) -> SpeakerModels:
            return enroll(
                ubm_g, estore, spk2utt, relevance_factor=e.relevance_factor, adapt=e.adapt
            )

        normed, cohort = _heldout_normalize(ws, keys, values, enrol, tstore)
    info: dict[str, Any] = {
        "norm": s.norm,
        "cohort_speakers": len(cohort),
        "cohort_utterances": sum(len(x) for x in cohort.values()),
        "cohort_utterances_per_model": _per_model(ws),
        "cohort_ubm": "held out",
    }
    tar = _labels(ws, keys)
    if (~tar).any():
        info["nontarget_mean"] = round(float(normed[~tar].mean()), 4)
        info["nontarget_std"] = round(float(normed[~tar].std()), 4)
    return normed, info


def _heldout_normalize(
    ws: Workspace,
    keys: list[tuple[str, str]],
    values: np.ndarray,
    enrol: Callable[[DiagGMM], SpeakerModels],
    test_features: Mapping[str, np.ndarray],
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """``values`` of the pairs ``keys`` normalised (``scoring.norm``) with the background
    cohort scored under held-out UBMs; ``enrol(ubm)`` gives the pairs' models from a UBM.
    Also returns the cohort."""
    s = ws.cfg.scoring
    ubm_ = DiagGMM.load(ws.path(UBM))
    with ws.store("background") as cstore:
        background, _ = _present(ws.datadir("background").spk2utt, cstore)
        cohort = _cohort(ws, cstore)
        normed = heldout_normalize(
            s.norm,
            values,
            keys,
            top_n=s.top_n,
            ubm=ubm_,
            enrol=enrol,
            test_features=test_features,
            store=cstore,
            background=background,
            cohort=cohort,
            opts=_cohort_options(ws),
        )
    return normed, cohort


def _labels(ws: Workspace, keys: Sequence[tuple[str, str]]) -> np.ndarray:
    tl = ws.datadir("test").trials
    if tl is None or tl.is_target is None:
        raise DataError(f"{ws.path(DATA_DIR, set='test')}: no labelled trials; rerun stage 1")
    label = dict(zip(tl.pairs, tl.is_target.tolist(), strict=True))
    return np.array([label[k] for k in keys], dtype=bool)


def calibrate(ws: Workspace) -> StageResult:
    """Stage 7: ``scores/calibrated.txt``, LLRs from a calibration on background trials.

    The background speakers are split into models and test utterances, in groups each
    scored with a UBM that has not seen them and normalised like the target trials
    (:mod:`.backgroundtrials`); a logistic-regression calibration prior-weighted at
    ``scoring.p_target`` is fitted on those trials (``calibration/``) and applied to
    ``scores/scores.txt``. It is replaced by the identity, with a warning, when it makes the
    actDCF of its own trials worse, or when the background models are enrolled on a very
    different amount of speech than the targets (their scores are on another scale). With
    ``scoring.calibration_trials: enroll`` the trials come from the enrolment set instead
    (:func:`_enrolment_trials`).
    """
    s = ws.cfg.scoring
    if not s.calibrate:
        return [], {"calibrate": False}
    if s.calibration_trials == "enroll":
        return _enrolment_trials(ws)
    ubm_ = DiagGMM.load(ws.path(UBM))
    parts: list[tuple[TrialList, np.ndarray]] = []
    target_frames = _target_enrol_frames(ws)
    frames: list[int] = []
    with ws.store("background") as store:
        spk2utt, _ = _present(ws.datadir("background").spk2utt, store)
        groups = speaker_groups(list(spk2utt))
        n_models = 0
        for g, group in enumerate(groups):
            trials, values, n = _group_trials(ws, ubm_, store, spk2utt, group)
            log.info("calibration group %d/%d: %d trials", g + 1, len(groups), len(trials))
            parts.append((trials, values))
            frames.extend(n)
            n_models += len(set(trials.model_ids))
    median = float(np.median(frames)) if frames else 0.0
    extra = {"enrol_frames": median, "target_enrol_frames": target_frames}
    return fit_calibration(
        ws,
        parts,
        info={"source": "background", "groups": len(groups), "models": n_models, **extra},
        mismatch=lambda cal: fallback_if_mismatched(cal, median, target_frames),
    )


def _enrolment_trials(ws: Workspace) -> StageResult:
    """Stage 7 with ``scoring.calibration_trials: enroll``: the trials of a cross-validation
    over the target models' enrolment utterances (:mod:`gmmspeech.decisions.enroltrials`), scored with
    the UBM and normalised as the target trials are; then :func:`fit_calibration`."""
    s, e = ws.cfg.scoring, ws.cfg.enroll
    ubm_ = DiagGMM.load(ws.path(UBM))
    en = ws.datadir("enroll")
    with ws.store("enroll") as store:
        model2utt, _ = _present(en.enrolment, store)
        try:
            folds = enrolment_folds(model2utt, en.utt2spk)
        except DataError as exc:
            raise DataError(
                f"{ws.path(DATA_DIR, set='enroll')}: scoring.calibration_trials: {exc}"
            ) from None

        def enrol(ubm_g: DiagGMM) -> SpeakerModels:
            return enrol_folds(
                ubm_g, store, folds, relevance_factor=e.relevance_factor, adapt=e.adapt
            )

        trials = folds.trials
        with ws.engine() as engine:
            values = score_trials(
                ubm_,
                enrol(ubm_),
                store,
                trials,
                engine=engine,
                method=s.method,
                top_c=s.top_c,
                progress=ws.progress,
            )
        if s.norm != "none":
            values, _ = _heldout_normalize(ws, list(trials.pairs), values, enrol, store)
        frames = [sum(store.num_frames(u) for u in us) for us in folds.models.values()]
    median, target_frames = float(np.median(frames)), _target_enrol_frames(ws)
    info = {
        "source": "enroll",
        "folds": folds.n_folds,
        "models": len(folds.models),
        "utterances_per_model": float(np.median([len(u) for u in folds.models.values()])),
        "enrol_frames": median,
        "target_enrol_frames": target_frames,
    }
    log.info("calibration: %d folds over the enrolment utterances", folds.n_folds)
    return fit_calibration(
        ws,
        [(trials, values)],
        info=info,
        mismatch=lambda cal: fallback_if_mismatched(cal, median, target_frames),
    )


def fit_calibration(
    ws: Workspace,
    parts: Sequence[tuple[TrialList, np.ndarray]],
    info: dict[str, Any],
    mismatch: Callable[[LogisticCalibration], dict[str, Any]] | None = None,
) -> StageResult:
    """Fit the calibration on the background trials ``parts`` and apply it to the scores.

    The one tail of the calibrate stage of every system: the trials and scores of the
    groups are joined, a prior-weighted logistic calibration is fitted (``calibration/``),
    replaced by the identity with a warning when it makes the actDCF of its own trials worse
    or when ``mismatch`` says the trials do not match the targets' condition, and applied to
    ``scores/scores.txt`` (``scores/calibrated.txt``).

    Parameters
    ----------
    parts : sequence of (TrialList, ndarray of shape (n_i,))
        Labelled background trials of each group and their scores.
    info : dict
        Stage-record facts of the caller (groups, models, ...), merged into the record.
    mismatch : callable, optional
        ``mismatch(cal) -> dict`` with a ``fallback`` key; may replace ``cal`` by the identity.
    """
    s = ws.cfg.scoring
    trials = TrialList(
        [m for t, _ in parts for m in t.model_ids],
        [u for t, _ in parts for u in t.test_ids],
        np.concatenate([t.is_target for t, _ in parts if t.is_target is not None]),
    )
    values = np.concatenate([v for _, v in parts])
    if trials.is_target is None or not trials.is_target.any() or trials.is_target.all():
        raise DataError(
            f"{ws.path(DATA_DIR, set='background')}: the background trials need target and "
            f"non-target trials to train a calibration; set scoring.calibrate: false"
        )
    cal = LogisticCalibration(prior=s.p_target).fit(values, trials.is_target)
    fitted = {"fitted_slope": cal.slope_, "fitted_offset": cal.offset_}
    # no finite maximum of the likelihood: the slope is where the solver stopped
    separable = bool(values[trials.is_target].min() > values[~trials.is_target].max())
    if separable:
        log.warning(
            "calibration: every target score of the %d calibration trials is above every "
            "non-target one, so the fit has no finite optimum (slope %.3g where the solver "
            "stopped): the calibrated LLRs are over-confident; more trials would help",
            len(trials),
            cal.slope_,
        )
    costs = {"p_target": s.p_target, "c_miss": s.c_miss, "c_fa": s.c_fa}
    check = fallback_if_worse(cal, values, trials.is_target, costs)
    if check["fallback"] is None and mismatch is not None:
        check.update(mismatch(cal))
    cal.save(ws.output(CALIBRATION))
    write_trials(ws.output(CALIBRATION_TRIALS), trials)
    write_scores(ws.output(CALIBRATION_SCORES), trials.model_ids, trials.test_ids, values)
    sc = read_scores(ws.path(SCORES))
    keys = list(sc)
    llr = cal.transform(np.array([sc[k] for k in keys]))
    write_scores(ws.output(CALIBRATED_SCORES), [k[0] for k in keys], [k[1] for k in keys], llr)
    record = {
        "calibrate": True,
        "utterances_per_model": _per_model(ws),
        **info,
        "trials": len(trials),
        "target_trials": int(trials.is_target.sum()),
        "separable": separable,
        **fitted,
        "slope": cal.slope_,
        "offset": cal.offset_,
        **check,
    }
    # for the evaluate stage's results.json
    write_json(ws.output(CALIBRATION_SUMMARY), record)
    outputs = [CALIBRATION, CALIBRATION_TRIALS, CALIBRATION_SCORES, CALIBRATION_SUMMARY]
    return [a.rel() for a in (*outputs, CALIBRATED_SCORES)], record


def _target_enrol_frames(ws: Workspace) -> float:
    """Median enrolment frames per target model (0 when unknown)."""
    with ws.store("enroll") as store:
        spk2utt, _ = _present(ws.datadir("enroll").enrolment, store)
        counts = [sum(store.num_frames(u) for u in utts) for utts in spk2utt.values()]
    return float(np.median(counts)) if counts else 0.0


def fallback_if_worse(
    cal: LogisticCalibration, values: np.ndarray, is_target: np.ndarray, costs: dict[str, float]
) -> dict[str, Any]:
    """actDCF of the calibration trials raw and calibrated. A calibration that makes it worse
    on the very trials it was fitted on cannot be trusted on others: ``cal`` is set to the
    identity (the scores are kept as they are), with a warning.

    Parameters
    ----------
    cal : LogisticCalibration
        Fitted on ``values``; changed in place on a fallback.
    values, is_target : ndarray, shape (n,)
        The calibration trials' scores and labels.
    costs : dict
        ``p_target``, ``c_miss``, ``c_fa`` of :func:`gmmspeech.decisions.metrics.act_dcf`.
    """
    raw = act_dcf(values, is_target, **costs)
    calibrated = act_dcf(cal.transform(values), is_target, **costs)
    out: dict[str, Any] = {
        "trials_act_dcf_raw": round(raw, 4),
        "trials_act_dcf_calibrated": round(calibrated, 4),
        "fallback": None,
    }
    if calibrated > raw:
        log.warning(
            "calibration: actDCF on its own background trials is worse calibrated (%.3f) "
            "than raw (%.3f); not calibrating: scores/calibrated.txt keeps the scores as they "
            "are (set scoring.calibrate: false to skip this stage)",
            calibrated,
            raw,
        )
        cal.slope_, cal.offset_ = 1.0, 0.0
        out["fallback"] = "identity"
    return out


def fallback_if_mismatched(
    cal: LogisticCalibration, frames: float, target_frames: float
) -> dict[str, Any]:
    """Set ``cal`` to the identity, with a warning, when the models of the calibration trials
    (median ``frames`` enrolment frames) are enrolled on a very different amount of speech
    than the targets (``target_frames``; :func:`.backgroundtrials.enrolment_mismatch`)."""
    ratio = enrolment_mismatch(frames, target_frames)
    if ratio is None:
        return {}
    log.warning(
        "calibration: the models of the calibration trials are enrolled on %.0f frames "
        "(median) and the target models on %.0f (ratio %.2f): their scores are on another "
        "scale, so a calibration fitted on them does not transfer; not calibrating: "
        "scores/calibrated.txt keeps the scores as they are (give the background speakers "
        "several utterances each, or set scoring.calibration_trials: enroll, or scoring.calibrate: "
        "false)",
        frames,
        target_frames,
        ratio,
    )
    cal.slope_, cal.offset_ = 1.0, 0.0
    return {"fallback": "identity: enrolment mismatch", "enrol_ratio": round(ratio, 4)}


def _group_trials(
    ws: Workspace,
    ubm_: DiagGMM,
    store: FeatureStore,
    spk2utt: Mapping[str, list[str]],
    group: Sequence[str],
) -> tuple[TrialList, np.ndarray, list[int]]:
    """Trials of one group of background speakers, scored with a UBM that has not seen them
    and normalised (when ``scoring.norm`` is set) with a cohort of the other speakers; also
    the enrolment frames of each of its models."""
    s, e = ws.cfg.scoring, ws.cfg.enroll
    where = ws.path(DATA_DIR, set="background")
    ubm_g = group_heldout_ubm(ubm_, store, spk2utt, group, ws.cfg.ubm, where)
    split = split_background({k: spk2utt[k] for k in group}, store, _per_model(ws))
    with ws.engine() as engine:
        trials, values, models = score_background(
            ubm_g,
            split,
            relevance_factor=e.relevance_factor,
            adapt=e.adapt,
            method=s.method,
            top_c=s.top_c,
            engine=engine,
            progress=ws.progress,
        )
    if s.norm != "none":
        spk = {m: m for m in split.enroll}
        cohort = _cohort(ws, store, {k for k in spk2utt if k not in set(group)})
        values = cohort_normalize(
            s.norm,
            values,
            trials.model_ids,
            trials.test_ids,
            ubm=ubm_g,
            models=models,
            test_features=split.features,
            cohort_features=store,
            cohort_spk2utt=cohort,
            relevance_factor=e.relevance_factor,
            adapt=e.adapt,
            score_method=s.method,
            top_c=s.top_c,
            top_n=s.top_n,
            enroll_utts=_per_model(ws),
            model_spk=spk,
            test_spk=split.test_spk,
            progress=ws.progress,
        )
    return trials, values, split.enrol_frames()
