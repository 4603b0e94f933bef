"""``gmmspeech fuse``: fuse several systems' scores of the same trials into one LLR."""

from __future__ import annotations

import argparse

import numpy as np

from ..calibration import LinearFusion
from ..config import ScoringConfig
from ..errors import ConfigError, DataError
from ..outputs import SCORES, check_output
from ..scorefiles import align_scores, read_scores, write_trial_scores
from ..trials import TrialList, read_trials
from . import add_config_arguments, add_overwrite_argument, config_source

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
    add_config_arguments(p, "a 'scoring:'", "scoring.p_target=0.05")
    p.add_argument("--p-target", type=float, default=None, help="prior the fit is weighted for")
    add_overwrite_argument(p)


def _matrix(paths: list[str], trials: TrialList) -> np.ndarray:
    return np.column_stack([align_scores(read_scores(p), trials) for p in paths])


def run(args: argparse.Namespace) -> int:
    sc = config_source(args, {"p_target": "scoring.p_target"}).section("scoring", ScoringConfig)
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
    fusion = LinearFusion(prior=sc.p_target).fit(_matrix(train, tt), tt.is_target)
    trials = read_trials(args.trials)
    write_trial_scores(args.output, trials, fusion.transform(_matrix(args.apply, trials)))
    weights = ", ".join(f"{w:.6g}" for w in fusion.weights_)
    print(
        f"fusion: llr = [{weights}] . scores + {fusion.offset_:.6g} (P_tar {sc.p_target:g}, "
        f"{len(tt)} trials); {len(trials)} fused scores written to {args.output}"
    )
    return 0
