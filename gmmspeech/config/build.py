"""Typed config sections from plain data: every key checked, every value type-checked.

Errors name ``file:line`` (or the ``--set`` item), the dotted key, what was expected and
what was found; unknown keys get the package's one "did you mean" suggestion.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ..errors import ConfigError, short_repr

_T = TypeVar("_T")


def did_you_mean(
    word: object, choices: Iterable[str], *, prefix: str = "", otherwise: str = ""
) -> str:
    """``"did you mean 'x'?"`` for the choice closest to ``word``, else ``otherwise``.

    Parameters
    ----------
    word : object
        What the user wrote.
    choices : iterable of str
        The valid names.
    prefix : str
        Prepended to the suggestion (e.g. ``"ubm."`` for a dotted key).
    otherwise : str
        Returned when no choice is close (e.g. a list of the valid names).
    """
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"did you mean {prefix + close[0]!r}?" if close else otherwise


@dataclass
class _BuildContext:
    marks: dict[str, str]
    default_where: str
    raw: dict[str, str] = dataclasses.field(default_factory=dict)
    optional: set[str] = dataclasses.field(default_factory=set)


_TYPE_NAMES: dict[object, str] = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
}


def _scalar_ok(tp: object, value: object) -> bool | None:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return None  # pragma: no cover - every config field has one of the types above


def _coerce(tp: object, value: object, key: str, where: str, ctx: _BuildContext) -> object:
    """Check ``value`` against the annotation ``tp`` (YAML types); build nested sections."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:
            return _coerce(others[0], value, key, where, ctx)
        # int | str (backend.lda_dim: 100 or auto): the first alternative the value is
        for alt in others[:-1]:
            if _scalar_ok(alt, value):
                return value
        try:
            return _coerce(others[-1], value, key, where, ctx)
        except ConfigError:
            names = " or ".join(_TYPE_NAMES.get(a, str(a)) for a in others)
            none_ok = " or null" if type(None) in args else ""
            raise ConfigError(
                f"{where}: {key}: expected {names}{none_ok}, got {short_repr(value)} "
                f"({type(value).__name__})"
            ) from None
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"{where}: {key}: expected a list (e.g. [1, 2]), got {short_repr(value)}; "
                f"write it as a YAML list"
            )
        item_tp = typing.get_args(tp)[0]
        return tuple(_coerce(item_tp, v, f"{key}[{i}]", where, ctx) for i, v in enumerate(value))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(
                f"{where}: {key}: expected a mapping of {tp.__name__} options, got "
                f"{short_repr(value)}"
            )
        return _build(tp, value, key + ".", ctx)
    if tp is str and not isinstance(value, str) and key in ctx.raw:
        return ctx.raw[key]  # --set name=2024: the text as typed
    ok = _scalar_ok(tp, value)
    if ok is False:
        none_ok = " or null" if key in ctx.optional else ""
        hint = ""
        if tp is str and isinstance(value, (int, float)):
            hint = "; quote it in YAML (e.g. '01', 'yes') to keep it as text"
        raise ConfigError(
            f"{where}: {key}: expected {_TYPE_NAMES.get(tp, str(tp))}{none_ok}, got "
            f"{short_repr(value)} ({type(value).__name__}){hint}"
        )
    return value  # the dataclass gives numbers one type (config._normalise)


def _build(cls: type[_T], values: dict[str, object], prefix: str, ctx: _BuildContext) -> _T:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    section_where = ctx.marks.get(prefix.rstrip("."), ctx.default_where)
    kwargs: dict[str, object] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        where = ctx.marks.get(dotted, section_where)
        if not isinstance(key, str) or key not in names:
            hint = did_you_mean(
                key, names, prefix=prefix, otherwise=f"known keys here: {', '.join(names)}"
            )
            raise ConfigError(f"{where}: unknown key {short_repr(dotted)}; {hint}")
        tp = hints[key]
        if type(None) in typing.get_args(tp):
            ctx.optional.add(dotted)
        kwargs[key] = _coerce(tp, value, dotted, where, ctx)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        msg = str(exc)
        field = msg.split(":", 1)[0]
        if field in names or prefix + field in ctx.marks:
            where = ctx.marks.get(prefix + field, section_where)
            raise ConfigError(f"{where}: {prefix}{msg}") from None
        raise ConfigError(f"{section_where}: {msg}") from None


def config_from_dict(
    cls: type[_T],
    values: Mapping[str, object],
    *,
    where: str = "config",
    marks: Mapping[str, str] | None = None,
    raw: Mapping[str, str] | None = None,
    prefix: str = "",
) -> _T:
    """Build a config dataclass (nested sections included) from plain YAML data.

    Every key is checked (unknown keys get a "did you mean" suggestion), every value is
    type-checked against the field's annotation, and the dataclass's own validation runs;
    errors name ``file:line`` (from ``marks``, keyed by dotted key) and the dotted key
    (``prefix`` + key, e.g. ``prefix="ubm."`` for the ``ubm`` section of a file).
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    ctx = _BuildContext(marks=dict(marks or {}), default_where=where, raw=dict(raw or {}))
    return _build(cls, dict(values), prefix, ctx)
