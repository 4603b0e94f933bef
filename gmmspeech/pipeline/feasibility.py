"""Fail fast: an experiment's config checked against its prepared data before any heavy stage.

The runner (:meth:`.runner.Experiment.run`) calls :func:`check_experiment` once per run, right
before the first stage after ``prepare`` that has to run, whatever the task and system. A
config that the data cannot carry then stops in seconds with a one-line
:class:`~gmmspeech.errors.ConfigError` naming the option, the limit and the fix, instead of
after the UBM and TV training. Only the prepared data dirs and folds are read; the stages
keep their own checks, which also see the utterances that extraction dropped.

- Verification: held-out groups (a cohort, calibration trials of the background speakers)
  need :data:`~gmmspeech.decisions.heldout.MIN_GROUP` speakers per group; calibration trials
  of the enrolment set need folds of it; top-C scoring of GMM models needs C <= K.
- ``system: ivector``: the rank fits the UBM's supervector, and every back end (the main
  one, and one per held-out group on the speakers outside it: :func:`backend_sets`) fits its
  training speakers (:mod:`gmmspeech.ivector.limits`). The ``auto`` options are chosen here
  for all of them at once (:func:`backend_choice`), logged, and chosen again the same way
  by the stages that fit a back end.
- Classification: every class tested in a fold has training files in the other folds (else
  its files are counted wrong without a word); ``method: llr``: C <= K; ``method: ivector``:
  the rank fits each fold's within-class scatter.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..config.sections import ExperimentConfig
from ..decisions.enroltrials import enrolment_folds
from ..decisions.heldout import GROUPS, MIN_GROUP, choose_norm, needs_heldout, speaker_groups
from ..errors import ConfigError, DataError
from ..ivector.limits import Choice, TrainingSpeakers, check, resolve
from .workspace import Workspace

log = logging.getLogger(__name__)


def backend_sets(
    cfg: ExperimentConfig, background: Mapping[str, Sequence[str]]
) -> list[TrainingSpeakers]:
    """The training speakers of each back end of an i-vector experiment.

    Parameters
    ----------
    cfg : ExperimentConfig
        Reads ``scoring.norm``, ``scoring.calibrate`` and ``scoring.calibration_trials``.
    background : mapping of str to sequence of str
        Background speaker -> its utterances (with i-vectors, once there are some).

    Returns
    -------
    list of TrainingSpeakers
        The main back end, on every background speaker; then, when held-out groups are
        used (:func:`~gmmspeech.decisions.heldout.needs_heldout`) and there are enough
        speakers for them, the back end of each group, on the speakers outside it.
    """
    s = cfg.scoring
    bg = {k: list(v) for k, v in background.items() if v}
    out = [TrainingSpeakers.of("the main back end", bg)]
    norm = choose_norm(s.norm, len(bg))[0]
    if not needs_heldout(norm, s.calibrate, s.calibration_trials):
        return out
    groups = speaker_groups(bg)
    if min(len(g) for g in groups) < MIN_GROUP:
        return out  # no held-out groups; check_experiment refuses such a config
    role = "calibration" if s.calibrate and s.calibration_trials == "background" else "cohort"
    for g, group in enumerate(groups, 1):
        inside = set(group)
        others = {k: v for k, v in bg.items() if k not in inside}
        out.append(TrainingSpeakers.of(f"the back end of {role} group {g}", others))
    return out


def backend_choice(cfg: ExperimentConfig, background: Mapping[str, Sequence[str]]) -> Choice:
    """``backend.*`` with its ``auto`` options chosen for every back end of
    :func:`backend_sets` (one LDA dimension for all of them)."""
    return resolve(cfg.backend, cfg.ivector.rank, backend_sets(cfg, background))


def check_experiment(ws: Workspace) -> dict[str, Any]:
    """Check the config of ``ws`` against its prepared data (module docstring).

    Returns
    -------
    dict
        What was chosen (``backend``: the resolved scorer, LDA dimension and the reasons of
        ``auto``); empty when there is nothing to choose.

    Raises
    ------
    ConfigError
        ``"<config>: <option>: <value> needs ...; set ..."``: the first option the data
        cannot carry.
    """
    cfg = ws.cfg
    if cfg.system == "fusion":
        return {}  # its gather stage checks the fused experiments
    try:
        if cfg.task == "classification":
            _classification(ws)
            return {}
        return _verification(ws)
    except ConfigError as exc:
        raise ConfigError(f"{ws.where}: {exc}") from None


def _verification(ws: Workspace) -> dict[str, Any]:
    cfg = ws.cfg
    s = cfg.scoring
    background = ws.datadir("background").spk2utt
    on_background = s.calibrate and s.calibration_trials == "background"
    norm = choose_norm(s.norm, len(background))[0]
    if needs_heldout(norm, s.calibrate, s.calibration_trials):
        groups = speaker_groups(background)
        if min(len(g) for g in groups) < MIN_GROUP:
            option = f"scoring.norm: {s.norm}" if norm != "none" else "scoring.calibrate: true"
            fixes = ["scoring.norm: none"] if norm != "none" else []
            if on_background:
                fixes.append("scoring.calibrate: false (or scoring.calibration_trials: enroll)")
            raise ConfigError(
                f"{option}: the held-out groups of the cohort and the calibration trials need "
                f"at least {GROUPS * MIN_GROUP} background speakers, got {len(background)}; set "
                f"{' and '.join(fixes)}"
            )
    if s.calibrate and s.calibration_trials == "enroll":
        en = ws.datadir("enroll")
        try:
            enrolment_folds(en.enrolment, en.utt2spk)
        except DataError as exc:
            raise ConfigError(f"scoring.calibration_trials: enroll: {exc}") from None
    if cfg.system != "ivector":
        _check_top_c(cfg)
        return {}
    return {"backend": _ivector(cfg, background)}


def _check_top_c(cfg: ExperimentConfig) -> None:
    """Top-C scoring of GMM models keeps C of the UBM's K components."""
    s, k = cfg.scoring, cfg.ubm.n_components
    if s.method == "topc" and s.top_c > k:
        raise ConfigError(
            f"scoring.top_c: {s.top_c} needs at most {k} (ubm.n_components); set "
            f"scoring.top_c <= {k} or scoring.method: exact"
        )


