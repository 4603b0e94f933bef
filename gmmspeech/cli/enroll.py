"""``gmmspeech enroll``: MAP-adapt one model per speaker of a data dir into one HDF5 file."""

from __future__ import annotations

import argparse
import logging

from ..config.sections import EnrollConfig
from ..corpus.datadir import read_enrolment
from ..features.store import open_features
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import enroll
from ..storage.outputs import SPEAKER_MODELS, check_output
from .common import add_config_arguments, add_map_arguments, add_overwrite_argument, config_source

EXAMPLE = "gmmspeech enroll ubm.h5 feats.h5 data/enroll models.h5 --relevance-factor 16 --adapt m"

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ubm", metavar="UBM.h5", help="the UBM to adapt")
    p.add_argument("features", metavar="FEATS.h5", help="feature archive with every utterance")
    p.add_argument("datadir", metavar="DATADIR", help="data dir with spk2utt or utt2spk")
    p.add_argument("output", metavar="MODELS.h5", help="models file to write")
    add_config_arguments(p, "an 'enroll:'", "enroll.relevance_factor=8")
    add_map_arguments(p)
    add_overwrite_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


FLAGS = {"relevance_factor": "enroll.relevance_factor", "adapt": "enroll.adapt"}


def run(args: argparse.Namespace) -> int:
    cfg = config_source(args, FLAGS).section("enroll", EnrollConfig)
    inputs = [args.ubm, args.features, args.datadir, args.config]
    check_output(args.output, SPEAKER_MODELS, inputs=inputs, overwrite=args.overwrite)
    ubm = DiagGMM.load(args.ubm)
    spk2utt = read_enrolment(args.datadir)
    feats = open_features(args.features)
    models = enroll(
        ubm,
        feats,
        spk2utt,
        relevance_factor=cfg.relevance_factor,
        adapt=cfg.adapt,
        progress=not args.no_progress,
    )
    models.save(args.output)
    print(f"wrote {len(models)} speaker model(s) to {args.output}")
    return 0
