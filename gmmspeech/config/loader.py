"""Reading configs: YAML files, ``${env:NAME}``, ``--set`` overrides, typed sections.

The dataclasses and their rules are in :mod:`gmmspeech.config.sections`; this module turns text into
them. Every error is one line naming where the value came from (``file:line``, the ``--set``
item or the command-line flag), the dotted key, what was expected and what was found.

Public entry points:

* :func:`load_config` - a whole :class:`~gmmspeech.config.sections.ExperimentConfig` from a YAML file;
* :class:`ConfigSource` - some sections of a file (``train-ubm`` uses ``ubm`` and
  ``compute``), with ``--set`` items and command-line flags applied on top;
* :func:`config_from_dict` - one dataclass from plain data (e.g. a dict built in Python);
* :func:`did_you_mean` - the one "did you mean" helper of the package.

YAML is read with PyYAML's safe loader (plain data, no tags). Aliases may not expand to more
than :data:`MAX_YAML_NODES` nodes, so that a small hostile file (a "billion laughs") fails at
once instead of exhausting memory.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml

from ..errors import ConfigError, short_repr
from .sections import ExperimentConfig, task_default, to_dict
from .sections import config_hash as _config_hash
from .yaml12 import Yaml12Loader, safe_load12

_T = TypeVar("_T")

#: Most YAML nodes a config may hold once its aliases are expanded.
MAX_YAML_NODES = 100_000

#: ``${env:NAME}`` or ``${env:NAME,default}`` inside a YAML string.
ENV_PATTERN = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?:,([^}]*))?\}")

SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ExperimentConfig))


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


# ------------------------------------------------------------------------------ YAML
def _count_nodes(node: yaml.Node, where: str) -> None:
    """Fail when ``node`` expands (aliases followed) to more than :data:`MAX_YAML_NODES`."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(
                f"{where}:{n.start_mark.line + 1}: a YAML alias refers to the node that holds "
                f"it (a recursive structure); write the values out"
            )
        active.add(key)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(child) for child in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        active.discard(key)
        if total > MAX_YAML_NODES:
            raise ConfigError(
                f"{where}:{n.start_mark.line + 1}: YAML aliases expand to more than "
                f"{MAX_YAML_NODES} values; a config needs far fewer (is this file hostile?)"
            )
        sizes[key] = total
        return total

    size(node)


def _collect_marks(node: yaml.Node, prefix: str, where: str, marks: dict[str, str]) -> None:
    """Record ``file:line`` of every key (dotted; list items ``key[i]``); reject duplicates."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            dotted = f"{prefix.rstrip('.')}[{i}]"
            marks[dotted] = f"{where}:{item.start_mark.line + 1}"
            _collect_marks(item, dotted + ".", where, marks)
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        line = key_node.start_mark.line + 1
        dotted = f"{prefix}{key}"
        if key in seen:
            raise ConfigError(
                f"{where}:{line}: duplicate key {short_repr(dotted)} (first at line "
                f"{seen[key]}); keep only one"
            )
        seen[key] = line
        marks[dotted] = f"{where}:{line}"
        _collect_marks(value_node, dotted + ".", where, marks)


def _parse_yaml(text: str, where: str) -> tuple[object, yaml.Node | None]:
    loader = Yaml12Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _count_nodes(node, where)
        return loader.construct_document(node), node
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"{where}{line}: not valid YAML ({short_repr(problem, 200)}); configs are plain "
            f"YAML mappings (no !tags)"
        ) from None
    except RecursionError:
        # PyYAML's parser recurses once per nesting level
        raise ConfigError(
            f"{where}: not valid YAML (lists or mappings nested too deeply); configs are "
            f"plain YAML mappings a few levels deep"
        ) from None
    finally:
        loader.dispose()


def _env_value(text: str, where: str, key: str) -> str:
    def replace(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = os.environ.get(name)
        if value is not None:
            return value
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: {key}: environment variable {name} is not set; set it, or give a "
            f"default: ${{env:{name},VALUE}}"
        )

    return ENV_PATTERN.sub(replace, text)


def _expand_env(
    value: object, key: str, marks: dict[str, str], where: str, raw: dict[str, str]
) -> object:
    """``value`` with ``${env:...}`` replaced in every string (a copy where needed).

    A string that is one reference as a whole is read as YAML after the replacement (so that
    ``n_components: ${env:K}`` gives an integer); its text is kept in ``raw`` for string
    options.
    """
    if isinstance(value, dict):
        return {
            k: _expand_env(v, f"{key}.{k}" if key else str(k), marks, where, raw)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand_env(v, f"{key}[{i}]", marks, where, raw) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${env:" not in value:
        return value
    at = marks.get(key, marks.get(key.split("[")[0], where))
    text = _env_value(value, at, key)
    if ENV_PATTERN.fullmatch(value.strip()):
        raw[key] = text
        try:
            parsed = safe_load12(text) if text.strip() else ""
        except (yaml.YAMLError, RecursionError):
            return text
        return parsed if isinstance(parsed, (str, int, float, bool, type(None))) else text
    return text


def read_yaml(
    path: str | os.PathLike[str], raw: dict[str, str] | None = None
) -> tuple[dict[str, object], dict[str, str]]:
    """Read a YAML config file with PyYAML's safe loader, ``${env:NAME}`` expanded.

    Parameters
    ----------
    path : path-like
    raw : dict, optional
        Filled with the text of values that were one ``${env:...}`` reference (dotted key ->
        text), so that string options keep it as written.

    Returns
    -------
    values : dict
        The top-level mapping (empty for an empty file).
    marks : dict of str to str
        Dotted key -> ``"file:line"`` of the key, for error messages.

    Raises
    ------
    ConfigError
        Unreadable file, invalid YAML (with its line), duplicate keys, aliases that expand
        beyond :data:`MAX_YAML_NODES`, an unset environment variable without a default, or a
        top level that is not a mapping.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the config ({exc})") from None
    values, node = _parse_yaml(text, str(p))
    if node is None or values is None:
        return {}, {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"{p}:1: expected a mapping of config sections (e.g. 'ubm: {{n_components: 512}}'), "
            f"got {type(values).__name__}"
        )
    marks: dict[str, str] = {}
    _collect_marks(node, "", str(p), marks)
    expanded = _expand_env(values, "", marks, str(p), raw if raw is not None else {})
    assert isinstance(expanded, dict)
    return expanded, marks


