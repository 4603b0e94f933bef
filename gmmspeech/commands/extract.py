"""``gmmspeech extract``: features of every utterance of a data dir into an HDF5 store."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
from pathlib import Path
from typing import Any

from ..config import FeatureConfig
from ..errors import ConfigError
from ..featstore import DEFAULT_BATCH_SIZE, DEFAULT_MAX_FAILED_FRACTION, extract_to_store

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
        "under a 'features:' key (default: FeatureConfig defaults)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one feature option, e.g. --set n_mfcc=13 (repeatable; YAML values)",
    )
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--max-failed",
        type=float,
        default=DEFAULT_MAX_FAILED_FRACTION,
        metavar="FRACTION",
        help="fail the run when more than this fraction of utterances fail "
        f"(default {DEFAULT_MAX_FAILED_FRACTION:g})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"utterances per checkpoint (default {DEFAULT_BATCH_SIZE})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def feature_config_from_mapping(values: Any, where: str) -> FeatureConfig:
    """A FeatureConfig from a mapping, rejecting unknown keys with a suggestion."""
    if values is None:
        return FeatureConfig()
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of feature options, got {values!r}")
    names = [f.name for f in dataclasses.fields(FeatureConfig)]
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {names}"
            raise ConfigError(f"{where}: unknown feature option {key!r}{hint}")
    return FeatureConfig(**values)


def load_feature_config(path: str | None, overrides: list[str]) -> FeatureConfig:
    """Read ``--config`` (YAML, ``yaml.safe_load``) and apply ``--set key=value`` overrides."""
    import yaml

    values: dict[str, Any] = {}
    where = "--config"
    if path is not None:
        p = Path(path)
        where = str(p)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read the config ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc})") from None
        if loaded is not None:
            if not isinstance(loaded, dict):
                raise ConfigError(f"{p}: expected a mapping of feature options")
            section = loaded.get("features", loaded)
            if not isinstance(section, dict):
                raise ConfigError(f"{p}: 'features' must be a mapping of feature options")
            values = dict(section)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        key = key.strip().removeprefix("features.")
        try:
            values[key] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item}: the value is not valid YAML ({exc})") from None
    return feature_config_from_mapping(values, where)


def run(args: argparse.Namespace) -> int:
    cfg = load_feature_config(args.config, args.overrides)
    report = extract_to_store(
        args.datadir,
        args.output,
        cfg,
        jobs=args.jobs,
        max_failed_fraction=args.max_failed,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    rtf = report.audio_seconds / report.seconds if report.seconds > 0 else float("nan")
    print(
        f"{args.output}: {report.n_extracted} extracted, {report.n_existing} already there, "
        f"{report.n_failed} failed (of {report.n_utterances}); {report.audio_seconds:.1f} s of "
        f"audio in {report.seconds:.1f} s ({rtf:.0f}x real time); log: {report.log}"
    )
    return 0
