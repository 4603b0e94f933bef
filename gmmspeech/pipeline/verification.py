"""The speaker-verification stages: background / enrol / test sets, trials, LLRs, cohort norm.

Every function takes the :class:`~.workspace.Workspace` and returns the stage's outputs and
record info; :mod:`.runner` lists them in its stage table.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..gmm import DiagGMM
from ..metrics import summary
from ..norm import cohort_normalize
from ..prepare import read_enroll_list, single_utterance_models, split_verification
from ..scoring import score_trials
from ..speakermodels import SpeakerModels, enroll
from ..trials import TrialList, read_scores, read_trials, write_scores
from .common import extract_stage, report_stage
from .report import plot_det_file, write_json
from .workspace import StageResult, Workspace, _present

log = logging.getLogger(__name__)

SETS = ("background", "enroll", "test")


def prepare(ws: Workspace) -> StageResult:
    """Stage 1: ``data/{background,enroll,test}`` and the trial list ``data/test/trials``."""
    return _prepare_verification(ws)


def _prepare_verification(ws: Workspace) -> StageResult:
    d = ws.cfg.data
    assert d.background is not None and d.targets is not None
    bg = ws._scan("background", d.background)
    tg = ws._scan("targets", d.targets)
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
    sets.write(ws.path("data"))
    outputs = [f"data/{name}/wav.scp" for name in ("background", "enroll", "test")]
    return [*outputs, "data/test/trials"], sets.counts()


def extract(ws: Workspace) -> StageResult:
    """Stage 2: features of the background, enrolment and test sets."""
    return extract_stage(ws, SETS)


def ubm(ws: Workspace) -> StageResult:
    """Stage 3: the UBM ``ubm/ubm.h5`` on the background set."""
    ws.path("ubm").mkdir(parents=True, exist_ok=True)
    with ws.store("background") as store:
        info = ws.train_ubm(store, "ubm/ubm.h5", "ubm/checkpoints")
    return ["ubm/ubm.h5"], info


def enroll_speakers(ws: Workspace) -> StageResult:
    """Stage 4: one MAP model per enrolled model (``data/enroll/model2utt``, else per
    speaker), ``models/models.h5``."""
    e = ws.cfg.enroll
    ws.path("models").mkdir(parents=True, exist_ok=True)
    ubm_ = DiagGMM.load(ws.path("ubm/ubm.h5"))
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
    models.save(ws.path("models/models.h5"))
    return ["models/models.h5"], {"models": len(models), "utterances_missing_features": dropped}


def score(ws: Workspace) -> StageResult:
    """Stage 5: raw LLRs of the trials that have features and a model, ``scores/raw.txt``."""
    s = ws.cfg.scoring
    ws.path("scores").mkdir(parents=True, exist_ok=True)
    ubm_ = DiagGMM.load(ws.path("ubm/ubm.h5"))
    models = SpeakerModels.load(ws.path("models/models.h5"), ubm_)
    te = ws.datadir("test")
    all_trials = te.trials or TrialList([], [])
    with ws.store("test") as store:
        trials = all_trials.select(
            [i for i, (m, t) in enumerate(all_trials.pairs) if t in store and m in models]
        )
        n_dropped = len(all_trials) - len(trials)
        if not len(trials):
            raise DataError(f"{ws.path('data/test/trials')}: no trial can be scored")
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
    write_scores(ws.path("scores/raw.txt"), trials.model_ids, trials.test_ids, scores)
    return ["scores/raw.txt"], {"trials_scored": len(trials), "trials_dropped": n_dropped}


def normalize(ws: Workspace) -> StageResult:
    """Stage 6: ``scores/scores.txt``, the raw scores normalised with the background cohort."""
    s = ws.cfg.scoring
    raw = read_scores(ws.path("scores/raw.txt"))
    keys = list(raw)
    values = np.array([raw[k] for k in keys])
    if s.norm == "none":
        normed = values
        info: dict[str, Any] = {"norm": "none"}
    else:
        normed, info = _cohort_normalize(ws, keys, values)
    write_scores(ws.path("scores/scores.txt"), [k[0] for k in keys], [k[1] for k in keys], normed)
    return ["scores/scores.txt"], info


def _cohort_normalize(
    ws: Workspace, keys: list[tuple[str, str]], values: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """The cohort is the first ``scoring.cohort_size`` background speakers (sorted ids)."""
    s = ws.cfg.scoring
    ubm_ = DiagGMM.load(ws.path("ubm/ubm.h5"))
    models = SpeakerModels.load(ws.path("models/models.h5"), ubm_)
    bg = ws.datadir("background")
    with ws.store("background") as cstore, ws.store("test") as tstore:
        spk2utt, _ = _present(bg.spk2utt, cstore)
        spks = sorted(spk2utt)[: s.cohort_size]
        cohort = {k: spk2utt[k] for k in spks}
        normed = cohort_normalize(
            s.norm,
            values,
            [k[0] for k in keys],
            [k[1] for k in keys],
            ubm=ubm_,
            models=models,
            test_features=tstore,
            cohort_features=cstore,
            cohort_spk2utt=cohort,
            relevance_factor=ws.cfg.enroll.relevance_factor,
            adapt=ws.cfg.enroll.adapt,
            score_method=s.method,
            top_c=s.top_c,
            top_n=s.top_n,
            progress=ws.progress,
        )
    info = {
        "norm": s.norm,
        "cohort_speakers": len(spks),
        "cohort_utterances": sum(len(u) for u in cohort.values()),
    }
    return normed, info


def evaluate(ws: Workspace) -> StageResult:
    """Stage 7: ``results.json`` (raw and normalised metrics) and the DET plot ``det.png``."""
    s = ws.cfg.scoring
    te = ws.datadir("test")
    tl = te.trials
    if tl is None or tl.is_target is None:
        raise DataError(f"{ws.path('data/test')}: no labelled trials; rerun stage 1")
    label = dict(zip(tl.pairs, tl.is_target.tolist(), strict=True))
    kw = {"p_target": s.p_target, "c_miss": s.c_miss, "c_fa": s.c_fa}
    systems: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, rel in (("normalized", "scores/scores.txt"), ("raw", "scores/raw.txt")):
        sc = read_scores(ws.path(rel))
        keys = list(sc)
        systems[name] = (
            np.array([sc[k] for k in keys]),
            np.array([label[k] for k in keys], dtype=bool),
        )
    if s.norm == "none":
        del systems["normalized"]
    main = "normalized" if s.norm != "none" else "raw"
    scores, is_target = systems[main]
    results: dict[str, Any] = {
        "task": "verification",
        "name": ws.cfg.name,
        "config_hash": ws.config_hash,
        "norm": s.norm,
        "n_trials": len(scores),
        "n_target": int(is_target.sum()),
        "n_nontarget": int((~is_target).sum()),
        "n_models": len({k[0] for k in label}),
        "n_test_utts": len({k[1] for k in label}),
        "eer_method": "ROC convex hull",
        **kw,
    }
    if int(is_target.sum()) == 0 or int((~is_target).sum()) == 0:
        raise DataError(
            f"{ws.path('data/test/trials')}: the scored trials need both target and "
            f"non-target trials to compute an EER"
        )
    for name, (values, t) in systems.items():
        results[name] = summary(values, t, **kw)
    m = results[main]
    for key in ("eer", "min_dcf", "act_dcf", "cllr", "min_cllr"):
        results[key] = m[key]
    plot_det_file(
        {("raw" if k == "raw" else f"{s.norm}-norm"): v for k, v in systems.items()},
        ws.path("det.png"),
        title=f"DET: {ws.cfg.name}",
    )
    write_json(ws.path("results.json"), results)
    return ["results.json", "det.png"], {"eer": m["eer"], "min_dcf": m["min_dcf"]}


def report(ws: Workspace) -> StageResult:
    """Stage 8: ``report.md`` with the DET plot."""
    return report_stage(ws, "det.png")
