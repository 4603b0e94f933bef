"""``gmmspeech score``: score a trials list, optionally with cohort score normalisation."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..config import EnrollConfig, ScoringConfig
from ..datadir import read_spk2utt
from ..errors import DataError
from ..featstore import open_features
from ..gmm import DiagGMM
from ..norm import METHODS as NORM_METHODS
from ..norm import cohort_normalize
from ..outputs import SCORES, check_output
from ..provenance import file_sha256
from ..scorefiles import write_trial_scores
from ..scoring import METHODS, ModelBank, score_trials
from ..speakermodels import SpeakerModels, ubm_fingerprint
from ..trials import read_trials
from . import add_config_arguments, add_map_arguments, add_overwrite_argument, config_source

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
    add_config_arguments(p, "'scoring:' and 'enroll:'", "scoring.top_c=3")
    d = ScoringConfig()
    p.add_argument(
        "--method", choices=METHODS, default=None, help=f"default: scoring.method, {d.method}"
    )
    p.add_argument("--top-c", type=int, default=None, help=f"C for topc (default {d.top_c})")
    p.add_argument(
        "--norm",
        choices=NORM_METHODS,
        default=None,
        help="score normalisation with a cohort: z, t, zt, s, as (adaptive S-norm) "
        f"(default: scoring.norm, {d.norm})",
    )
    p.add_argument("--cohort-dir", default=None, help="cohort data dir (utt2spk or spk2utt)")
    p.add_argument(
        "--cohort-feats", default=None, help="features of the cohort (default: FEATS.h5)"
    )
    p.add_argument(
        "--top-n",
        type=int,
        default=None,
        help=f"cohort scores kept by adaptive S-norm (default: scoring.top_n, {d.top_n})",
    )
    add_map_arguments(p, adapt_default="", whose="of the cohort models")
    add_overwrite_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


FLAGS = {
    "method": "scoring.method",
    "top_c": "scoring.top_c",
    "norm": "scoring.norm",
    "top_n": "scoring.top_n",
    "relevance_factor": "enroll.relevance_factor",
}


def run(args: argparse.Namespace) -> int:
    src = config_source(args, FLAGS)
    sc, en = src.section("scoring", ScoringConfig), src.section("enroll", EnrollConfig)
    inputs = [args.ubm, args.models, args.features, args.trials, args.config]
    inputs += [args.cohort_dir, args.cohort_feats]
    check_output(args.output, SCORES, inputs=inputs, overwrite=args.overwrite)
    ubm = DiagGMM.load(args.ubm)
    models = SpeakerModels.load(args.models, ubm)
    feats = open_features(args.features)
    trials = read_trials(args.trials)
    progress = not args.no_progress
    kw: dict[str, Any] = {"method": sc.method, "top_c": sc.top_c, "progress": progress}
    bank = ModelBank(ubm, models)
    scores = score_trials(ubm, bank, feats, trials, **kw)
    if sc.norm != "none":
        if not args.cohort_dir:
            raise DataError(f"--norm {sc.norm}: needs --cohort-dir (an impostor data dir)")
        scores = cohort_normalize(
            sc.norm,
            scores,
            trials.model_ids,
            trials.test_ids,
            ubm=ubm,
            models=models,
            test_features=feats,
            cohort_features=open_features(args.cohort_feats) if args.cohort_feats else feats,
            cohort_spk2utt=read_spk2utt(args.cohort_dir),
            relevance_factor=en.relevance_factor,
            adapt=models.adapt or en.adapt,
            score_method=sc.method,
            top_c=sc.top_c,
            top_n=sc.top_n,
            progress=progress,
        )
    header = {
        "ubm": ubm_fingerprint(ubm)[:16],
        "models": file_sha256(args.models)[:16],
        "features": getattr(feats, "config_hash", "unknown"),
        "method": sc.method,
        "norm": sc.norm,
    }
    write_trial_scores(args.output, trials, scores, header)
    print(f"wrote {len(trials)} score(s) to {args.output}")
    return 0
