"""The stages of a fusion experiment (``system: fusion``): gather, fuse, evaluate, report.

``gather`` checks that the systems scored the same evaluation and calibration trials with
the same labels, and copies their scores in (fingerprinted, so a fused experiment run again
is noticed); ``fuse`` fits the fusion on the calibration trials, guard included
(:func:`gmmspeech.decisions.fusion.fit_fusion`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..corpus.scorefiles import (
    align_scores,
    llr_header,
    read_scores,
    read_scores_header,
    system_differences,
    write_trial_scores,
)
from ..corpus.trials import TrialList, read_trials, write_trials
from ..decisions.fusion import fit_fusion
from ..decisions.fusionfile import fused_header, input_record, save_fusion
from ..decisions.metrics import summary
from ..errors import DataError
from ..storage.provenance import file_fingerprint, file_sha256
from .artefacts import (
    CALIBRATED_SCORES,
    CALIBRATION_SCORES,
    CALIBRATION_TRIALS,
    DET_PLOT,
    FUSED_SCORES,
    FUSION,
    FUSION_TRIALS,
    RECORDS,
    RESULTS,
    SCORES,
    SYSTEM_CALIBRATED,
    SYSTEM_CALIBRATION,
    SYSTEM_SCORES,
    TRIALS,
    Artefact,
)
from .common import report_stage
from .report import plot_det_file, write_json
from .workspace import MANIFEST, RESOLVED_CONFIG, StageResult, Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SystemFiles:
    """The files one system of a fusion is read from.

    Attributes
    ----------
    name : str
    key : str
        Its place in the config, ``fusion.systems[i]``.
    scores, calibration_trials, calibration_scores : Path
    trials : Path or None
        The labelled evaluation trials of an experiment (None for score files).
    """

    name: str
    key: str
    scores: Path
    calibration_trials: Path
    calibration_scores: Path
    trials: Path | None = None

    def paths(self) -> dict[str, Path]:
        out = {
            "scores": self.scores,
            "calibration_trials": self.calibration_trials,
            "calibration_scores": self.calibration_scores,
        }
        return out if self.trials is None else {**out, "trials": self.trials}


def system_files(ws: Workspace) -> list[SystemFiles]:
    """The files of every system of ``fusion.systems``, in order."""
    out = []
    for i, s in enumerate(ws.cfg.fusion.systems):
        key = f"fusion.systems[{i}]"
        if s.experiment is not None:
            base = Path(s.experiment)
            out.append(
                SystemFiles(
                    s.label,
                    key,
                    base / SCORES.rel(),
                    base / CALIBRATION_TRIALS.rel(),
                    base / CALIBRATION_SCORES.rel(),
                    base / TRIALS.rel(),
                )
            )
        else:  # FusedSystem checks that the three are given
            files = (s.scores, s.calibration_trials, s.calibration_scores)
            out.append(SystemFiles(s.label, key, *(Path(f or "") for f in files)))
    return out


def _evaluation_trials(ws: Workspace, systems: Sequence[SystemFiles]) -> Path:
    if ws.cfg.fusion.trials is not None:
        return Path(ws.cfg.fusion.trials)
    return next(s.trials for s in systems if s.trials is not None)


def gather_inputs(ws: Workspace) -> dict[str, str]:
    """Fingerprints of every file the gather stage reads (they live outside the folder)."""
    systems = system_files(ws)
    out = {
        f"{s.key} ({s.name}) {kind}": file_fingerprint(p)
        for s in systems
        for kind, p in s.paths().items()
    }
    if ws.cfg.fusion.trials is not None:
        out["fusion.trials"] = file_fingerprint(ws.cfg.fusion.trials)
    return out


# ------------------------------------------------------------------------------- gather
def _check_experiment(ws: Workspace, key: str, folder: Path) -> None:
    """A verification experiment whose calibrate stage is up to date, or a DataError."""
    where = f"{ws.where}: {key}.experiment: {folder}"
    if not folder.is_dir():
        raise DataError(
            f"{where}: no such folder; run that experiment first (gmmspeech run CONFIG --out "
            f"{folder}), or fix the path (relative paths are relative to the config's folder)"
        )
    if not (folder / MANIFEST).is_file():
        raise DataError(f"{where}: not a gmmspeech experiment folder (no {MANIFEST})")
    try:
        cfg = yaml.safe_load((folder / RESOLVED_CONFIG).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        cfg = None
    if not isinstance(cfg, dict):
        raise DataError(f"{where}: unreadable {RESOLVED_CONFIG}; run the experiment again")
    task, system = cfg.get("task"), cfg.get("system")
    if task != "verification" or system == "fusion":
        raise DataError(
            f"{where}: a {task} experiment of system {system!r}; a fusion fuses verification "
            f"experiments of systems gmm-ubm or ivector"
        )
    scoring = cfg.get("scoring")
    if isinstance(scoring, dict) and scoring.get("calibrate") is False:
        raise DataError(
            f"{where}: was run with scoring.calibrate: false; the fusion is fitted on its "
            f"calibration trials: run it again with scoring.calibrate: true"
        )
    if not list((folder / RECORDS.template).glob("[0-9][0-9]_calibrate.json")):
        raise DataError(
            f"{where}: its calibrate stage is not up to date; finish the experiment first "
            f"(gmmspeech run CONFIG --out {folder})"
        )


def _differences(what: str, keys: Mapping[str, set[tuple[str, str]]]) -> list[str]:
    """One phrase per system whose trials differ from the first system's."""
    names = list(keys)
    first, a = names[0], keys[names[0]]
    out = []
    for other in names[1:]:
        b = keys[other]
        if a == b:
            continue
        phrase = f"{what}: {first} has {len(a)}, {other} {len(b)}"
        for x, y, only in ((first, other, a - b), (other, first, b - a)):
            if only:
                m, t = min(only)
                phrase += f"; {len(only)} of {x}'s are not {y}'s (e.g. {m} {t})"
        out.append(phrase)
    return out


