"""``gmmspeech fuse``: fuse several systems' scores of the same trials into one LLR."""

from __future__ import annotations

import argparse

import numpy as np

from ..config.sections import FusionConfig, ScoringConfig
from ..corpus.scorefiles import align_scores, read_scores, write_trial_scores
from ..corpus.trials import TrialList, read_trials
from ..decisions.fusion import fit_fusion
from ..errors import ConfigError, DataError
from ..storage.outputs import SCORES, check_output
from .common import add_config_arguments, add_overwrite_argument, config_source

EXAMPLE = (
    "gmmspeech fuse --train cal_trials gmm/calibration/scores.txt iv/calibration/scores.txt "
    "--apply gmm/scores/scores.txt iv/scores/scores.txt --trials data/test/trials -o fused.txt"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--train",
        nargs="+",
        required=True,
        metavar="PATH",
        help="TRIALS then one scores file per system: labelled trials to fit the fusion on",
    )
    p.add_argument(
        "--apply",
        nargs="+",
        required=True,
        metavar="SCORES",
        help="one scores file per system, in the order of --train",
    )
    p.add_argument("--trials", required=True, metavar="TRIALS", help="the trials of --apply")
    p.add_argument("-o", "--output", required=True, metavar="SCORES", help="fused LLRs")
    add_config_arguments(p, "'scoring:' and 'fusion:'", "scoring.p_target=0.05")
    p.add_argument("--p-target", type=float, default=None, help="prior the fit is weighted for")
    p.add_argument(
        "--guard",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the fusion only when its Cllr, cross-validated by model on the --train "
        "trials, beats each system calibrated alone; else keep the best single system "
        "(fusion.guard, default on)",
    )
    add_overwrite_argument(p)


def _matrix(paths: list[str], trials: TrialList) -> np.ndarray:
    return np.column_stack([align_scores(read_scores(p), trials) for p in paths])


def run(args: argparse.Namespace) -> int:
    src = config_source(args, {"p_target": "scoring.p_target", "guard": "fusion.guard"})
    sc = src.section("scoring", ScoringConfig)
    fc = src.section("fusion", FusionConfig)
    train_trials, *train = args.train
    if len(train) < 1 or len(train) != len(args.apply):
        raise ConfigError(
            f"fuse: --train needs TRIALS and one scores file per system, --apply as many "
            f"scores files ({len(train)} and {len(args.apply)} given)"
        )
    inputs = [*args.train, *args.apply, args.trials, args.config]
    check_output(args.output, SCORES, inputs=inputs, overwrite=args.overwrite)
    tt = read_trials(train_trials)
    if tt.is_target is None:
        raise DataError(f"{train_trials}: the trials need target/nontarget labels to train on")
    names = [f"system{j + 1}" for j in range(len(train))]
    choice = fit_fusion(
        _matrix(train, tt),
        tt.is_target,
        names,
        prior=sc.p_target,
        model_ids=tt.model_ids,
        guard=fc.guard,
        cv_folds=fc.cv_folds,
    )
    trials = read_trials(args.trials)
    write_trial_scores(args.output, trials, choice.transform(_matrix(args.apply, trials)))
    if choice.cv_cllr is not None:
        cv = ", ".join(f"{k} {v:.4f}" for k, v in choice.cv_cllr.items())
        print(f"guard: cross-validated Cllr ({choice.n_folds} folds by model): {cv}")
    weights = ", ".join(f"{w:.6g}" for w in choice.model.weights_)
    used = ", ".join(names[i] for i in choice.chosen)
    print(
        f"fusion: kept {choice.label}: llr = [{weights}] . scores of [{used}] + "
        f"{choice.model.offset_:.6g} (P_tar {sc.p_target:g}, {len(tt)} trials); "
        f"{len(trials)} fused scores written to {args.output}"
    )
    return 0
