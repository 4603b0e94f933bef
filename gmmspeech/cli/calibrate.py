"""``gmmspeech calibrate``: train a score -> LLR calibration on labelled scores, apply it.

The pipeline's calibrate stage, stage by stage: ``--train`` fits a logistic-regression
calibration (prior-weighted at ``scoring.p_target``) on a scores file and its labelled
trials, ``--save`` writes it as JSON, ``--load`` reads one back, and ``SCORES -o OUT``
writes calibrated LLRs (natural log). The fit, its guard and its fallbacks to the identity
are the pipeline's (:mod:`gmmspeech.decisions.calguard`), and say so.

The calibration records the system of the scores it was fitted on (their header: UBM or TV
fingerprint, feature config, method, normalisation, kind) and refuses to be applied to scores
of another system, saying which field differs; the calibrated scores carry the same system,
````kind=llr`` and the SHA-256 of the scores they were made from. Scores or calibrations that record no system
(other toolkits, files written before this was recorded) are applied with a warning.

``--enroll-folds DATADIR OUTDIR`` writes the cross-validation of ``scoring.calibration_trials:
enroll`` as a data dir: ``model2utt`` (the fold models: each target model without one of its
enrolment utterances) and labelled ``trials`` (held-out utterance against every fold model).
``enroll`` and ``score`` on the enrolment features then give the scores to ``--train`` on,
as stage 7 does without score normalisation (README, "Calibration").
"""

from __future__ import annotations

import argparse

import numpy as np

from ..config.sections import ScoringConfig
from ..corpus.datadir import DataDir
from ..corpus.scorefiles import (
    align_scores,
    llr_header,
    read_scores,
    read_scores_header,
    write_scores,
)
from ..corpus.trials import read_trials
from ..decisions.calguard import check_location, fit_guarded
from ..decisions.calibration import LogisticCalibration
from ..decisions.enroltrials import enrolment_folds
from ..errors import ConfigError, DataError
from ..storage.outputs import CALIBRATION_JSON, DATADIR, SCORES, check_output
from ..storage.provenance import file_sha256
from .common import add_config_arguments, add_overwrite_argument, config_source

EXAMPLE = (
    "gmmspeech calibrate --train dev_scores.txt dev_trials --save cal.json "
    "[eval_scores.txt -o eval_llr.txt]; later: gmmspeech calibrate --load cal.json "
    "eval_scores.txt -o eval_llr.txt; "
    "gmmspeech calibrate --enroll-folds data/enroll cv (then enroll and score cv/trials)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scores", nargs="?", default=None, metavar="SCORES", help="scores to calibrate")
    p.add_argument("-o", "--output", default=None, metavar="PATH", help="calibrated scores")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--train",
        nargs=2,
        default=None,
        metavar=("SCORES", "TRIALS"),
        help="fit on these scores and their labelled trials",
    )
    src.add_argument("--load", default=None, metavar="JSON", help="a saved calibration")
    src.add_argument(
        "--enroll-folds",
        nargs=2,
        default=None,
        metavar=("DATADIR", "OUTDIR"),
        help="write the calibration trials of scoring.calibration_trials: enroll for the models of "
        "the enrolment data dir DATADIR: fold models (model2utt) and labelled trials, as a "
        "data dir OUTDIR to enroll and score",
    )
    p.add_argument("--save", default=None, metavar="JSON", help="write the calibration")
    add_config_arguments(p, "a 'scoring:'", "scoring.p_target=0.05")
    add_overwrite_argument(p)
    p.add_argument(
        "--p-target",
        type=float,
        default=None,
        help=f"prior the fit is weighted for (default: scoring.p_target, "
        f"{ScoringConfig().p_target:g})",
    )


