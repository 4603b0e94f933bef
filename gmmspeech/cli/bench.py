"""``gmmspeech bench``: speed and memory benchmarks."""

from __future__ import annotations

import argparse
import importlib

from ..benchmarks import BENCHMARKS
from ..storage.outputs import BENCH_JSON, check_output
from .common import add_overwrite_argument

EXAMPLE = "gmmspeech bench em --n 200000 --d 60 --k 1024 --vs sklearn"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    sub.required = True
    for name in BENCHMARKS:
        mod = importlib.import_module(f"..benchmarks.{name}", __package__)
        bp = sub.add_parser(
            name,
            help=mod.HELP,
            description=mod.HELP,
            epilog=f"example:\n  {mod.EXAMPLE}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(bp)
        add_overwrite_argument(bp)
        bp.set_defaults(_bench=mod.run)


def run(args: argparse.Namespace) -> int:
    check_output(getattr(args, "json", None), BENCH_JSON, overwrite=args.overwrite)
    return int(args._bench(args))
