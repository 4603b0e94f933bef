"""The subcommands of the ``gmmspeech`` command line, and the options they share.

Each command reads the config sections it uses from ``--config`` and ``--set``
(:func:`add_config_arguments`, :func:`config_source`); a flag that mirrors a config field
defaults to None and, when given, overrides that field, so the defaults live in
:mod:`gmmspeech.config.sections` only.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from ..benchmarks import BENCHMARKS
from ..config.loader import ConfigSource
from ..config.overrides import add_set_argument
from ..config.sections import EnrollConfig
from ..storage.atomic import OVERWRITE_FLAG

#: Subcommand name -> one-line help, in the order ``gmmspeech --help`` lists them. The CLI
#: imports only the module of the command being run (``commands/<name>.py``, with
#: ``EXAMPLE``, ``add_arguments`` and ``run``), so a command starts without the others'
#: imports.
COMMANDS: dict[str, str] = {
    "prepare": "build a data dir (wav.scp, utt2spk, spk2utt, utt2label, trials) from a folder of audio",
    "extract": "extract MFCC features of a data dir into an HDF5 feature store (resumable)",
    "bench": "run a speed/memory benchmark (" + ", ".join(BENCHMARKS) + ")",
    "enroll": "MAP-adapt one model per speaker (all of its utterances) into one models file",
    "score": "score trials '<model> <test> [target|nontarget]' as frame-averaged LLRs",
    "evaluate": "verification metrics (EER by ROC convex hull, minDCF, actDCF, Cllr) of a scores file",
    "calibrate": "train a logistic-regression score calibration on labelled scores and/or apply it",
    "fuse": "fuse several systems' scores of the same trials into LLRs (logistic regression)",
    "classify": "closed-set classification with one GMM per label (utt2label): accuracy, confusions",
    "train-ubm": "train a UBM (binary splitting + EM) on the frames of feature stores",
    "train-tv": "train a total-variability (i-vector) model on a UBM's statistics of a feature store",
    "extract-ivectors": "extract the i-vectors of a feature store with a total-variability model",
    "train-backend": "train the i-vector back end (LDA, WCCN, length norm, PLDA or cosine)",
    "score-ivectors": "score trials with an i-vector back end (PLDA LLRs or cosine similarity)",
    "run": (
        "run an experiment from a YAML config: prepare, extract, train UBM, enrol, score, "
        "normalise, calibrate, evaluate, report (stages already done for the same config are "
        "skipped)"
    ),
    "demo": (
        "speaker verification on 84 bundled LibriSpeech recordings (no download): UBM, MAP "
        "enrolment, top-5 scoring, EER/minDCF, DET plot and report under ./gmmspeech_demo"
    ),
}


def add_config_arguments(p: argparse.ArgumentParser, sections: str, example: str) -> None:
    """Add ``--config YAML`` and ``--set KEY=VALUE`` (dest ``overrides``) to a command.

    Parameters
    ----------
    p : argparse.ArgumentParser
    sections : str
        The sections the command reads, for the help text (e.g. ``"'ubm:' and 'compute:'"``).
    example : str
        An example ``--set`` item.
    """
    p.add_argument(
        "--config",
        metavar="YAML",
        default=None,
        help=f"a config with {sections} sections, e.g. an experiment config (default: the "
        f"defaults of gmmspeech.config.sections)",
    )
    add_set_argument(p, example, "; a flag that mirrors a config value overrides both")


def config_source(
    args: argparse.Namespace, flags: Mapping[str, str] | None = None, *, bare: str | None = None
) -> ConfigSource:
    """The config of a command: ``--config``, then ``--set``, then the mirroring flags.

    Parameters
    ----------
    args : argparse.Namespace
        With ``config`` and ``overrides`` (:func:`add_config_arguments`).
    flags : mapping of str to str, optional
        Argument dest -> dotted config key, e.g. ``{"adapt": "enroll.adapt"}``; a flag left
        at None is not applied.
    bare : str, optional
        See :class:`gmmspeech.config.loader.ConfigSource`.
    """
    given: dict[str, tuple[str, object]] = {}
    for dest, key in (flags or {}).items():
        value = getattr(args, dest)
        if value is not None:
            given[key] = ("--" + dest.replace("_", "-"), value)
    return ConfigSource(args.config, args.overrides, given, bare=bare)


def add_map_arguments(
    p: argparse.ArgumentParser, *, adapt_default: str | None = None, whose: str = ""
) -> None:
    """Add ``--relevance-factor`` and (unless ``adapt_default`` is ``""``) ``--adapt``, which
    mirror ``enroll.relevance_factor`` and ``enroll.adapt`` (dests ``relevance_factor``,
    ``adapt``; both default to None so that the config decides).

    Parameters
    ----------
    p : argparse.ArgumentParser
    adapt_default : str, optional
        The default ``--adapt`` shown in the help; None shows ``EnrollConfig().adapt``, and
        ``""`` leaves ``--adapt`` out.
    whose : str
        Whose MAP r this is, for the help text (e.g. ``"of the cohort models"``).
    """
    p.add_argument(
        "--relevance-factor",
        type=float,
        default=None,
        help=f"MAP r{' ' + whose if whose else ''} (default: enroll.relevance_factor, "
        f"{EnrollConfig().relevance_factor:g})",
    )
    if adapt_default == "":
        return
    p.add_argument(
        "--adapt",
        default=None,
        help=f"parameters to adapt: m, w, v combined (default: enroll.adapt, "
        f"{EnrollConfig().adapt if adapt_default is None else adapt_default})",
    )


def add_overwrite_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--overwrite``: replace an earlier output of the same kind (never an input, never
    a file of another kind; see :func:`gmmspeech.storage.atomic.check_output`)."""
    p.add_argument(
        OVERWRITE_FLAG,
        action="store_true",
        help="replace an existing output written earlier by gmmspeech (the same kind of "
        "file); without it an existing output is an error. Inputs and other files are "
        "never replaced",
    )


__all__ = [
    "COMMANDS",
    "add_config_arguments",
    "add_map_arguments",
    "add_overwrite_argument",
    "config_source",
]