def dump_yaml(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML text (every field, defaults included), with its hash."""
    data = to_dict(cfg)
    head = f"# resolved gmmspeech config; config_hash: {_config_hash(data)}\n"
    return head + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


# ------------------------------------------------------------------------- overrides
def _cut(text: str, limit: int = 200) -> str:
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
            f"--set {_cut(item)}: expected KEY=VALUE with a dotted key, e.g. "
            f"--set ubm.n_components=256"
        )
    value: object
    try:
        value = safe_load12(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):
        value = raw  # not YAML (e.g. a pattern like {spk}-{idx}): the text itself
    return key, value


def _set_value(
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
        _set_value(out, key, value, f"--set {_cut(item)}", marks)
        if raw is not None:
            raw[key] = item.partition("=")[2]
    return out


# --------------------------------------------------------------------- typed building
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
        return _coerce(others[0], value, key, where, ctx)
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


# ------------------------------------------------------------------------ experiments
def _absolute(value: object, key: str, marks: dict[str, str], config_dir: Path) -> object:
    """A path option made absolute: relative to the config file's folder, or to the current
    directory when it comes from the command line (``--set``)."""
    if not isinstance(value, str) or not value:
        return value
    p = Path(value).expanduser()
    if not p.is_absolute():
        from_cli = marks.get(key, marks.get(key.split("[")[0], "")).startswith("-")
        p = (Path.cwd() if from_cli else config_dir) / p
    return str(p.resolve())


def _resolve_paths(values: dict[str, object], marks: dict[str, str], config_dir: Path) -> None:
    """Make the paths of ``data`` and ``fusion`` absolute (:func:`_absolute`)."""
    data = values.get("data")
    for key in ("root", "trials", "enroll_list"):
        if isinstance(data, dict) and key in data:
            data[key] = _absolute(data[key], f"data.{key}", marks, config_dir)
    fusion = values.get("fusion")
    if isinstance(fusion, dict) and "trials" in fusion:
        fusion["trials"] = _absolute(fusion["trials"], "fusion.trials", marks, config_dir)
    systems = fusion.get("systems") if isinstance(fusion, dict) else None
    for i, system in enumerate(systems if isinstance(systems, list) else []):
        for key in ("experiment", "scores", "calibration_trials", "calibration_scores"):
            if isinstance(system, dict) and key in system:
                dotted = f"fusion.systems[{i}].{key}"
                system[key] = _absolute(system[key], dotted, marks, config_dir)


def load_config(
    path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """Read an experiment YAML file, apply ``--set`` overrides and validate everything.

    Parameters
    ----------
    path : path-like or None
        The YAML file (PyYAML's safe loader; ``${env:NAME}`` and ``${env:NAME,default}`` in
        strings are replaced by environment variables); None starts from the defaults.
    overrides : sequence of str
        ``"section.key=value"`` items; values are YAML (``256``, ``[1, 2]``, ``null``) and
        are type-checked like the file's.

    Returns
    -------
    ExperimentConfig
        With ``data.root`` and ``data.trials`` made absolute.

    Raises
    ------
    ConfigError
        Naming ``file:line`` (or the ``--set`` item), the dotted key, what was expected and
        what was found.

    Examples
    --------
    >>> cfg = load_config(None, ["task=classification", "data.dataset.pattern={label}/{f}.wav"])
    >>> cfg.ubm.n_components, cfg.data.dataset.pattern
    (512, '{label}/{f}.wav')
    """
    raw: dict[str, str] = {}
    if path is None:
        values: dict[str, object] = {}
        marks: dict[str, str] = {}
        where, config_dir = "config", Path.cwd()
    else:
        values, marks = read_yaml(path, raw)
        where, config_dir = str(path), Path(path).resolve().parent
    values = apply_overrides(values, overrides, marks, raw)
    _resolve_paths(values, marks, config_dir)
    values = task_default(values, values.get("task", ExperimentConfig.task))
    return config_from_dict(ExperimentConfig, values, where=where, marks=marks, raw=raw)


# ---------------------------------------------------------------------------- commands
class ConfigSource:
    """The config sections a command uses: a YAML file, ``--set`` items and flags.

    Parameters
    ----------
    path : path-like or None
        A YAML file (an experiment config works as it is; sections the command does not
        use are checked for unknown names only). None starts from the defaults.
    overrides : sequence of str
        ``section.key=value`` items, applied after the file.
    flags : mapping of str to (str, object), optional
        Dotted key -> (flag as typed, value) of command-line flags that mirror a config
        field, applied last (e.g. ``{"enroll.adapt": ("--adapt", "mw")}``).
    bare : str, optional
        A section whose keys may also be given at the top level of the file (when it has no
        section names) and in undotted ``--set key=value`` items.

    Examples
    --------
    >>> from gmmspeech.config.sections import EnrollConfig
    >>> src = ConfigSource(None, ["enroll.relevance_factor=8"], {"enroll.adapt": ("--adapt", "mw")})
    >>> src.section("enroll", EnrollConfig)
    EnrollConfig(relevance_factor=8.0, adapt='mw')
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        overrides: Sequence[str] = (),
        flags: Mapping[str, tuple[str, object]] | None = None,
        *,
        bare: str | None = None,
    ) -> None:
        self.raw: dict[str, str] = {}
        values: dict[str, object] = {}
        marks: dict[str, str] = {}
        self.where = "config"
        if path is not None:
            values, marks = read_yaml(path, self.raw)
            self.where = str(path)
        if bare is not None:
            if values and not any(k in SECTIONS for k in values):
                values = {bare: values}
                marks = {f"{bare}.{k}": v for k, v in marks.items()}
                self.raw = {f"{bare}.{k}": v for k, v in self.raw.items()}
            overrides = [o if "." in o.partition("=")[0] else f"{bare}.{o}" for o in overrides]
        values = apply_overrides(values, overrides, marks, self.raw)
        for key, (flag, value) in (flags or {}).items():
            _set_value(values, key, value, f"{flag} {_cut(str(value))}", marks)
        for key in values:
            if key not in SECTIONS:
                hint = did_you_mean(key, SECTIONS, otherwise=f"sections are {list(SECTIONS)}")
                raise ConfigError(
                    f"{marks.get(str(key), self.where)}: unknown section {short_repr(key)}; {hint}"
                )
        self.values = values
        self.marks = marks

    def section(self, name: str, cls: type[_T], *, task: str | None = None) -> _T:
        """Section ``name`` built as ``cls``, typed and validated (with the defaults of
        ``task`` where they differ, :data:`~gmmspeech.config.sections.TASK_DEFAULTS`)."""
        section = task_default(self.values, task).get(name) or {}
        if not isinstance(section, dict):
            raise ConfigError(
                f"{self.marks.get(name, self.where)}: {name}: expected a mapping of options, "
                f"got {short_repr(section)}"
            )
        return config_from_dict(
            cls, section, where=self.where, marks=self.marks, raw=self.raw, prefix=f"{name}."
        )


__all__ = [
    "MAX_YAML_NODES",
    "ConfigSource",
    "apply_overrides",
    "config_from_dict",
    "did_you_mean",
    "dump_yaml",
    "load_config",
    "parse_override",
    "read_yaml",
]
