"""``gmmspeech evaluate``: EER, minDCF, actual DCF, Cllr of a scores file; JSON and DET plot."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..config.sections import ScoringConfig
from ..corpus.scorefiles import (
    align_scores,
    llr_header,
    read_scores,
    read_scores_header,
    write_scores,
)
from ..corpus.trials import TrialList, read_trials
from ..decisions.calibration import LogisticCalibration
from ..decisions.metrics import summary
from ..decisions.plots import plot_det, plot_score_histograms
from ..errors import DataError
from ..storage.atomic import atomic_path
from ..storage.outputs import METRICS_JSON, PNG, SCORES, check_output
from ..storage.provenance import check_finite_json
from .common import add_config_arguments, add_overwrite_argument, config_source

EXAMPLE = (
    "gmmspeech evaluate scores.txt data/test/trials --json metrics.json --plot det.png "
    "[--calibrate-on dev_scores.txt dev_trials]"
)

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scores", metavar="SCORES", help="'<model> <test> <score>' lines")
    p.add_argument("trials", metavar="TRIALS", help="trials file with target/nontarget labels")
    p.add_argument("--json", default=None, metavar="PATH", help="write the metrics as JSON")
    p.add_argument(
        "--plot", default=None, metavar="PNG", help="write a DET plot (needs matplotlib)"
    )
    p.add_argument("--hist", default=None, metavar="PNG", help="write score histograms")
    add_config_arguments(p, "a 'scoring:'", "scoring.p_target=0.05")
    d = ScoringConfig()
    p.add_argument(
        "--p-target",
        type=float,
        default=None,
        help=f"DCF target prior (default: scoring.p_target, {d.p_target:g})",
    )
    p.add_argument(
        "--c-miss", type=float, default=None, help=f"DCF miss cost (default {d.c_miss:g})"
    )
    p.add_argument(
        "--c-fa", type=float, default=None, help=f"DCF false-alarm cost (default {d.c_fa:g})"
    )
    p.add_argument(
        "--calibrate-on",
        nargs=2,
        default=None,
        metavar=("DEV_SCORES", "DEV_TRIALS"),
        help="train a logistic-regression calibration on these and apply it to SCORES",
    )
    p.add_argument(
        "--write-calibrated", default=None, metavar="PATH", help="write the calibrated scores"
    )
    add_overwrite_argument(p)


def _labelled(scores_path: str, trials_path: str) -> tuple[TrialList, np.ndarray, np.ndarray]:
    trials = read_trials(trials_path)
    if trials.is_target is None:
        raise DataError(
            f"{trials_path}: the trials have no target/nontarget labels; evaluation needs them"
        )
    scores = align_scores(read_scores(scores_path), trials, source=scores_path)
    return trials, scores, trials.is_target


def _check_outputs(args: argparse.Namespace) -> None:
    inputs = [args.scores, args.trials, args.config, *(args.calibrate_on or [])]
    for path, kind in (
        (args.json, METRICS_JSON),
        (args.plot, PNG),
        (args.hist, PNG),
        (args.write_calibrated, SCORES),
    ):
        check_output(path, kind, inputs=inputs, overwrite=args.overwrite)


FLAGS = {"p_target": "scoring.p_target", "c_miss": "scoring.c_miss", "c_fa": "scoring.c_fa"}


def run(args: argparse.Namespace) -> int:
    sc = config_source(args, FLAGS).section("scoring", ScoringConfig)
    _check_outputs(args)
    trials, s, t = _labelled(args.scores, args.trials)
    kw = {"p_target": sc.p_target, "c_miss": sc.c_miss, "c_fa": sc.c_fa}
    systems = {"raw": s}
    result: dict[str, Any] = {
        "scores": str(args.scores),
        "trials": str(args.trials),
        "eer_method": "ROC convex hull (BOSARIS rocch2eer)",
    }
    result["raw"] = summary(s, t, **kw)
    if args.calibrate_on:
        _, ds, dt = _labelled(*args.calibrate_on)
        header = read_scores_header(args.scores)
        cal = LogisticCalibration().fit(ds, dt)
        cal.record_scores(read_scores_header(args.calibrate_on[0]), args.calibrate_on[0])
        cal.check_scores(header, given_in=args.scores, stored_in=args.calibrate_on[0])
        cs = cal.transform(s)
        systems["calibrated"] = cs
        result["calibration"] = cal.to_dict()
        result["calibrated"] = summary(cs, t, **kw)
        if args.write_calibrated:
            head = llr_header(header)
            write_scores(args.write_calibrated, trials.model_ids, trials.test_ids, cs, head)
    print(
        f"{len(t)} trials: {int(t.sum())} target, {int((~t).sum())} non-target; "
        f"DCF at P_tar={sc.p_target:g}, C_miss={sc.c_miss:g}, C_fa={sc.c_fa:g}"
    )
    print(
        f"{'system':<12s} {'EER%':>7s} {'minDCF':>7s} {'actDCF':>7s} {'Cllr':>7s} {'minCllr':>7s}"
    )
    for name in systems:
        m = result[name]
        print(
            f"{name:<12s} {100 * m['eer']:7.2f} {m['min_dcf']:7.4f} {m['act_dcf']:7.4f} "
            f"{m['cllr']:7.4f} {m['min_cllr']:7.4f}"
        )
    if args.plot:
        plot_det({k: (v, t) for k, v in systems.items()}, args.plot)
        result["det_plot"] = str(args.plot)
    if args.hist:
        plot_score_histograms(systems[list(systems)[-1]], t, args.hist)
    if args.json:
        check_finite_json(result, args.json)
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"metrics written to {args.json}")
    return 0
