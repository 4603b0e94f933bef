"""The ``gmmspeech`` command line.

One entry point with subcommands. Each subcommand lives in its own module under
:mod:`gmmspeech.commands` and provides ``NAME``, ``HELP``, ``EXAMPLE``,
``add_arguments(parser)`` and ``run(args) -> int``; the modules are listed in
``COMMAND_MODULES``. Exit codes: 0 success, 1 data or configuration error (one-line cause on
stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from ._version import __version__
from .errors import GmmSpeechError

COMMAND_MODULES: tuple[str, ...] = (
    "prepare",
    "extract",
    "bench",
    "enroll",
    "score",
    "evaluate",
    "calibrate",
    "classify",
    "train-ubm",
    "run",
    "demo",
)

log = logging.getLogger("gmmspeech")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="gmmspeech",
        description="GMM-UBM speaker modelling: features, UBM, MAP, scoring, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"gmmspeech {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        mod = importlib.import_module(f".commands.{name.replace('-', '_')}", __package__)
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=mod.HELP,
            epilog=f"example:\n  {mod.EXAMPLE}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "--log-level",
            default="INFO",
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
            help="logging verbosity (default: INFO)",
        )
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Show a Python warning as one log line (no source excerpt) in the CLI."""
    log.warning("%s: %s", category.__name__, message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 data/config error, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code) if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    warnings.showwarning = _log_warning  # ConvergenceWarning etc. as one log line
    if args.log_level != "DEBUG":  # Dask's own INFO chatter drowns ours
        for noisy in ("distributed", "tornado"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args._run(args))
    except GmmSpeechError as exc:
        print(f"gmmspeech {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"gmmspeech {args.command}: interrupted", file=sys.stderr)
        return 130


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
