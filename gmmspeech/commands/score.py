"""``gmmspeech score``: score a trials list, optionally with cohort score normalisation."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

from ..errors import DataError
from ..featstore import open_features
from ..gmm import DiagGMM
from ..norm import METHODS as NORM_METHODS
from ..norm import normalize
from ..scoring import (
    METHODS,
    ModelBank,
    TrialList,
    read_trials,
    score_matrix,
    score_trials,
    write_scores,
)
from ..speakermodels import SpeakerModels, enroll, read_spk2utt

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
        scores = _normalise(args, ubm, models, feats, trials, scores, kw)
    write_scores(args.output, trials.model_ids, trials.test_ids, scores)
    print(f"wrote {len(trials)} score(s) to {args.output}")
    return 0


def _normalise(
    args: argparse.Namespace,
    ubm: DiagGMM,
    models: SpeakerModels,
    feats: Any,
    trials: TrialList,
    scores: np.ndarray,
    kw: dict[str, Any],
) -> np.ndarray:
    """Score the cohort (both sides as needed) and normalise ``scores``."""
    cohort_feats = open_features(args.cohort_feats) if args.cohort_feats else feats
    spk2utt = read_spk2utt(args.cohort_dir)
    cohort_utts = [u for utts in spk2utt.values() for u in utts]
    utt_spk = np.array([s for s, utts in spk2utt.items() for _ in utts])
    model_ids = sorted(set(trials.model_ids))
    test_ids = sorted(set(trials.test_ids))
    m_pos = {m: i for i, m in enumerate(model_ids)}
    t_pos = {t: i for i, t in enumerate(test_ids)}
    model_index = np.array([m_pos[m] for m in trials.model_ids])
    test_index = np.array([t_pos[t] for t in trials.test_ids])
    need_z = args.norm in ("z", "zt", "s", "as")
    need_t = args.norm in ("t", "zt", "s", "as")
    model_cohort = test_cohort = cohort_cohort = None
    if need_z:
        log.info("Z side: %d models x %d cohort utterances", len(model_ids), len(cohort_utts))
        sub = ModelBank(ubm, models.subset(model_ids))
        model_cohort = score_matrix(ubm, sub, cohort_feats, cohort_utts, **kw)
    if need_t:
        cohort_models = enroll(
            ubm,
            cohort_feats,
            spk2utt,
            relevance_factor=args.relevance_factor,
            adapt=models.adapt or "m",
        )
        cbank = ModelBank(ubm, cohort_models)
        log.info("T side: %d cohort models x %d test utterances", len(cbank), len(test_ids))
        test_cohort = score_matrix(ubm, cbank, feats, test_ids, **kw).T
        if args.norm == "zt":
            cc = score_matrix(ubm, cbank, cohort_feats, cohort_utts, **kw)
            same = np.asarray(cohort_models.ids)[:, None] == utt_spk[None, :]
            cohort_cohort = np.where(same, np.nan, cc)  # no same-speaker pairs
    return normalize(
        args.norm,
        scores,
        model_index=model_index,
        test_index=test_index,
        model_cohort=model_cohort,
        test_cohort=test_cohort,
        cohort_cohort=cohort_cohort,
        top_n=args.top_n,
    )
