"""What the config dataclasses (:mod:`gmmspeech.config.sections`) share: their JSON form and hash,
and their checks.

Each dataclass's ``__post_init__`` calls :func:`normalise` and then states its rules with
:func:`check`, :func:`check_min`, :func:`check_in` and :func:`check_choice`; a failed rule is a
:class:`~gmmspeech.errors.ConfigError` ``"<field>: must be <rule>, got <value>"`` (the YAML
layer prefixes ``file:line`` and the section).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import numbers
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import ConfigError, short_repr

if TYPE_CHECKING:  # pragma: no cover
    from _typeshed import DataclassInstance


def to_dict(cfg: DataclassInstance) -> dict[str, object]:
    """A JSON-compatible dict of a config dataclass (tuples become lists)."""
    data: dict[str, object] = json.loads(json.dumps(dataclasses.asdict(cfg)))
    return data


def config_hash(cfg: DataclassInstance | Mapping[str, object]) -> str:
    """A stable 16-hex-digit hash of a config dataclass or JSON-compatible dict."""
    data = cfg if isinstance(cfg, Mapping) else to_dict(cfg)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@functools.cache
def _field_kinds(cls: type) -> dict[str, type]:
    """Field name -> ``float``, ``int`` or ``tuple`` for the fields :func:`normalise` converts."""
    kinds: dict[str, type] = {}
    for name, tp in typing.get_type_hints(cls).items():
        args = typing.get_args(tp)
        if typing.get_origin(tp) is tuple:
            kinds[name] = tuple
        elif tp in (float, int) or (
            len(args) == 2 and type(None) in args and args[0] in (float, int)
        ):
            kinds[name] = tp if tp in (float, int) else args[0]
    return kinds


def normalise(obj: DataclassInstance) -> None:
    """Give numbers and sequences one type, so that ``25`` and ``25.0`` (or a list and a
    tuple) make equal configs with one hash: ints in float fields become floats, integral
    floats in int fields ints, sequences tuples. Anything else is left to the checks."""
    for name, kind in _field_kinds(type(obj)).items():
        value = getattr(obj, name)
        if isinstance(value, bool) or value is None:
            continue
        if kind is float and isinstance(value, int):
            object.__setattr__(obj, name, float(value))
        elif kind is int and isinstance(value, float) and value.is_integer():
            object.__setattr__(obj, name, int(value))
        elif kind is tuple and isinstance(value, list):
            object.__setattr__(obj, name, tuple(value))


def check(cond: bool, name: str, rule: str, value: object) -> None:
    if not cond:
        raise ConfigError(f"{name}: must be {rule}, got {short_repr(value)}")


def check_min(obj: object, name: str, low: float, *, optional: bool = False) -> None:
    """``obj.name >= low`` (or None when ``optional``)."""
    value = getattr(obj, name)
    ok = (optional and value is None) or (value is not None and value >= low)
    check(ok, name, f"None or >= {low:g}" if optional else f">= {low:g}", value)


def check_in(obj: object, name: str, interval: str, *, optional: bool = False) -> None:
    """``obj.name`` in ``interval``, written like ``"(0, 5]"`` (or None when ``optional``)."""
    value = getattr(obj, name)
    lo, hi = (float(x) for x in interval[1:-1].split(","))
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = (lo < value if interval[0] == "(" else lo <= value) and (
            value < hi if interval[-1] == ")" else value <= hi
        )
    ok = ok or (optional and value is None)
    check(ok, name, f"None or in {interval}" if optional else f"in {interval}", value)


def check_choice(obj: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    check(value in choices, name, f"one of {choices}", value)


__all__ = [
    "check",
    "check_choice",
    "check_in",
    "check_min",
    "config_hash",
    "normalise",
    "to_dict",
]