def run(args: argparse.Namespace) -> int:
    if args.enroll_folds:
        return _write_folds(*args.enroll_folds, overwrite=args.overwrite)
    if args.scores is None and args.save is None:
        raise ConfigError("calibrate: nothing to do; give SCORES -o OUT and/or --save JSON")
    if (args.scores is None) != (args.output is None):
        raise ConfigError("calibrate: SCORES and -o/--output go together")
    inputs = [*(args.train or []), args.load, args.scores, args.config]
    check_output(args.save, CALIBRATION_JSON, inputs=inputs, overwrite=args.overwrite)
    check_output(args.output, SCORES, inputs=[*inputs, args.save], overwrite=args.overwrite)
    if args.train:
        sc = config_source(args, {"p_target": "scoring.p_target"}).section("scoring", ScoringConfig)
        scores_path, trials_path = args.train
        trials = read_trials(trials_path)
        if trials.is_target is None:
            raise DataError(f"{trials_path}: the trials need target/nontarget labels to train on")
        s = align_scores(read_scores(scores_path), trials, source=scores_path)
        guarded = fit_guarded(
            s,
            trials.is_target,
            prior=sc.p_target,
            c_miss=sc.c_miss,
            c_fa=sc.c_fa,
            what=str(scores_path),
        )
        cal = guarded.calibration
        cal.record_scores(read_scores_header(scores_path), scores_path)
        counts = (
            f"P_tar {sc.p_target:g}, {len(trials)} trials, {int(trials.is_target.sum())} target"
        )
        if guarded.fallback is None:
            print(f"calibration: llr = {cal.slope_:.6g} * score + {cal.offset_:.6g} ({counts})")
        else:
            print(
                f"calibration: not calibrating ({guarded.fallback}; {counts}): the scores are "
                f"kept as they are, llr = score"
            )
    else:
        cal = LogisticCalibration.load(args.load)
    if args.save:
        cal.save(args.save)
        print(f"calibration written to {args.save}")
    if args.scores is not None:
        _apply(cal, args.scores, args.output, args.load or args.save or "the calibration")
    return 0


def _apply(cal: LogisticCalibration, scores: str, output: str, name: str) -> None:
    """Write ``cal`` applied to the scores file ``scores`` (of the system it was fitted on,
    or refused) to ``output``, a score per trial key of the input."""
    header = read_scores_header(scores)
    cal.check_scores(header, given_in=scores, stored_in=name)
    raw = read_scores(scores)
    keys = list(raw)
    values = np.array([raw[k] for k in keys])
    if check_location(cal, values, where=scores).get("fallback"):
        print(f"calibration: not applied to {scores} (identity: location shift)")
    llr = cal.transform(values)
    head = llr_header(header, source_sha256=file_sha256(scores)[:16])
    write_scores(output, [k[0] for k in keys], [k[1] for k in keys], llr, head)
    print(f"{len(keys)} calibrated scores written to {output}")


def _write_folds(datadir: str, outdir: str, *, overwrite: bool) -> int:
    check_output(outdir, DATADIR, inputs=[datadir], overwrite=overwrite)
    en = DataDir.read(datadir, check_audio=False)
    try:
        folds = enrolment_folds(en.enrolment, en.utt2spk)
    except DataError as exc:
        raise DataError(f"{datadir}: {exc}") from None
    utts = {u for us in folds.models.values() for u in us} | set(folds.trials.test_ids)
    DataDir(
        {u: en.wav_scp[u] for u in utts},
        {u: en.utt2spk[u] for u in utts},
        trials=folds.trials,
        model2utt=folds.models,
    ).write(outdir)
    t = folds.trials
    n_target = 0 if t.is_target is None else int(t.is_target.sum())
    print(
        f"{outdir}: {len(folds.models)} fold models ({folds.n_folds} folds), {len(t)} trials "
        f"({n_target} target); next: gmmspeech enroll UBM FEATS {outdir} "
        f"MODELS.h5, gmmspeech score UBM MODELS.h5 FEATS {outdir}/trials SCORES, "
        f"gmmspeech calibrate --train SCORES {outdir}/trials --save JSON"
    )
    return 0
