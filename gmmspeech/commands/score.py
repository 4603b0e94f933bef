"""``gmmspeech score``: score a trials list, optionally with cohort score normalisation."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..datadir import read_spk2utt
from ..errors import DataError
from ..gmm import DiagGMM
from ..norm import METHODS as NORM_METHODS
from ..norm import cohort_normalize
from ..scoring import METHODS, ModelBank, score_trials
from ..speakermodels import SpeakerModels, open_features
from ..trials import read_trials, write_scores

NAME = "score"
HELP = "score trials '<model> <test> [target|nontarget]' as frame-averaged LLRs"
EXAMPLE = (
    "gmmspeech score ubm.h5 models.h5 feats.h5 data/test/trials scores.txt --method topc "
    "--top-c 5 [--norm s --cohort-dir data/cohort --cohort-feats cohort.h5]"
)

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ubm", metavar="UBM.h5")
    p.add_argument("models", metavar="MODELS.h5", help="models written by gmmspeech enroll")
    p.add_argument("features", metavar="FEATS.h5", help="feature archive of the test utterances")
    p.add_argument("trials", metavar="TRIALS", help="trials file (a data dir's trials)")
    p.add_argument("output", metavar="SCORES", help="scores file to write")
    p.add_argument("--method", choices=METHODS, default="topc", help="default topc")
    p.add_argument("--top-c", type=int, default=5, help="C for topc (default 5)")
    p.add_argument(
        "--norm",
        choices=NORM_METHODS,
        default="none",
        help="score normalisation with a cohort: z, t, zt, s, as (adaptive S-norm)",
    )
    p.add_argument("--cohort-dir", default=None, help="cohort data dir (utt2spk or spk2utt)")
    p.add_argument(
        "--cohort-feats", default=None, help="features of the cohort (default: FEATS.h5)"
    )
    p.add_argument("--top-n", type=int, default=200, help="cohort size for adaptive S-norm")
    p.add_argument("--relevance-factor", type=float, default=16.0, help="for cohort models")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    ubm = DiagGMM.load(args.ubm)
    models = SpeakerModels.load(args.models, ubm)
    feats = open_features(args.features)
    trials = read_trials(args.trials)
    progress = not args.no_progress
    kw: dict[str, Any] = {"method": args.method, "top_c": args.top_c, "progress": progress}
    bank = ModelBank(ubm, models)
    scores = score_trials(ubm, bank, feats, trials, **kw)
    if args.norm != "none":
        if not args.cohort_dir:
            raise DataError(f"--norm {args.norm}: needs --cohort-dir (an impostor data dir)")
        scores = cohort_normalize(
            args.norm,
            scores,
            trials.model_ids,
            trials.test_ids,
            ubm=ubm,
            models=models,
            test_features=feats,
            cohort_features=open_features(args.cohort_feats) if args.cohort_feats else feats,
            cohort_spk2utt=read_spk2utt(args.cohort_dir),
            relevance_factor=args.relevance_factor,
            adapt=models.adapt or "m",
            score_method=args.method,
            top_c=args.top_c,
            top_n=args.top_n,
            progress=progress,
        )
    write_scores(args.output, trials.model_ids, trials.test_ids, scores)
    print(f"wrote {len(trials)} score(s) to {args.output}")
    return 0
