"""``gmmspeech train-tv``: train a total-variability (i-vector) model on a UBM's statistics."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..config.ivector import stats_options
from ..config.sections import ComputeConfig, IVectorConfig
from ..engine import Engine, make_engine
from ..features.store import FeatureStore
from ..ivector.stats import StatsFile, compute_stats
from ..ivector.tv import TotalVariability
from ..mixture.gmm import DiagGMM
from ..storage.outputs import TV_MODEL, check_output
from ..storage.scratch import scratch_folder
from .common import add_config_arguments, add_overwrite_argument, config_source

EXAMPLE = (
    "gmmspeech train-tv ubm.h5 feats/background.h5 tv.h5 --config configs/speaker_verification.yaml "
    "--set ivector.rank=200 --set ivector.n_iter=5"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ubm", metavar="UBM.h5", help="the UBM whose statistics the model explains")
    p.add_argument("features", metavar="FEATS.h5", help="feature store to train on")
    p.add_argument("output", metavar="TV.h5", help="model file to write")
    add_config_arguments(p, "'ivector:' and 'compute:'", "ivector.rank=200")
    add_overwrite_argument(p)


@contextlib.contextmanager
def statistics(
    ubm: DiagGMM, features: str, c: IVectorConfig, engine: Engine, near: str
) -> Iterator[StatsFile]:
    """The statistics of a feature store on ``ubm`` (``c.top_n``, ``c.min_post``), streamed
    to a temporary file in the folder of ``near`` (removed when the block ends, or by the
    next run after a kill)."""
    with (
        scratch_folder(Path(near).resolve().parent) as tmp,
        FeatureStore(features) as store,
    ):
        out = compute_stats(
            ubm, store, engine=engine, out=Path(tmp) / "stats.h5", **stats_options(c)
        )
        yield out


def run(args: argparse.Namespace) -> int:
    src = config_source(args)
    c, compute = src.section("ivector", IVectorConfig), src.section("compute", ComputeConfig)
    inputs = [args.ubm, args.features, args.config]
    check_output(args.output, TV_MODEL, inputs=inputs, overwrite=args.overwrite)
    ubm = DiagGMM.load(args.ubm)
    model = TotalVariability(
        rank=c.rank,
        n_iter=c.n_iter,
        min_divergence=c.min_divergence,
        random_state=c.random_state,
        batch_size=c.batch_size,
    )
    engine = make_engine(compute)
    try:
        with statistics(ubm, args.features, c, engine, args.output) as stats:
            model.fit(stats, engine=engine)
            n = len(stats)
    finally:
        engine.close()
    model.save(args.output)
    print(f"wrote {args.output}: rank {c.rank}, {c.n_iter} iterations on {n} utterances")
    return 0