def _label_differences(
    what: str, labels: Mapping[str, Mapping[tuple[str, str], bool]]
) -> list[str]:
    """One phrase per system that labels a trial of the first system's otherwise."""
    names = list(labels)
    first = labels[names[0]]
    out = []
    for other in names[1:]:
        diff = sorted(k for k, v in labels[other].items() if k in first and first[k] != v)
        if diff:
            m, t = diff[0]
            out.append(
                f"{what} labels: {len(diff)} trial(s) are labelled otherwise by {other} than by "
                f"{names[0]} (e.g. {m} {t})"
            )
    return out


def _provenance_differences(systems: Sequence[SystemFiles]) -> list[str]:
    """Systems whose calibration scores were made by another system than their evaluation
    scores (:data:`~gmmspeech.corpus.scorefiles.SYSTEM_FIELDS` and ``kind``): the calibration
    trials must be scored the way the evaluation trials are."""
    out = []
    for s in systems:
        h1, h2 = read_scores_header(s.scores), read_scores_header(s.calibration_scores)
        for k, a, b in system_differences(h1, h2):
            out.append(
                f"{s.name}: its evaluation scores have {k}={a}, its calibration scores {k}={b}"
            )
    return out


def _labelled(path: Path, what: str) -> TrialList:
    trials = read_trials(path)
    _targets(trials, path, what)
    return trials


def _targets(trials: TrialList, path: Path, what: str = "trials") -> np.ndarray:
    """The target labels of ``trials`` (read from ``path``); a DataError when it has none."""
    if trials.is_target is None:
        raise DataError(f"{path}: the {what} need target/nontarget labels")
    return trials.is_target


def _labels(trials: TrialList, path: Path) -> dict[tuple[str, str], bool]:
    return dict(zip(trials.pairs, _targets(trials, path).tolist(), strict=True))


def _scored_trials(ws: Workspace, path: Path, scored: Mapping[tuple[str, str], float]) -> TrialList:
    """The trials of ``path`` that the systems scored, in its order."""
    everything = _labelled(path, "evaluation trials")
    pairs = everything.pairs
    listed = set(pairs)
    missing = [k for k in scored if k not in listed]
    if missing:
        m, t = missing[0]
        raise DataError(
            f"{path}: has no trial {m} {t} that the systems scored ({len(missing)} such); "
            f"set fusion.trials to the trials the systems scored"
        )
    trials = everything.select([i for i, k in enumerate(pairs) if k in scored])
    is_target = _targets(trials, path)
    if is_target.all() or not is_target.any():
        raise DataError(f"{path}: the scored trials need target and non-target trials")
    return trials


