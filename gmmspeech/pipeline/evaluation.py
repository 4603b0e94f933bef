"""The evaluate and report stages of verification (GMM-UBM and i-vector systems alike).

``results.json`` holds the metrics of the raw, normalised and calibrated scores (the
headline actDCF and Cllr are of the calibrated LLRs), ``det.png`` their DET curves.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..corpus.scorefiles import read_scores
from ..decisions.metrics import summary
from ..errors import DataError
from .artefacts import (
    CALIBRATED_SCORES,
    CALIBRATION_SUMMARY,
    DET_PLOT,
    RAW_SCORES,
    RESULTS,
    SCORES,
    TRIALS,
)
from .common import report_stage
from .report import plot_det_file, write_json
from .verification import _labels, scoring_norm
from .workspace import StageResult, Workspace


def evaluate(ws: Workspace) -> StageResult:
    """Stage 8: ``results.json`` (raw, normalised, calibrated metrics) and ``det.png``."""
    s = ws.cfg.scoring
    kw = {"p_target": s.p_target, "c_miss": s.c_miss, "c_fa": s.c_fa}
    files = {"raw": RAW_SCORES}
    if scoring_norm(ws) != "none":
        files["normalized"] = SCORES
    if s.calibrate:
        files["calibrated"] = CALIBRATED_SCORES
    systems: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, art in files.items():
        sc = read_scores(ws.path(art))
        keys = list(sc)
        systems[name] = (np.array([sc[k] for k in keys]), _labels(ws, keys))
    main = "normalized" if scoring_norm(ws) != "none" else "raw"
    scores, is_target = systems[main]
    tl = ws.datadir("test").trials
    if tl is None:
        raise DataError(f"{ws.path(TRIALS)}: no trials; rerun stage 1")
    results: dict[str, Any] = {
        "task": "verification",
        "name": ws.cfg.name,
        # the hash of every config key these results depend on
        "config_hash": ws.hash,
        "norm": scoring_norm(ws),
        "n_trials": len(scores),
        "n_target": int(is_target.sum()),
        "n_nontarget": int((~is_target).sum()),
        "n_models": len(set(tl.model_ids)),
        "n_test_utts": len(set(tl.test_ids)),
        "eer_method": "ROC convex hull",
        **kw,
    }
    if int(is_target.sum()) == 0 or int((~is_target).sum()) == 0:
        raise DataError(
            f"{ws.path(TRIALS)}: the scored trials need both target and "
            f"non-target trials to compute an EER"
        )
    for name, (values, t) in systems.items():
        results[name] = summary(values, t, **kw)
    m = results[main]
    for key in ("eer", "min_dcf", "act_dcf", "cllr", "min_cllr"):
        results[key] = m[key]
    # actDCF and Cllr judge calibration: the headline ones are of the calibrated LLRs
    results["act_dcf_uncalibrated"] = m["act_dcf"]
    results["cllr_uncalibrated"] = m["cllr"]
    if "calibrated" in results:
        results["act_dcf"] = results["calibrated"]["act_dcf"]
        results["cllr"] = results["calibrated"]["cllr"]
        summary_ = json.loads(ws.path(CALIBRATION_SUMMARY).read_text(encoding="utf-8"))
        results["calibration"] = summary_
    plot_det_file(
        {
            ("raw" if k == "raw" else f"{scoring_norm(ws)}-norm"): v
            for k, v in systems.items()
            if k != "calibrated"  # an increasing affine map: the same DET curve
        },
        ws.output(DET_PLOT),
        title=f"DET: {ws.cfg.name}",
    )
    write_json(ws.output(RESULTS), results)
    return [RESULTS.rel(), DET_PLOT.rel()], {"eer": m["eer"], "min_dcf": m["min_dcf"]}


def report(ws: Workspace) -> StageResult:
    """Stage 9: ``report.md`` with the DET plot."""
    return report_stage(ws, DET_PLOT)
