"""``gmmspeech extract``: features of every utterance of a data dir into an HDF5 store."""

from __future__ import annotations

import argparse
import contextlib
import logging

from ..config.loader import ConfigSource
from ..config.sections import ComputeConfig, ExtractConfig, FeatureConfig
from ..corpus.datadir import DataDir
from ..engine import make_engine
from ..features.extraction import extract_to_store
from ..features.extraction_worker import keep_freed_memory
from ..storage.outputs import declare_output
from .common import add_config_arguments, config_source

EXAMPLE = "gmmspeech extract data/train feats/train.h5 --config features.yaml --jobs 2"

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("datadir", metavar="DATADIR", help="Kaldi-style data dir (wav.scp, utt2spk)")
    p.add_argument("output", metavar="OUT.h5", help="feature store to create or complete")
    p.add_argument(
        "--audio-root",
        default=None,
        metavar="DIR",
        help="folder relative wav.scp paths are relative to (default: the data dir itself)",
    )
    add_config_arguments(
        p,
        "'features:' (or FeatureConfig fields at the top level), 'extract:' and 'compute:'",
        "n_mfcc=13 or --set compute.backend=dask",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes: shorthand for --set compute.backend=processes --set "
        "compute.n_workers=N (default: the compute section; local: this process)",
    )
    p.add_argument(
        "--max-failed",
        type=float,
        default=None,
        metavar="FRACTION",
        help="fail the run when more than this fraction of utterances fail (default: "
        f"extract.max_failed_fraction, {ExtractConfig().max_failed_fraction:g})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"utterances per checkpoint (default: extract.batch_size, {ExtractConfig().batch_size})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


FLAGS = {
    "max_failed": "extract.max_failed_fraction",
    "batch_size": "extract.batch_size",
    "jobs": "compute.n_workers",
}


def load_feature_config(src: ConfigSource) -> tuple[FeatureConfig, ExtractConfig, ComputeConfig]:
    """The ``features`` (also accepted at the top level / undotted), ``extract`` and
    ``compute`` sections."""
    return (
        src.section("features", FeatureConfig),
        src.section("extract", ExtractConfig),
        src.section("compute", ComputeConfig),
    )


def run(args: argparse.Namespace) -> int:
    if args.jobs is not None:
        args.overrides = [*args.overrides, "compute.backend=processes"]
    cfg, opts, compute = load_feature_config(config_source(args, FLAGS, bare="features"))
    # completing an existing store is extract's documented resume: the store is checked by
    # extract_to_store, which refuses a file that is not one of its stores
    declare_output(args.output, inputs=[args.datadir, args.audio_root, args.config])
    keep_freed_memory()  # this process only extracts
    data: DataDir | str = args.datadir
    if args.audio_root is not None:
        data = DataDir.read(args.datadir, check_audio=False, audio_root=args.audio_root)
    with contextlib.closing(make_engine(compute)) as engine:
        report = extract_to_store(
            data,
            args.output,
            cfg,
            engine=engine,
            max_failed_fraction=opts.max_failed_fraction,
            batch_size=opts.batch_size,
            progress=not args.no_progress,
        )
    rtf = report.audio_seconds / report.seconds if report.seconds > 0 else float("nan")
    print(
        f"{args.output}: {report.n_extracted} extracted, {report.n_existing} already there, "
        f"{report.n_failed} failed (of {report.n_utterances}); {report.audio_seconds:.1f} s of "
        f"audio in {report.seconds:.1f} s ({rtf:.0f}x real time); log: {report.log}"
    )
    return 0