def gather(ws: Workspace) -> StageResult:
    """Stage 1: check the systems against each other and copy their scores in."""
    systems = system_files(ws)
    for spec, s in zip(ws.cfg.fusion.systems, systems, strict=True):
        if spec.experiment is not None:
            _check_experiment(ws, s.key, Path(spec.experiment))
        for kind, p in s.paths().items():
            if not p.is_file():
                raise DataError(f"{ws.where}: {s.key} ({s.name}): {kind}: no such file {p}")
    scores = {s.name: read_scores(s.scores) for s in systems}
    cal = {s.name: _labelled(s.calibration_trials, "calibration trials") for s in systems}
    cal_files = {s.name: s.calibration_trials for s in systems}
    problems = _differences("evaluation trials", {k: set(v) for k, v in scores.items()})
    problems += _differences("calibration trials", {k: set(v.pairs) for k, v in cal.items()})
    problems += _label_differences(
        "calibration trial", {k: _labels(v, cal_files[k]) for k, v in cal.items()}
    )
    evaluation = _evaluation_trials(ws, systems)
    own = {s.name: _labels(read_trials(s.trials), s.trials) for s in systems if s.trials}
    if ws.cfg.fusion.trials is not None:
        own = {"fusion.trials": _labels(read_trials(evaluation), evaluation), **own}
    problems += _label_differences("evaluation trial", own) if len(own) > 1 else []
    problems += _provenance_differences(systems)
    if problems:
        raise DataError(
            f"{ws.where}: fusion.systems: the systems do not fit together: "
            f"{' | '.join(problems)}; fuse experiments run on the same data (the same data: "
            f"section, and scoring.cohort_utts) or score files of the same trial lists"
        )
    trials = _scored_trials(ws, evaluation, scores[systems[0].name])
    cal_trials = cal[systems[0].name]
    write_trials(ws.output(FUSION_TRIALS), trials)
    write_trials(ws.output(CALIBRATION_TRIALS), cal_trials)
    outputs = [FUSION_TRIALS.rel(), CALIBRATION_TRIALS.rel()]
    info: dict[str, Any] = {"systems": {}}
    for s in systems:
        for src, art, tl, read in (
            (s.scores, SYSTEM_SCORES, trials, scores[s.name]),
            (s.calibration_scores, SYSTEM_CALIBRATION, cal_trials, None),
        ):
            values = align_scores(read_scores(src) if read is None else read, tl)
            head = {**read_scores_header(src), "system": s.name, "source": src}
            head["source_sha256"] = file_sha256(src)[:16]
            write_trial_scores(ws.output(art, system=s.name), tl, values, head)
            outputs.append(art.rel(system=s.name))
        info["systems"][s.name] = {k: str(p) for k, p in s.paths().items()}
    info |= _counts(trials, cal_trials, evaluation, cal_files[systems[0].name])
    return outputs, info


def _counts(trials: TrialList, cal: TrialList, path: Path, cal_path: Path) -> dict[str, int]:
    return {
        "trials": len(trials),
        "target_trials": int(_targets(trials, path).sum()),
        "calibration_trials": len(cal),
        "calibration_target_trials": int(_targets(cal, cal_path).sum()),
        "calibration_models": len(set(cal.model_ids)),
    }


# --------------------------------------------------------------------------------- fuse
def _names(ws: Workspace) -> list[str]:
    return [s.label for s in ws.cfg.fusion.systems]


def _columns(ws: Workspace, art: Artefact, names: Sequence[str], trials: TrialList) -> np.ndarray:
    """Scores (n, n_systems) of the artefact ``art`` of each system aligned to ``trials``."""
    paths = [ws.path(art, system=n) for n in names]
    return np.column_stack(
        [align_scores(read_scores(p), trials, source=p, exact=True) for p in paths]
    )


