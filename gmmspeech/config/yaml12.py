"""YAML with the numbers of YAML 1.2: ``1e-4`` is a float, ``010`` is ten.

PyYAML resolves plain scalars by the YAML 1.1 rules, under which ``1e-4`` (no dot) is a
string, ``010`` an octal 8 and ``1:30`` the sexagesimal 90. Configs follow the YAML 1.2 core
schema for integers and floats instead; booleans, nulls and everything else are PyYAML's
safe schema. Safe loading only (no tags that build objects).
"""

from __future__ import annotations

import math
import re

import yaml

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"

#: The YAML 1.2 core schema's integers and floats.
INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
FLOAT_12 = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema integers and floats."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(_INT, INT_12, list("-+0123456789"))
Yaml12Loader.add_implicit_resolver(_FLOAT, FLOAT_12, list("-+0123456789."))


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = str(loader.construct_scalar(node)).lower()  # type: ignore[arg-type]
    if text.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if text == ".nan":
        return math.nan
    return float(text)


Yaml12Loader.add_constructor(_INT, _construct_int)
Yaml12Loader.add_constructor(_FLOAT, _construct_float)


def safe_load12(text: str) -> object:
    """``yaml.safe_load`` with YAML 1.2 numbers (:class:`Yaml12Loader`)."""
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


__all__ = ["FLOAT_12", "INT_12", "Yaml12Loader", "safe_load12"]
