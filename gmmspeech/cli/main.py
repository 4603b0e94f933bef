"""The ``gmmspeech`` command line.

One entry point with subcommands. Each subcommand lives in its own module under
:mod:`gmmspeech.cli` and provides ``EXAMPLE``, ``add_arguments(parser)`` and
``run(args) -> int``; the commands and their one-line help are listed in
:data:`gmmspeech.cli.common.COMMANDS`. The global options (``--log-level``, ``--version``)
go before or after any command. Exit codes: 0 success, 1 data or configuration error
(one-line cause on stderr), 2 usage error, 130 interrupted (SIGINT), 143 terminated
(SIGTERM).

Every command runs inside an output gate (:func:`gmmspeech.storage.gate.open_gate`) that
knows the paths named on its command line: a write over one of them, or over any file the
command did not declare as its output, is refused.

SIGTERM is handled like SIGINT: it raises :class:`Terminated` in the main thread, so
every ``finally`` and every atomic write cleans up, and a rerun resumes. An operating
system error (disk full, permission denied, read-only file system) is one line naming
the path.
"""

from __future__ import annotations

import _thread
import argparse
import errno
import importlib
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

from .._version import __version__
from ..errors import GmmSpeechError
from ..storage.gate import command_line_paths, open_gate
from .common import COMMANDS

log = logging.getLogger("gmmspeech")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``gmmspeech`` command line.

    Parameters
    ----------
    command : str, optional
        The subcommand being run: only its module is imported and only its options are
        added, so a command starts without loading what the other commands need. Without
        it every subcommand is built (for documentation and tests); an unknown name builds
        none, and the parser then lists the commands.
    """
    parser = argparse.ArgumentParser(
        prog="gmmspeech",
        description="GMM-UBM speaker modelling: features, UBM, MAP, scoring, evaluation.",
    )
    add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, help_ in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_,
            description=help_,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if command is not None and name != command:
            continue
        mod = importlib.import_module(f".{name.replace('-', '_')}", __package__)
        p.epilog = f"example:\n  {mod.EXAMPLE}"
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    for below in _parsers_below(parser):
        add_global_options(below, top=False)
    return parser


#: Levels of ``--log-level``.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_global_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """Add the options every command takes, before or after its name: ``--log-level``
    and ``--version``.

    The top-level parser holds the default; a subcommand's parser (and a nested one, as
    ``bench ubm``) sets the value only when the option is given after the command's name
    (``argparse.SUPPRESS``), since a subparser's defaults would otherwise overwrite what was
    given before it. Given both before and after, the later one wins.
    """
    p.add_argument("--version", action="version", version=f"gmmspeech {__version__}")
    p.add_argument(
        "--log-level",
        default="INFO" if top else argparse.SUPPRESS,
        choices=LOG_LEVELS,
        help="logging verbosity (default: INFO); before or after the command",
    )


def _parsers_below(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every subcommand parser under ``parser``, nested ones included (``bench ubm``)."""
    # argparse keeps its subparsers in the private _actions list; no public accessor
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases: once each
                yield child
                yield from _parsers_below(child)


def _command_in(argv: Sequence[str]) -> str:
    """The subcommand named in ``argv`` (its first word that is a command), or ``""``."""
    return next((a for a in argv if a in COMMANDS), "")


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


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only).

    A signal handler's exception is lost when it lands in a weakref callback or a
    ``__del__`` (Python reports it as "ignored" through :func:`sys.unraisablehook`); the
    hook then delivers the signal again, so that it is raised in ordinary code.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave the handler alone
        yield
        return
    previous_hook = sys.unraisablehook

    def redeliver(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, Terminated):
            # from another thread, a moment later: out of the callback that swallowed it
            threading.Timer(0.01, _thread.interrupt_main, (signal.SIGTERM,)).start()
        else:
            previous_hook(unraisable)

    sys.unraisablehook = redeliver
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGTERM, previous)


#: What to do about the operating-system errors a user can fix.
_OS_HINTS = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EACCES: "check the permissions, or write elsewhere",
    errno.EPERM: "check the permissions, or write elsewhere",
    errno.EROFS: "the file system is read-only; write elsewhere",
}


def os_error_line(exc: OSError) -> str:
    """One line for an :class:`OSError`: the path, the system's reason, and the fix."""
    reason = exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]
    text = f"{exc.filename}: {reason}" if exc.filename is not None else reason
    hint = _OS_HINTS.get(exc.errno or 0)
    return f"{text} ({hint})" if hint else text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 data/config error, 2 usage)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_in(argv))
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
    named = command_line_paths(v for k, v in vars(args).items() if not k.startswith("_"))
    try:
        with _sigterm_raises(), open_gate(args.command, named):
            return int(args._run(args))
    except GmmSpeechError as exc:
        print(f"gmmspeech {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gmmspeech {args.command}: error: {os_error_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"gmmspeech {args.command}: interrupted; {_after_stop(args.command)}", file=sys.stderr
        )
        return 130
    except Terminated:
        print(
            f"gmmspeech {args.command}: terminated (SIGTERM); {_after_stop(args.command)}",
            file=sys.stderr,
        )
        return 143


#: The commands that continue where an interrupted run stopped (stages, checkpoints, a
#: partly written feature store); the others start again.
RESUMABLE = frozenset({"extract", "train-ubm", "run", "demo"})


def _after_stop(command: str) -> str:
    if command in RESUMABLE:
        return "rerun to resume"
    return "its output was not written; rerun to start again"


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
