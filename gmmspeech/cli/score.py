"""``gmmspeech score``: score a trials list, optionally with cohort score normalisation."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..config.sections import EnrollConfig, ScoringConfig
from ..corpus.datadir import DataDir, read_spk2utt
from ..corpus.scorefiles import system_header, write_trial_scores
from ..corpus.trials import TrialList, read_trials
from ..decisions.cohort import CohortPart, Either, Scorer, gmm_scorer, normalize_pairs
from ..decisions.heldout import (
    AUTO_MIN_SPEAKERS,
    HeldoutUBM,
    choose_norm,
    cohort_speakers,
    heldout_parts,
    load_heldout,
)
from ..decisions.norm import METHODS as NORM_METHODS
from ..decisions.scoring import METHODS, ModelBank, score_trials
from ..errors import DataError
from ..features.store import open_features
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
        choices=("auto", *NORM_METHODS),
        default=None,
        help="score normalisation with a cohort: z, t, zt, s, as (adaptive S-norm), auto "
        f"(as with at least {AUTO_MIN_SPEAKERS} --cohort-dir speakers, else none) "
        f"(default: scoring.norm, {d.norm})",
    )
    p.add_argument("--cohort-dir", default=None, help="cohort data dir (utt2spk or spk2utt)")
    p.add_argument(
        "--cohort-feats", default=None, help="features of the cohort (default: FEATS.h5)"
    )
    p.add_argument(
        "--heldout-ubm",
        nargs="+",
        default=None,
        metavar="HELDOUT.h5",
        help="score the cohort as the pipeline's normalize stage does, with the held-out UBMs "
        "its ubm stage saved (exp/ubm/heldout_<g>.h5, each re-estimated without a group of "
        "the UBM's training speakers): --cohort-dir must be the UBM's training data (its "
        "first scoring.cohort_size speakers are the cohort); each part of the cohort is "
        "scored under the held-out UBM that has not seen it, with the models enrolled "
        "again from that UBM (--enroll-dir, --enroll-feats). Without it the cohort is "
        "scored with the UBM itself, which has seen it: S-normalised non-target scores "
        "then centre above 0",
    )
    p.add_argument(
        "--enroll-dir", default=None, help="with --heldout-ubm: the models' enrolment data dir"
    )
    p.add_argument(
        "--enroll-feats", default=None, help="with --heldout-ubm: the enrolment features"
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
    if sc.norm == "auto":  # as the pipeline, with --cohort-dir as the background set
        n_cohort = len(read_spk2utt(args.cohort_dir)) if args.cohort_dir else 0
        sc = dataclasses.replace(sc, norm=choose_norm("auto", n_cohort)[0])
    inputs = [args.ubm, args.models, args.features, args.trials, args.config]
    inputs += [args.cohort_dir, args.cohort_feats, args.enroll_dir, args.enroll_feats]
    inputs += list(args.heldout_ubm or [])
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
            scores = _heldout(args, sc, en, ubm, feats, trials, scores, models.adapt)
        else:
            cohort_feats = open_features(args.cohort_feats) if args.cohort_feats else feats
            scorer = gmm_scorer(
                ubm,
                models,
                Either(feats, cohort_feats),
                relevance_factor=en.relevance_factor,
                adapt=models.adapt or en.adapt,
                method=sc.method,
                top_c=sc.top_c,
                progress=progress,
            )
            part = CohortPart(read_spk2utt(args.cohort_dir), scorer)
            scores = normalize_pairs(sc.norm, scores, list(trials.pairs), [part], top_n=sc.top_n)
    header = system_header(
        ubm=ubm_fingerprint(ubm),
        features=getattr(feats, "config_hash", None),  # None: features of unknown config
        method=sc.method,
        norm=sc.norm,
        models=file_sha256(args.models)[:16],
    )
    write_trial_scores(args.output, trials, scores, header)
    print(f"wrote {len(trials)} score(s) to {args.output}")
    return 0


def _heldout(
    args: argparse.Namespace,
    sc: ScoringConfig,
    en: EnrollConfig,
    ubm: DiagGMM,
    feats: Mapping[str, np.ndarray],
    trials: TrialList,
    scores: np.ndarray,
    adapt: str | None,
) -> np.ndarray:
    """``scores`` normalised as the pipeline's normalize stage does (``--heldout-ubm``)."""
    if not (args.cohort_feats and args.enroll_dir and args.enroll_feats):
        raise DataError(
            "--heldout-ubm: needs --cohort-feats (the UBM's training features), --enroll-dir "
            "and --enroll-feats (the models' enrolment data dir and features)"
        )
    held = [load_heldout(p, ubm) for p in args.heldout_ubm]
    store = open_features(args.cohort_feats)
    estore = open_features(args.enroll_feats)
    background = {k: [x for x in v if x in store] for k, v in read_spk2utt(args.cohort_dir).items()}
    background = {k: v for k, v in background.items() if v}
    cohort = cohort_speakers(background, sc.cohort_size)
    ed = DataDir.read(args.enroll_dir, check_audio=False)
    spk2utt = {m: ed.enrolment[m] for m in sorted(set(trials.model_ids))}
    speakers = {ed.utt2spk[u] for utts in spk2utt.values() for u in utts}
    # as the pipeline: the median utterances per enrolled SPEAKER of the enrolment set
    per_model = sc.cohort_utts or max(1, int(np.median([len(x) for x in ed.spk2utt.values()])))
    adapt = adapt or en.adapt
    both = Either(feats, store)

    def scorer(_: int, h: HeldoutUBM) -> Scorer:
        models = enroll(h.ubm, estore, spk2utt, relevance_factor=en.relevance_factor, adapt=adapt)
        return gmm_scorer(
            h.ubm,
            models,
            both,
            relevance_factor=en.relevance_factor,
            adapt=adapt,
            method=sc.method,
            top_c=sc.top_c,
            progress=not args.no_progress,
        )

    parts = heldout_parts(held, cohort, background, speakers, scorer)
    return normalize_pairs(
        sc.norm, scores, list(trials.pairs), parts, top_n=sc.top_n, enroll_utts=per_model
    )
