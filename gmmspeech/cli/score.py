"""``gmmspeech score``: score a trials list, optionally with cohort score normalisation."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..config.sections import EnrollConfig, ScoringConfig, UBMConfig
from ..corpus.datadir import read_enrolment, read_spk2utt
from ..corpus.scorefiles import write_trial_scores
from ..corpus.trials import TrialList, read_trials
from ..decisions.heldout import CohortOptions, heldout_normalize
from ..decisions.norm import METHODS as NORM_METHODS
from ..decisions.norm import cohort_normalize
from ..decisions.scoring import METHODS, ModelBank, score_trials
from ..errors import DataError
from ..features.store import FeatureStore, open_features
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import SpeakerModels, enroll, ubm_fingerprint
from ..storage.outputs import SCORES, check_output
from ..storage.provenance import file_sha256
from .common import add_config_arguments, add_map_arguments, add_overwrite_argument, config_source

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
        "--heldout-ubm",
        nargs=2,
        default=None,
        metavar=("ENROLL_DIR", "ENROLL_FEATS"),
        help="score the cohort as the pipeline's normalize stage does: --cohort-dir must be "
        "the UBM's training data (its first scoring.cohort_size speakers are the cohort); "
        "each half of the cohort is scored with the UBM re-estimated without it, and the "
        "models enrolled again from that UBM on their utterances in ENROLL_DIR (model2utt "
        "or spk2utt; features ENROLL_FEATS). Without it the cohort is scored with the UBM "
        "itself, which has seen it: S-normalised non-target scores then centre above 0",
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
    inputs += [args.cohort_dir, args.cohort_feats, *(args.heldout_ubm or [])]
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
        if args.heldout_ubm:
            cfg = src.section("ubm", UBMConfig)
            scores = _heldout(args, sc, en, cfg, ubm, feats, trials, scores, models.adapt)
        else:
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


def _heldout(
    args: argparse.Namespace,
    sc: ScoringConfig,
    en: EnrollConfig,
    u: UBMConfig,
    ubm: DiagGMM,
    feats: Mapping[str, np.ndarray],
    trials: TrialList,
    scores: np.ndarray,
    adapt: str | None,
) -> np.ndarray:
    """``scores`` normalised as the pipeline's normalize stage does (``--heldout-ubm``)."""
    enroll_dir, enroll_feats = args.heldout_ubm
    if not args.cohort_feats:
        raise DataError("--heldout-ubm: needs --cohort-feats (the UBM's training features)")
    store = open_features(args.cohort_feats)
    if not isinstance(store, FeatureStore):
        raise DataError(f"{args.cohort_feats}: --heldout-ubm needs a gmmspeech feature store")
    estore = open_features(enroll_feats)
    background = {k: [x for x in v if x in store] for k, v in read_spk2utt(args.cohort_dir).items()}
    background = {k: v for k, v in background.items() if v}
    cohort = {k: sorted(background[k]) for k in sorted(background)[: sc.cohort_size]}
    enrolment = read_enrolment(enroll_dir)
    spk2utt = {m: enrolment[m] for m in sorted(set(trials.model_ids))}
    # as the pipeline: the median utterances per enrolled SPEAKER of the enrolment set
    counts = [len(x) for x in read_spk2utt(enroll_dir).values()]
    per_model = sc.cohort_utts or max(1, int(np.median(counts)))
    opts = CohortOptions(
        en.relevance_factor,
        adapt or en.adapt,
        sc.method,
        sc.top_c,
        per_model,
        u.min_count,
        u.min_weight,
        u.chunk_size,
        not args.no_progress,
    )

    def enrol(ubm_g: DiagGMM) -> SpeakerModels:
        return enroll(
            ubm_g, estore, spk2utt, relevance_factor=en.relevance_factor, adapt=opts.adapt
        )

    return heldout_normalize(
        sc.norm,
        scores,
        list(trials.pairs),
        top_n=sc.top_n,
        ubm=ubm,
        enrol=enrol,
        test_features=feats,
        store=store,
        background=background,
        cohort=cohort,
        opts=opts,
    )
