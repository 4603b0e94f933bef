"""``gmmspeech extract``: features of every utterance of a data dir into an HDF5 store."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging

from ..config import ComputeConfig, ExtractConfig, FeatureConfig, load_sections
from ..engine import make_engine

NAME = "extract"
HELP = "extract MFCC features of a data dir into an HDF5 feature store (resumable)"
EXAMPLE = "gmmspeech extract data/train feats/train.h5 --config features.yaml --jobs 2"

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("datadir", metavar="DATADIR", help="Kaldi-style data dir (wav.scp, utt2spk)")
    p.add_argument("output", metavar="OUT.h5", help="feature store to create or complete")
    p.add_argument(
        "--config",
        metavar="YAML",
        default=None,
        help="feature options: a YAML mapping of FeatureConfig fields, at the top level or "
        "under a 'features:' key (an experiment config works too; its 'compute:' section "
        "chooses the workers) (default: FeatureConfig defaults)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one option, e.g. --set n_mfcc=13 or --set compute.backend=dask "
        "(repeatable; YAML values, type-checked)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="shorthand for --set compute.backend=processes --set compute.n_workers=N "
        "(default: the config's compute section; local: this process)",
    )
    p.add_argument(
        "--max-failed",
        type=float,
        default=None,
        metavar="FRACTION",
        help="fail the run when more than this fraction of utterances fail (default: the "
        f"config's extract.max_failed_fraction, {ExtractConfig().max_failed_fraction:g})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="utterances per checkpoint (default: the config's extract.batch_size, "
        f"{ExtractConfig().batch_size})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_feature_config(
    path: str | None, overrides: list[str]
) -> tuple[FeatureConfig, ExtractConfig, ComputeConfig]:
    """The ``features`` (also accepted at the top level / undotted), ``extract`` and
    ``compute`` sections."""
    got = load_sections(
        path,
        overrides,
        {"features": FeatureConfig, "extract": ExtractConfig, "compute": ComputeConfig},
        bare="features",
    )
    return got["features"], got["extract"], got["compute"]


def run(args: argparse.Namespace) -> int:
    # imported here: the CLI builds its parser without loading librosa (extraction does)
    from ..extraction import extract_to_store
    from ..extraction_worker import keep_freed_memory

    cfg, opts, compute = load_feature_config(args.config, args.overrides)
    if args.jobs is not None:
        compute = dataclasses.replace(compute, backend="processes", n_workers=args.jobs)
    keep_freed_memory()  # this process only extracts
    with contextlib.closing(make_engine(compute)) as engine:
        report = extract_to_store(
            args.datadir,
            args.output,
            cfg,
            engine=engine,
            max_failed_fraction=(
                opts.max_failed_fraction if args.max_failed is None else args.max_failed
            ),
            batch_size=opts.batch_size if args.batch_size is None else args.batch_size,
            progress=not args.no_progress,
        )
    rtf = report.audio_seconds / report.seconds if report.seconds > 0 else float("nan")
    print(
        f"{args.output}: {report.n_extracted} extracted, {report.n_existing} already there, "
        f"{report.n_failed} failed (of {report.n_utterances}); {report.audio_seconds:.1f} s of "
        f"audio in {report.seconds:.1f} s ({rtf:.0f}x real time); log: {report.log}"
    )
    return 0
