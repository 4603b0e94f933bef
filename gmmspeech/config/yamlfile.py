"""Config files as plain data: YAML read safely, aliases bounded, ``${env:NAME}`` expanded.

Every key's ``file:line`` is kept for error messages. Aliases may not expand to more than
:data:`MAX_YAML_NODES` nodes, so that a small hostile file fails at once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from ..errors import ConfigError, short_repr
from .base import config_hash, to_dict
from .sections import ExperimentConfig
from .yaml12 import Yaml12Loader, safe_load12

#: Most YAML nodes a config may hold once its aliases are expanded.
MAX_YAML_NODES = 100_000

#: ``${env:NAME}`` or ``${env:NAME,default}`` inside a YAML string.
ENV_PATTERN = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?:,([^}]*))?\}")


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
    raw = raw if raw is not None else {}
    expanded = {k: _expand_env(v, str(k), marks, str(p), raw) for k, v in values.items()}
    return expanded, marks


def dump_yaml(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML text (every field, defaults included), with its hash."""
    data = to_dict(cfg)
    head = f"# resolved gmmspeech config; config_hash: {config_hash(data)}\n"
    return head + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
