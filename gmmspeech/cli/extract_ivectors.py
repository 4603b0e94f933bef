"""``gmmspeech extract-ivectors``: i-vectors of the utterances of a feature store."""

from __future__ import annotations

import argparse

from ..config.sections import ComputeConfig, IVectorConfig
from ..engine import make_engine
from ..ivector.tv import IVectorSet, TotalVariability
from ..storage.outputs import IVECTORS, check_output
from .common import add_config_arguments, add_overwrite_argument, config_source
from .train_tv import statistics

EXAMPLE = "gmmspeech extract-ivectors tv.h5 feats/test.h5 ivectors/test.h5"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tv", metavar="TV.h5", help="model written by gmmspeech train-tv")
    p.add_argument("features", metavar="FEATS.h5", help="feature store")
    p.add_argument("output", metavar="IVECTORS.h5", help="i-vectors file to write")
    add_config_arguments(p, "'ivector:' (top_n, min_post) and 'compute:'", "ivector.top_n=20")
    add_overwrite_argument(p)


def run(args: argparse.Namespace) -> int:
    src = config_source(args)
    c, compute = src.section("ivector", IVectorConfig), src.section("compute", ComputeConfig)
    inputs = [args.tv, args.features, args.config]
    check_output(args.output, IVECTORS, inputs=inputs, overwrite=args.overwrite)
    model = TotalVariability.load(args.tv)
    engine = make_engine(compute)
    try:
        with statistics(model.ubm_, args.features, c, engine, args.output) as stats:
            vectors = model.transform(stats, engine=engine)
            ids = list(stats.utt_ids)  # the rows' own ids, never an order assumed
    finally:
        engine.close()
    IVectorSet(ids, vectors, tv=model.fingerprint).save(args.output)
    print(f"wrote {args.output}: {len(ids)} i-vectors of dimension {model.rank}")
    return 0