def fuse(ws: Workspace) -> StageResult:
    """Stage 2: the fusion fitted on the calibration trials and applied to the evaluation
    trials (the kept candidate, every system fused, and each system alone)."""
    f, s = ws.cfg.fusion, ws.cfg.scoring
    names = _names(ws)
    trials = read_trials(ws.path(FUSION_TRIALS))
    cal_path = ws.path(CALIBRATION_TRIALS)
    cal = read_trials(cal_path)
    x_cal = _columns(ws, SYSTEM_CALIBRATION, names, cal)
    x = _columns(ws, SYSTEM_SCORES, names, trials)
    try:
        choice = fit_fusion(
            x_cal,
            _targets(cal, cal_path),
            names,
            prior=s.p_target,
            model_ids=cal.model_ids,
            guard=f.guard,
            cv_folds=f.cv_folds,
        )
    except DataError as exc:
        raise DataError(f"{cal_path}: {exc} (fusion.guard: false)") from None
    fitted_on = {n: ws.path(SYSTEM_CALIBRATION, system=n) for n in names}
    choice.inputs = [  # relative paths: two folders of the same experiment compare equal
        input_record(n, read_scores_header(p), SYSTEM_CALIBRATION.rel(system=n))
        for n, p in fitted_on.items()
    ]
    info = choice.info()
    save_fusion(choice, ws.output(FUSION))
    outputs = [FUSION.rel()]
    for label, path, rel in [
        (choice.label, ws.output(CALIBRATED_SCORES), CALIBRATED_SCORES.rel()),
        (choice.fusion_label, ws.output(FUSED_SCORES), FUSED_SCORES.rel()),
        *(
            (n, ws.output(SYSTEM_CALIBRATED, system=n), SYSTEM_CALIBRATED.rel(system=n))
            for n in names
        ),
    ]:
        llr = choice.apply(label, x)
        head: Mapping[str, object] = (
            llr_header(read_scores_header(fitted_on[label]), candidate=label)
            if label in fitted_on  # one system calibrated alone: its own system
            else fused_header(choice, label)
        )
        write_trial_scores(path, trials, llr, {**head, "systems": ",".join(names)})
        outputs.append(rel)
    return outputs, info


# ----------------------------------------------------------------------------- evaluate
def evaluate(ws: Workspace) -> StageResult:
    """Stage 3: ``results.json`` with the figures of every system, of the fusion of all,
    and of the candidate kept (the headline), and ``det.png``."""
    s = ws.cfg.scoring
    kw = {"p_target": s.p_target, "c_miss": s.c_miss, "c_fa": s.c_fa}
    trials = read_trials(ws.path(FUSION_TRIALS))
    t = _targets(trials, ws.path(FUSION_TRIALS))

    def load(art: Artefact, **fields: str) -> np.ndarray:
        return align_scores(read_scores(ws.path(art, **fields)), trials)

    names = _names(ws)
    raw = {n: load(SYSTEM_SCORES, system=n) for n in names}
    systems = {
        n: {
            "scores": summary(raw[n], t, **kw),
            "calibrated": summary(load(SYSTEM_CALIBRATED, system=n), t, **kw),
        }
        for n in names
    }
    fused = load(FUSED_SCORES)
    kept = summary(load(CALIBRATED_SCORES), t, **kw)
    fusion = json.loads(ws.path(FUSION).read_text(encoding="utf-8"))
    results: dict[str, Any] = {
        "task": "verification",
        "system": "fusion",
        "name": ws.cfg.name,
        # the hash of every config key these results depend on
        "config_hash": ws.hash,
        "norm": "as in each system",
        "n_trials": len(trials),
        "n_target": int(t.sum()),
        "n_nontarget": int((~t).sum()),
        "n_models": len(set(trials.model_ids)),
        "n_test_utts": len(set(trials.test_ids)),
        "eer_method": "ROC convex hull",
        **kw,
        "systems": systems,
        "fused": summary(fused, t, **kw),
        "calibrated": kept,
        "fusion": {k: v for k, v in fusion.items() if k != "format"},
    }
    for key in ("eer", "min_dcf", "act_dcf", "cllr", "min_cllr"):
        results[key] = kept[key]
    curves = {n: (v, t) for n, v in raw.items()}
    curves["+".join(names)] = (fused, t)
    plot_det_file(curves, ws.output(DET_PLOT), title=f"DET: {ws.cfg.name}")
    write_json(ws.output(RESULTS), results)
    return [RESULTS.rel(), DET_PLOT.rel()], {"eer": kept["eer"], "min_dcf": kept["min_dcf"]}


def report(ws: Workspace) -> StageResult:
    """Stage 4: ``report.md``: the figures of every system and of the fusion."""
    gathered = (ws.record(1) or {}).get("info", {})
    counts: dict[str, Any] = {"systems": ", ".join(_names(ws))}
    counts |= {k: v for k, v in gathered.items() if k != "systems"}
    return report_stage(ws, DET_PLOT, counts)


__all__ = ["SystemFiles", "evaluate", "fuse", "gather", "gather_inputs", "report", "system_files"]
