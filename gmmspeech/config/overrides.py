"""``--set key=value`` items and command-line flags applied to a config's plain data."""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence

import yaml

from ..errors import ConfigError, short_repr
from .yaml12 import safe_load12


def cut(text: str, limit: int = 200) -> str:
    """``text`` as typed, cut to ``limit`` characters (command-line items in messages)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_override(item: str) -> tuple[str, object]:
    """Split ``"ubm.n_components=256"`` into the dotted key and its YAML value.

    A value that is not valid YAML is kept as its text (string options such as patterns);
    the type check of the option then decides whether that is acceptable.
    """
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"--set {cut(item)}: expected KEY=VALUE with a dotted key, e.g. "
            f"--set ubm.n_components=256"
        )
    value: object
    try:
        value = safe_load12(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):
        value = raw  # not YAML (e.g. a pattern like {spk}-{idx}): the text itself
    return key, value


def set_value(
    values: dict[str, object], key: str, value: object, label: str, marks: dict[str, str]
) -> None:
    """``values[a][b][c] = value`` for ``key = "a.b.c"``, creating sections as needed."""
    parts = key.split(".")
    node = values
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            if child is not None:
                raise ConfigError(
                    f"{label}: {'.'.join(parts[: i + 1])} is not a section (it holds "
                    f"{short_repr(child)})"
                )
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value
    for i in range(1, len(parts) + 1):
        marks[".".join(parts[:i])] = label


def apply_overrides(
    values: dict[str, object],
    overrides: Sequence[str],
    marks: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
) -> dict[str, object]:
    """Apply ``--set key=value`` overrides to a nested dict (a deep copy is returned)."""
    out = copy.deepcopy(values)
    marks = marks if marks is not None else {}
    for item in overrides:
        key, value = parse_override(item)
        set_value(out, key, value, f"--set {cut(item)}", marks)
        if raw is not None:
            raw[key] = item.partition("=")[2]
    return out


def add_set_argument(p: argparse.ArgumentParser, example: str, more: str = "") -> None:
    """``--set KEY=VALUE`` (repeatable), the one way to override a config value."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override one config value, e.g. --set {example} (repeatable; the value is YAML "
        f"and type-checked){more}",
    )
