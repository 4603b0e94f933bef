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
from ..corpus.scorefiles import (
    llr_header,
    read_scores,
    read_scores_header,
    system_header,
    system_of,
    write_scores,
)
from ..corpus.trials import TrialList, read_trials, write_trials
from ..decisions.backgroundtrials import score_background, split_background
from ..decisions.calguard import check_location, fit_guarded
from ..decisions.cohort import CohortPart, Either, Scorer, gmm_scorer, normalize_pairs
from ..decisions.enroltrials import enrol_folds, enrolment_folds
from ..decisions.heldout import (
    GROUPS,
    HeldoutUBM,
    build_heldout_ubms,
    choose_norm,
    cohort_speakers,
    heldout_parts,
    load_heldout,
    require,
    save_heldout,
)
from ..decisions.scoring import score_trials
from ..engine import Engine
from ..errors import ConfigError, DataError
from ..features.store import FeatureStore
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import SpeakerModels, enroll, ubm_fingerprint
from ..storage.outputs import UBM as UBM_KIND
from ..storage.outputs import remove_outputs
from .artefacts import (
    CALIBRATED_SCORES,
    CALIBRATION,
    CALIBRATION_SCORES,
    CALIBRATION_SUMMARY,
    CALIBRATION_TRIALS,
    DATA_DIR,
    HELDOUT_UBM,
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
    """Stage 3: the UBM ``ubm/ubm.h5`` on the background set, and the held-out UBMs
    ``ubm/heldout_<g>.h5`` (:mod:`gmmspeech.decisions.heldout`) that the cohort and the
    calibration trials are scored with."""
    u = ws.cfg.ubm
    with ws.store("background") as store:
        info = ws.train_ubm(store, ws.output(UBM), ws.path(UBM_CHECKPOINTS))
        spk2utt, _ = _present(ws.datadir("background").spk2utt, store)
        held = build_heldout_ubms(
            ws.ubm(),
            store,
            spk2utt,
            min_count=u.min_count,
            min_weight=u.min_weight,
            chunk_size=u.chunk_size,
        )
    # a former run's, if any
    remove_outputs(ws.path(UBM).parent, UBM_KIND, r"heldout_\d+\.h5")
    outputs = [UBM.rel()]
    for g, h in enumerate(held, 1):
        save_heldout(h, ws.output(HELDOUT_UBM, group=g))
        outputs.append(HELDOUT_UBM.rel(group=g))
    info["heldout_groups"] = [len(h.speakers) for h in held]
    return outputs, info


def heldout_ubms(ws: Workspace, ubm_: DiagGMM) -> list[HeldoutUBM]:
    """The held-out UBMs the ubm stage saved, checked against ``ubm_``; a one-line error
    when there are none (too few background speakers)."""
    paths = [ws.path(HELDOUT_UBM, group=g) for g in range(1, GROUPS + 1)]
    missing = [p for p in paths if not p.is_file()]
    if missing and len(missing) < len(paths):
        raise DataError(f"{missing[0]}: missing; rerun the ubm stage (gmmspeech run --force)")
    held = [load_heldout(p, ubm_) for p in paths if p.is_file()]
    n = len(ws.datadir("background").spk2utt)
    require(held, n, ws.path(DATA_DIR, set="background"))
    return held


def enroll_speakers(ws: Workspace) -> StageResult:
    """Stage 4: one MAP model per enrolled model (``data/enroll/model2utt``, else per
    speaker), ``models/models.h5``."""
    ubm_ = ws.ubm()
    en = ws.datadir("enroll")
    with ws.store("enroll") as store:
        spk2utt, dropped = _present(en.enrolment, store)
        models = enroll(
            ubm_,
            store,
            spk2utt,
            progress=ws.progress,
            **_map_options(ws),
        )
    models.save(ws.output(MODELS))
    return [MODELS.rel()], {"models": len(models), "utterances_missing_features": dropped}


def score(ws: Workspace) -> StageResult:
    """Stage 5: raw LLRs of the trials that have features and a model, ``scores/raw.txt``."""
    ubm_ = ws.ubm()
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
        head = system_header(
            ubm=ubm_fingerprint(ubm_),
            features=store.config_hash,
            method=ws.cfg.scoring.method,
            norm="none",
        )
        with ws.engine() as engine:
            scores = _score_trials(ws, ubm_, models, store, trials, engine)
    write_scores(ws.output(RAW_SCORES), trials.model_ids, trials.test_ids, scores, head)
    return [RAW_SCORES.rel()], {"trials_scored": len(trials), "trials_dropped": n_dropped}


def scoring_norm(ws: Workspace, announce: bool = False) -> str:
    """``scoring.norm`` with ``auto`` resolved against the background speakers
    (:func:`gmmspeech.decisions.heldout.choose_norm`); ``announce`` logs the choice."""
    norm, why = choose_norm(ws.cfg.scoring.norm, len(ws.datadir("background").spk2utt))
    if announce and ws.cfg.scoring.norm == "auto":
        log.info("scoring.norm: %s (%s)", norm, why)
    return norm


def normalize(ws: Workspace) -> StageResult:
    """Stage 6: ``scores/scores.txt``, the raw scores normalised with the background cohort."""
    raw = read_scores(ws.path(RAW_SCORES))
    keys = list(raw)
    values = np.array([raw[k] for k in keys])
    if scoring_norm(ws, announce=True) == "none":
        normed = values
        info: dict[str, Any] = {"norm": "none"}
    else:
        normed, info = _cohort_normalize(ws, keys, values)
    head = normalised_header(ws)
    write_scores(ws.output(SCORES), [k[0] for k in keys], [k[1] for k in keys], normed, head)
    return [SCORES.rel()], info


def _score_trials(
    ws: Workspace,
    ubm_: DiagGMM,
    models: SpeakerModels,
    store: FeatureStore,
    trials: TrialList,
    engine: Engine,
) -> np.ndarray:
    """``trials`` scored by ``scoring.method`` / ``top_c``: the one GMM scoring call of the
    target and the calibration trials, so both are scored alike."""
    return score_trials(
        ubm_,
        models,
        store,
        trials,
        engine=engine,
        progress=ws.progress,
        **_scoring_options(ws),
    )


def normalised_header(ws: Workspace) -> dict[str, str]:
    """The header of ``scores/scores.txt``: the raw scores' with the norm applied
    (``scoring.norm``, ``auto`` resolved)."""
    return {**read_scores_header(ws.path(RAW_SCORES)), "norm": scoring_norm(ws)}


def _per_model(ws: Workspace) -> int:
    """Utterances per cohort / calibration model: ``scoring.cohort_utts``, or as many as the
    median target model is enrolled on (models enrolled on more audio score differently)."""
    s = ws.cfg.scoring
    if s.cohort_utts is not None:
        return s.cohort_utts
    counts = [len(u) for u in ws.datadir("enroll").spk2utt.values()]
    return max(1, int(np.median(counts))) if counts else 1


def _map_options(ws: Workspace) -> dict[str, Any]:
    """``enroll.relevance_factor`` and ``adapt`` as keywords: every model of an experiment,
    target, cohort or calibration, is adapted alike."""
    return {"relevance_factor": ws.cfg.enroll.relevance_factor, "adapt": ws.cfg.enroll.adapt}


def _scoring_options(ws: Workspace) -> dict[str, Any]:
    """``scoring.method`` and ``top_c`` as keywords: every trial is scored alike."""
    return {"method": ws.cfg.scoring.method, "top_c": ws.cfg.scoring.top_c}


def _heldout_normalize(
    ws: Workspace,
    keys: list[tuple[str, str]],
    values: np.ndarray,
    models_under: Callable[[HeldoutUBM], SpeakerModels],
    features: Mapping[str, np.ndarray],
    trial_speakers: set[str],
    *,
    model_spk: Mapping[str, str] | None = None,
    test_spk: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """``values`` of the pairs ``keys`` normalised (``scoring.norm``) with the background
    cohort by the cohort rule of :func:`gmmspeech.decisions.heldout.heldout_parts`, the one
    normalisation of evaluation and calibration trials alike: each part of the cohort is
    scored under a held-out UBM that has seen neither it nor ``trial_speakers``, with the
    trial models ``models_under(h)`` enrolled from it and test utterances from
    ``features``. Also returns the cohort."""
    s = ws.cfg.scoring
    ubm_ = ws.ubm()
    held = heldout_ubms(ws, ubm_)
    with ws.store("background") as cstore:
        background, _ = _present(ws.datadir("background").spk2utt, cstore)
        cohort = cohort_speakers(background, s.cohort_size)
        feats = Either(features, cstore)

        def scorer(_: int, h: HeldoutUBM) -> Scorer:
            return gmm_scorer(
                h.ubm,
                models_under(h),
                feats,
                progress=ws.progress,
                **_map_options(ws),
                **_scoring_options(ws),
            )

        parts = heldout_parts(held, cohort, background, trial_speakers, scorer)
        normed = normalize_parts(ws, keys, values, parts, model_spk, test_spk)
    return normed, cohort


def normalize_parts(
    ws: Workspace,
    keys: Sequence[tuple[str, str]],
    values: np.ndarray,
    parts: Sequence[CohortPart],
    model_spk: Mapping[str, str] | None = None,
    test_spk: Mapping[str, str] | None = None,
) -> np.ndarray:
    """``values`` (n,) of the pairs ``keys`` normalised (``scoring.norm``, ``top_n``) with the
    cohort ``parts`` of :func:`gmmspeech.decisions.heldout.heldout_parts`, each cohort model
    enrolled on :func:`_per_model` utterances: the one call of both systems."""
    s = ws.cfg.scoring
    return normalize_pairs(
        scoring_norm(ws),
        values,
        keys,
        parts,
        top_n=s.top_n,
        enroll_utts=_per_model(ws),
        model_spk=model_spk,
        test_spk=test_spk,
    )


def _cohort_normalize(
    ws: Workspace, keys: list[tuple[str, str]], values: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Normalise the target trials with cohort scores from UBMs that have not seen the
    cohort (:mod:`gmmspeech.decisions.heldout`)."""
    en = ws.datadir("enroll")
    with ws.store("test") as tstore, ws.store("enroll") as estore:
        spk2utt = {m: en.enrolment[m] for m in sorted({k[0] for k in keys})}
        speakers = {en.utt2spk[u] for utts in spk2utt.values() for u in utts}

        def models_under(h: HeldoutUBM) -> SpeakerModels:
            return enroll(h.ubm, estore, spk2utt, **_map_options(ws))

        normed, cohort = _heldout_normalize(ws, keys, values, models_under, tstore, speakers)
    info: dict[str, Any] = {
        "norm": scoring_norm(ws),
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


def _labels(ws: Workspace, keys: Sequence[tuple[str, str]]) -> np.ndarray:
    tl = ws.datadir("test").trials
    if tl is None or tl.is_target is None:
        raise DataError(f"{ws.path(DATA_DIR, set='test')}: no labelled trials; rerun stage 1")
    label = dict(zip(tl.pairs, tl.is_target.tolist(), strict=True))
    return np.array([label[k] for k in keys], dtype=bool)


def calibrate(ws: Workspace) -> StageResult:
    """Stage 7: ``scores/calibrated.txt``, LLRs from a calibration on background trials.

    The background speakers of each held-out UBM (``ubm/heldout_<g>.h5``) are split into
    models and test utterances, scored with that UBM and normalised exactly as the target
    trials are (:func:`_heldout_normalize`); a logistic-regression calibration prior-weighted
    at ``scoring.p_target`` is fitted on those trials with the guard and fallbacks of
    :mod:`gmmspeech.decisions.calguard` (``calibration/``) and applied to
    ``scores/scores.txt``. With ``scoring.calibration_trials: enroll`` the trials come from
    the enrolment set instead (:func:`_enrolment_trials`).
    """
    s = ws.cfg.scoring
    if not s.calibrate:
        return [], {"calibrate": False}
    if s.calibration_trials == "enroll":
        return _enrolment_trials(ws)
    held = heldout_ubms(ws, ws.ubm())
    parts: list[tuple[TrialList, np.ndarray]] = []
    target_frames = _target_enrol_frames(ws)
    frames: list[int] = []
    with ws.store("background") as store:
        spk2utt, _ = _present(ws.datadir("background").spk2utt, store)
        n_models = 0
        for g, h in enumerate(held):
            trials, values, n = _group_trials(ws, h, store, spk2utt)
            log.info("calibration group %d/%d: %d trials", g + 1, len(held), len(trials))
            parts.append((trials, values))
            frames.extend(n)
            n_models += len(set(trials.model_ids))
    median = float(np.median(frames)) if frames else 0.0
    extra = {"enrol_frames": median, "target_enrol_frames": target_frames}
    return fit_calibration(
        ws,
        parts,
        info={"source": "background", "groups": len(held), "models": n_models, **extra},
        frames=(median, target_frames),
    )


def _enrolment_trials(ws: Workspace) -> StageResult:
    """Stage 7 with ``scoring.calibration_trials: enroll``: the trials of a cross-validation
    over the target models' enrolment utterances (:mod:`gmmspeech.decisions.enroltrials`),
    scored with the UBM and normalised as the target trials are; then
    :func:`fit_calibration`."""
    ubm_ = ws.ubm()
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
            return enrol_folds(ubm_g, store, folds, **_map_options(ws))

        trials = folds.trials
        with ws.engine() as engine:
            values = _score_trials(ws, ubm_, enrol(ubm_), store, trials, engine)
        if scoring_norm(ws) != "none":
            speakers = {en.utt2spk[u] for us in folds.models.values() for u in us}
            values, _ = _heldout_normalize(
                ws, list(trials.pairs), values, lambda h: enrol(h.ubm), store, speakers
            )
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
    return fit_calibration(ws, [(trials, values)], info=info, frames=(median, target_frames))


def fit_calibration(
    ws: Workspace,
    parts: Sequence[tuple[TrialList, np.ndarray]],
    info: dict[str, Any],
    frames: tuple[float, float] | None = None,
) -> StageResult:
    """Fit the calibration on the calibration trials ``parts`` and apply it to the scores.

    The one tail of the calibrate stage of every system: the trials and scores of the
    groups are joined, a prior-weighted logistic calibration is fitted with the guard and
    fallbacks of :func:`gmmspeech.decisions.calguard.fit_guarded` (``calibration/``),
    checked against the location of ``scores/scores.txt``
    (:func:`gmmspeech.decisions.calguard.check_location`) and applied to it
    (``scores/calibrated.txt``).

    Parameters
    ----------
    parts : sequence of (TrialList, ndarray of shape (n_i,))
        Labelled calibration trials of each group and their scores.
    info : dict
        Stage-record facts of the caller (groups, models, ...), merged into the record.
    frames : (float, float), optional
        Median enrolment frames of the calibration models and of the target models.
    """
    s = ws.cfg.scoring
    labels = [t.is_target for t, _ in parts]
    trials = TrialList(
        [m for t, _ in parts for m in t.model_ids],
        [u for t, _ in parts for u in t.test_ids],
        np.concatenate([x for x in labels if x is not None]),
    )
    values = np.concatenate([v for _, v in parts])
    enrol, target = frames if frames is not None else (None, None)
    try:
        guarded = fit_guarded(
            values,
            np.asarray(trials.is_target),
            prior=s.p_target,
            c_miss=s.c_miss,
            c_fa=s.c_fa,
            enrol_frames=enrol,
            target_frames=target,
            what="the calibration trials",
        )
    except DataError as exc:
        raise DataError(
            f"{ws.path(DATA_DIR, set='background')}: {exc}; set scoring.calibrate: false"
        ) from None
    cal = guarded.calibration
    # the calibration trials are scored as the evaluation trials are: the same system
    system = system_of(read_scores_header(ws.path(SCORES)))
    cal.record_scores(system, CALIBRATION_SCORES.rel())  # relative: folders compare equal
    sc = read_scores(ws.path(SCORES))
    keys = list(sc)
    evaluation = np.array([sc[k] for k in keys])
    check = guarded.info
    if guarded.fallback is None:
        check |= check_location(cal, evaluation, where="the evaluation scores")
        if check.get("fallback"):
            check["slope"], check["offset"] = 1.0, 0.0
    cal.save(ws.output(CALIBRATION))
    write_trials(ws.output(CALIBRATION_TRIALS), trials)
    write_scores(ws.output(CALIBRATION_SCORES), trials.model_ids, trials.test_ids, values, system)
    llr = cal.transform(evaluation)
    pairs = ([k[0] for k in keys], [k[1] for k in keys])
    write_scores(ws.output(CALIBRATED_SCORES), *pairs, llr, llr_header(system))
    record = {"calibrate": True, "utterances_per_model": _per_model(ws), **info, **check}
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


def _group_trials(
    ws: Workspace,
    h: HeldoutUBM,
    store: FeatureStore,
    spk2utt: Mapping[str, list[str]],
) -> tuple[TrialList, np.ndarray, list[int]]:
    """Trials of the background speakers that ``h`` holds out, scored with ``h``'s UBM and
    normalised (when ``scoring.norm`` is set) exactly as the target trials are; also the
    enrolment frames of each of its models."""
    split = split_background({k: spk2utt[k] for k in h.speakers}, store, _per_model(ws))
    with ws.engine() as engine:
        trials, values, models = score_background(
            h.ubm,
            split,
            engine=engine,
            progress=ws.progress,
            **_map_options(ws),
            **_scoring_options(ws),
        )
    if scoring_norm(ws) != "none":

        def models_under(other: HeldoutUBM) -> SpeakerModels:
            if other is h:
                return models
            return enroll(
                other.ubm,
                split.features,
                split.enroll,
                **_map_options(ws),
            )

        values, _ = _heldout_normalize(
            ws,
            list(trials.pairs),
            values,
            models_under,
            split.features,
            set(h.speakers),
            model_spk={m: m for m in split.enroll},
            test_spk=split.test_spk,
        )
    return trials, values, split.enrol_frames()
