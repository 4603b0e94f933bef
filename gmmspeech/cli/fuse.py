"""``gmmspeech fuse``: fuse several systems' scores of the same trials into one LLR.

``--train TRIALS S1 S2 ...`` fits the fusion (``--save`` writes it as JSON, with each
system's identity from its scores file's header); ``--load JSON`` reads one back.
``--apply A1 A2 ...`` takes one scores file per system in any order: each is matched to its
system by the system it records (UBM or TV fingerprint, features, method, normalisation,
kind), and a file of a system the fusion does not know is refused. Every scores file is
joined to its trials list by trial key; a missing or an extra trial is refused with a count.
"""

from __future__ import annotations

import argparse

import numpy as np

from ..config.sections import FusionConfig, ScoringConfig
from ..corpus.scorefiles import align_scores, read_scores, read_scores_header, write_trial_scores
from ..corpus.trials import TrialList, read_trials
from ..decisions.fusion import FusionChoice, fit_fusion
from ..decisions.fusionfile import (
    fused_header,
    input_record,
    load_fusion,
    match_inputs,
    save_fusion,
)
from ..errors import ConfigError, DataError
from ..storage.outputs import FUSION_JSON, SCORES, check_output
from .common import add_config_arguments, add_overwrite_argument, config_source

EXAMPLE = (
    "gmmspeech fuse --train cal_trials gmm/calibration/scores.txt iv/calibration/scores.txt "
    "--apply gmm/scores/scores.txt iv/scores/scores.txt --trials data/test/trials -o fused.txt "
    "[--save fusion.json]; later: gmmspeech fuse --load fusion.json --apply ... --trials ... -o ..."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--train",
        nargs="+",
        default=None,
        metavar="PATH",
        help="TRIALS then one scores file per system: labelled trials to fit the fusion on",
    )
    src.add_argument("--load", default=None, metavar="JSON", help="a fusion saved by --save")
    p.add_argument("--save", default=None, metavar="JSON", help="write the fitted fusion")
    p.add_argument(
        "--apply",
        nargs="+",
        required=True,
        metavar="SCORES",
        help="one scores file per system, in any order: each is matched to its system by "
        "the system its header records",
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
    """Scores (n_trials, n_files), each file joined to ``trials`` by key, exactly."""
    return np.column_stack(
        [align_scores(read_scores(p), trials, source=p, exact=True) for p in paths]
    )


def _train(args: argparse.Namespace) -> FusionChoice:
    src = config_source(args, {"p_target": "scoring.p_target", "guard": "fusion.guard"})
    sc = src.section("scoring", ScoringConfig)
    fc = src.section("fusion", FusionConfig)
    train_trials, *train = args.train
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
    choice.inputs = [
        input_record(n, read_scores_header(p), p) for n, p in zip(names, train, strict=True)
    ]
    if choice.cv_cllr is not None:
        cv = ", ".join(f"{k} {v:.4f}" for k, v in choice.cv_cllr.items())
        print(f"guard: cross-validated Cllr ({choice.n_folds} folds by model): {cv}")
    return choice


def run(args: argparse.Namespace) -> int:
    if args.train is not None and len(args.train) < 2:
        raise ConfigError("fuse: --train needs TRIALS and one scores file per system")
    if args.train is not None and len(args.train) - 1 != len(args.apply):
        raise ConfigError(
            f"fuse: --train needs TRIALS and one scores file per system, --apply as many "
            f"scores files ({len(args.train) - 1} and {len(args.apply)} given)"
        )
    if args.save is not None and args.train is None:
        raise ConfigError("fuse: --save writes a fusion fitted with --train; --load reads one")
    if args.load is not None and (args.p_target is not None or args.guard is not None):
        raise ConfigError(
            "fuse: --p-target and --guard set how --train fits; a fusion read with --load "
            "keeps the prior and the choice it was fitted with"
        )
    inputs = [*(args.train or []), args.load, *args.apply, args.trials, args.config]
    check_output(args.save, FUSION_JSON, inputs=inputs, overwrite=args.overwrite)
    check_output(args.output, SCORES, inputs=[*inputs, args.save], overwrite=args.overwrite)
    choice = _train(args) if args.train is not None else load_fusion(args.load)
    name = args.load or args.save or "the fusion fitted on --train"
    given = [(p, read_scores_header(p)) for p in args.apply]
    order = match_inputs(choice.inputs, given, stored_in=name)
    paths = [args.apply[i] for i in order]
    if order != sorted(order):
        pairs = ", ".join(f"{n}: {p}" for n, p in zip(choice.names, paths, strict=True))
        print(f"fuse: the --apply files matched to the fused systems by system: {pairs}")
    if args.save:
        save_fusion(choice, args.save)
        print(f"fusion written to {args.save}")
    trials = read_trials(args.trials)
    head = fused_header(choice)
    write_trial_scores(args.output, trials, choice.transform(_matrix(paths, trials)), head)
    weights = ", ".join(f"{w:.6g}" for w in choice.model.weights_)
    used = ", ".join(choice.names[i] for i in choice.chosen)
    print(
        f"fusion: kept {choice.label}: llr = [{weights}] . scores of [{used}] + "
        f"{choice.model.offset_:.6g} (P_tar {choice.prior:g}); "
        f"{len(trials)} fused scores written to {args.output}"
    )
    return 0