def _check_rank(cfg: ExperimentConfig) -> None:
    k, d, r = cfg.ubm.n_components, cfg.features.n_features, cfg.ivector.rank
    if r > k * d:
        raise ConfigError(
            f"ivector.rank: {r} needs at most {k * d} (the UBM's supervector: "
            f"ubm.n_components {k} x {d} features); set ivector.rank <= {k * d}"
        )


def _ivector(cfg: ExperimentConfig, background: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    _check_rank(cfg)
    sets = backend_sets(cfg, background)
    choice = resolve(cfg.backend, cfg.ivector.rank, sets)
    check(choice.config, cfg.ivector.rank, sets)
    for st in sets:
        log.debug("feasibility: %s", st.describe())
    if choice.reasons:
        log.info("%s", choice.summary())
    c = choice.config
    return {"scorer": c.scorer, "lda_dim": c.lda_dim, "auto": choice.reasons}


def _classification(ws: Workspace) -> None:
    cfg = ws.cfg
    labels = ws.datadir("all").utt2label or {}
    folds = ws.read_folds()
    where: dict[str, set[int]] = {}
    for u, lab in labels.items():
        where.setdefault(lab, set()).add(folds[u])
    lonely = sorted(lab for lab, f in where.items() if len(f) == 1)
    if lonely and len(set(folds.values())) > 1:
        lab = lonely[0]
        (k,) = where[lab]
        n = sum(x == lab for x in labels.values())
        how = (
            "fold_by: spk keeps each speaker in one fold: use fold_by: rank or more speakers "
            "per class"
            if cfg.data.fold_by == "spk"
            else "give every class two or more files"
        )
        raise ConfigError(
            f"data.n_folds: class {lab!r} has all of its {n} file(s) in fold {k}, so fold {k} "
            f"tests them with no training file of the class ({len(lonely)} class(es) like "
            f"it); {how}"
        )
    if cfg.classification.method == "llr":
        _check_top_c(cfg)
    if cfg.classification.method != "ivector":
        return
    _check_rank(cfg)
    room = []
    for k in sorted(set(folds.values())):
        train = [u for u in labels if folds[u] != k]
        n_classes = len({labels[u] for u in train})
        room.append((len(train) - n_classes, k, len(train), n_classes))
    low, k, n_train, n_classes = min(room)
    if cfg.ivector.rank > low:
        raise ConfigError(
            f"ivector.rank: {cfg.ivector.rank} needs at most {low}: fold {k} trains on "
            f"{n_train} files of {n_classes} classes, whose within-class scatter has rank "
            f"{low} at most, and the i-vector LDA needs it full; set ivector.rank <= {low}"
        )


__all__ = ["backend_choice", "backend_sets", "check_experiment"]
