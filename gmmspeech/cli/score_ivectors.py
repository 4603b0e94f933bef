"""``gmmspeech score-ivectors``: score trials with an i-vector back end."""

from __future__ import annotations

import argparse

from ..corpus.datadir import read_enrolment
from ..corpus.scorefiles import system_header, write_trial_scores
from ..corpus.trials import read_trials
from ..errors import DataError, ModelMismatchError
from ..ivector.backend import Backend
from ..ivector.tv import IVectorSet, check_same_tv
from ..pipeline.ivector_stages import score_sets
from ..storage.outputs import SCORES, check_output
from ..storage.provenance import file_sha256
from .common import add_overwrite_argument

EXAMPLE = (
    "gmmspeech score-ivectors backend.h5 ivectors/enroll.h5 data/enroll ivectors/test.h5 "
    "data/test/trials scores.txt"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("backend", metavar="BACKEND.h5", help="written by gmmspeech train-backend")
    p.add_argument("enroll", metavar="ENROLL_IVECTORS.h5", help="i-vectors of the enrolment")
    p.add_argument("datadir", metavar="ENROLL_DIR", help="data dir: model -> its utterances")
    p.add_argument("test", metavar="TEST_IVECTORS.h5", help="i-vectors of the test utterances")
    p.add_argument("trials", metavar="TRIALS", help="trials file '<model> <test> [label]'")
    p.add_argument("output", metavar="SCORES", help="scores file to write")
    add_overwrite_argument(p)


def run(args: argparse.Namespace) -> int:
    inputs = [args.backend, args.enroll, args.datadir, args.test, args.trials]
    check_output(args.output, SCORES, inputs=inputs, overwrite=args.overwrite)
    be = Backend.load(args.backend)
    sets = {path: IVectorSet.load(path) for path in (args.enroll, args.test)}
    for path, iv in sets.items():
        if iv.vectors.shape[1] != be.input_dim:
            raise ModelMismatchError(
                f"{path}: i-vectors of dimension {iv.vectors.shape[1]}, but the back end "
                f"{args.backend} takes dimension {be.input_dim}; extract them with the TV "
                f"model the back end was trained for"
            )
    tv = check_same_tv({args.backend: be.tv_fingerprint_, **{p: iv.tv for p, iv in sets.items()}})
    enrol_vec, test_vec = sets[args.enroll].as_dict(), sets[args.test].as_dict()
    trials = read_trials(args.trials)
    enroll = read_enrolment(args.datadir)
    for m, t in trials.pairs:
        if m not in enroll:
            raise DataError(f"{args.trials}: model {m!r} is not in {args.datadir}")
        if t not in test_vec:
            raise DataError(f"{args.trials}: test utterance {t!r} has no i-vector in {args.test}")
    missing = [u for m in set(trials.model_ids) for u in enroll[m] if u not in enrol_vec]
    if missing:
        raise DataError(f"{args.enroll}: no i-vector of {missing[0]!r} ({len(missing)} missing)")
    scores = score_sets(be, enroll, {**enrol_vec, **test_vec}, trials)
    backend = file_sha256(args.backend)[:16]
    header = system_header(tv=tv, scorer=be.config.scorer, norm="none", backend=backend)
    write_trial_scores(args.output, trials, scores, header)
    print(f"wrote {len(trials)} score(s) to {args.output}")
    return 0
