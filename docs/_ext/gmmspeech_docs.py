"""Reference pages generated from the code at build time, never copied by hand.

- ``.. gmmspeech-config::`` renders every key of an experiment config (section, key, type,
  default, description) from the config dataclasses and their numpydoc docstrings.
- ``.. gmmspeech-cli::`` renders every ``gmmspeech`` subcommand from ``build_parser()``.
- :func:`write_api_page` writes the autosummary page of ``gmmspeech.__all__`` before Sphinx
  reads the sources, so a name added to ``__all__`` appears without editing the docs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import re
import types
import typing
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from numpydoc.docscrape import NumpyDocString
from sphinx.util.docutils import SphinxDirective

_RST_SPECIAL = re.compile(r"([\\*`|_\[\]])")


def rst_escape(text: str) -> str:
    """Plain text (argparse help) made safe for reStructuredText: no role, emphasis or
    reference markup is read into it."""
    return _RST_SPECIAL.sub(r"\\\1", text)


# --------------------------------------------------------------------------------------
# config reference


def _type_name(tp: object) -> str:
    """A readable form of a field's annotation (``int or None``, ``tuple of int``)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is tuple:
        inner = [a for a in args if a is not Ellipsis]
        return "list of " + (_type_name(inner[0]) if inner else "any")
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> description, from the Parameters section of the class docstring
    (numpydoc; ``a, b : type`` documents both)."""
    doc = NumpyDocString(cls.__doc__ or "")
    out: dict[str, str] = {}
    for param in doc["Parameters"]:
        text = " ".join(line.strip() for line in param.desc).strip()
        choices = param.type.strip()
        if choices.startswith("{"):
            text = f"One of ``{choices}``. {text}".strip()
        for name in param.name.split(","):
            out[name.strip()] = text
    return out


def _dataclass_in(tp: object) -> type | None:
    """The dataclass a field holds (``X``, ``X | None`` or ``tuple[X, ...]``), if any."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    for arg in typing.get_args(tp):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None


def _default(field: dataclasses.Field[object]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    return json.dumps(value)


@dataclasses.dataclass
class ConfigSection:
    """One table of the config reference: a dataclass and where it sits in the YAML."""

    keys: list[str]  # ["ubm"], ["data.background", "data.targets"], [""] for the top level
    cls: type
    rows: list[tuple[str, str, str, str]]  # key, type, default, description


def config_sections(root: type) -> list[ConfigSection]:
    """Every section under ``root`` (ExperimentConfig), depth first, one row per key.

    A dataclass field with a default instance is a section of its own (``ubm:``); one that
    defaults to None or to an empty list (``data.background``, ``fusion.systems``) is a key
    whose value is a mapping (or a list of them) described by a table of its own, shared by
    every key of that type."""
    sections: list[ConfigSection] = []

    def visit(keys: list[str], cls: type) -> None:
        hints = typing.get_type_hints(cls)
        docs = field_docs(cls)
        rows = []
        nested: dict[type, list[str]] = {}
        prefix = keys[0]
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            sub = _dataclass_in(hint)
            # a table shared by several keys lists the keys relative to them
            key = f"{prefix}.{f.name}" if prefix and len(keys) == 1 else f.name
            if sub is not None and f.default_factory is not dataclasses.MISSING:
                if isinstance(f.default_factory(), sub):
                    nested.setdefault(sub, []).append(key)
                    continue
            if sub is not None:
                is_list = typing.get_origin(hint) is tuple
                nested.setdefault(sub, []).append(key + ("[]" if is_list else ""))
            rows.append((key, _type_name(hint), _default(f), docs.get(f.name, "")))
        sections.append(ConfigSection(keys, cls, rows))
        for sub, sub_keys in nested.items():
            visit(sub_keys, sub)

    visit([""], root)
    return sections


def config_reference_rst() -> list[str]:
    gs = importlib.import_module("gmmspeech")
    lines: list[str] = []
    for sec in config_sections(gs.ExperimentConfig):
        title = ", ".join(f"``{k}:``" for k in sec.keys) if sec.keys[0] else "Top level"
        lines += [title, "-" * len(title), ""]
        summary = NumpyDocString(sec.cls.__doc__ or "")["Summary"]
        name = sec.cls.__name__
        where = f":class:`gmmspeech.{name}`" if name in gs.__all__ else f"``{name}``"
        lines += [" ".join(summary) + f" ({where})", ""]
        lines += [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 30 13 15 42",
            "   :class: config-table",
            "",
            "   * - key",
            "     - type",
            "     - default",
            "     - description",
        ]
        for key, tp, default, desc in sec.rows:
            lines += [
                f"   * - ``{key}``",
                f"     - {rst_escape(tp)}",
                f"     - ``{default}``",
                f"     - {desc or '(undocumented)'}",
            ]
        lines.append("")
    return lines


# --------------------------------------------------------------------------------------
# CLI reference


def _option_rows(parser: argparse.ArgumentParser) -> list[tuple[str, str, str]]:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            metavar = (
                formatter._format_args(action, action.dest.upper()) if action.nargs != 0 else ""
            )
            names = ", ".join(f"{o} {metavar}".strip() for o in action.option_strings)
        else:
            names = formatter._format_args(action, action.dest)
        help_ = formatter._expand_help(action) if action.help else ""
        rows.append((names, help_, "positional" if not action.option_strings else "option"))
    return rows


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command_rst(name: str, parser: argparse.ArgumentParser, level: str) -> list[str]:
    title = f"``{name}``"
    lines = [title, level * len(title), ""]
    if parser.description:
        lines += [rst_escape(parser.description), ""]
    usage = parser.format_usage().strip().removeprefix("usage: ").splitlines()
    usage = usage[:1] + [u[len("usage: ") :] for u in usage[1:]]  # argparse aligned these
    lines += ["::", ""] + ["   " + u for u in usage] + [""]
    rows = _option_rows(parser)
    if rows:
        lines += [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 35 65",
            "   :class: cli-table",
            "",
            "   * - argument",
            "     - meaning",
        ]
        for names, help_, _kind in rows:
            lines += [f"   * - ``{names}``", f"     - {rst_escape(' '.join(help_.split())) or '-'}"]
        lines.append("")
    if parser.epilog:
        lines += (
            ["Example::", ""]
            + [
                "   " + e.strip()
                for e in parser.epilog.splitlines()
                if e.strip() and e != "example:"
            ]
            + [""]
        )
    for sub_name, sub in _subparsers(parser).items():
        lines += _command_rst(f"{name} {sub_name}", sub, "~")
    return lines


def _cli_module():  # type: ignore[no-untyped-def]
    for mod in ("gmmspeech.cli.main", "gmmspeech.cli"):
        try:
            module = importlib.import_module(mod)
        except ImportError:
            continue
        if hasattr(module, "build_parser"):
            return module
    raise ImportError("no build_parser in gmmspeech.cli.main or gmmspeech.cli")


def cli_reference_rst() -> list[str]:
    parser = _cli_module().build_parser()
    lines = ["::", ""] + ["   " + u for u in parser.format_usage().strip().splitlines()] + [""]
    for name, sub in _subparsers(parser).items():
        lines += _command_rst(f"gmmspeech {name}", sub, "-")
    return lines


class _GeneratedDirective(SphinxDirective):
    has_content = False

    def generate(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        container = nodes.section()
        container.document = self.state.document
        content = StringList(self.generate(), source=f"<{self.name}>")
        from sphinx.util.nodes import nested_parse_with_titles

        nested_parse_with_titles(self.state, content, container)
        return container.children


class ConfigReference(_GeneratedDirective):
    def generate(self) -> list[str]:
        return config_reference_rst()


class CLIReference(_GeneratedDirective):
    def generate(self) -> list[str]:
        return cli_reference_rst()


# --------------------------------------------------------------------------------------
# API reference from __all__

#: Titles of the groups of the API page, by the subpackage (or flat module) that defines a
#: name; a module not listed here gets its own name as title.
GROUP_TITLES = {
    "errors": "Errors and warnings",
    "config": "Configuration",
    "configio": "Configuration",
    "storage": "Storage",
    "corpus": "Data dirs, trials and score files",
    "features": "Audio and features",
    "mixture": "Gaussian mixtures, UBM and MAP",
    "ivector": "i-vectors and back end",
    "decisions": "Scoring, normalisation, calibration and metrics",
    "engine": "Where work runs",
}


def api_groups() -> dict[str, list[str]]:
    gs = importlib.import_module("gmmspeech")
    groups: dict[str, list[str]] = {}
    for name in gs.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(gs, name)
        parts = getattr(obj, "__module__", "gmmspeech").split(".")
        key = parts[1] if len(parts) > 1 else "gmmspeech"
        title = GROUP_TITLES.get(key, f"``gmmspeech.{key}``")
        groups.setdefault(title, []).append(name)
    return groups


def write_api_page(path: Path) -> None:
    """Write the API page (an autosummary table per group) if its text changed."""
    lines = [
        ".. This file is generated by docs/_ext/gmmspeech_docs.py from gmmspeech.__all__;",
        "   edits are lost.",
        "",
        "API reference",
        "=============",
        "",
        "Every public name of ``gmmspeech`` (``import gmmspeech as gs``; the list is",
        "``gmmspeech.__all__``), grouped by the part of the toolkit that defines it.",
        "",
        ".. currentmodule:: gmmspeech",
        "",
    ]
    for title, names in api_groups().items():
        lines += [title, "-" * len(title), "", ".. autosummary::", "   :toctree: generated/", ""]
        lines += [f"   {n}" for n in names] + [""]
    _write_if_changed(path, "\n".join(lines))


# --------------------------------------------------------------------------------------
# recipe pages: each recipe's README (included, not copied) and its configs


def write_recipe_pages(recipes: Path, out: Path) -> list[str]:
    """Write one page per ``recipes/<task>/<name>/README.md`` that includes it (and shows
    its YAML configs), and an index; returns the page names. Files are rewritten only when
    their text changes, so an unchanged tree does not trigger a rebuild."""
    out.mkdir(parents=True, exist_ok=True)
    pages = []
    for readme in sorted(recipes.glob("*/*/README.md")):
        folder = readme.parent
        task, name = folder.parent.name, folder.name
        page = f"{task}__{name}"
        rel = Path("..", "..", readme.relative_to(recipes.parent)).as_posix()
        lines = [
            f"```{{include}} {rel}",
            "```",
            "",
            "## Configs",
            "",
            f"Run with `gmmspeech run {folder.relative_to(recipes.parent).as_posix()}/config.yaml`.",
            "",
        ]
        for config in sorted(folder.glob("*.yaml")):
            crel = Path("..", "..", config.relative_to(recipes.parent)).as_posix()
            lines += [
                f"### `{config.name}`",
                "",
                f"```{{literalinclude}} {crel}",
                ":language: yaml",
                "```",
                "",
            ]
        _write_if_changed(out / f"{page}.md", "\n".join(lines))
        pages.append(page)
    index = [
        "# Recipes",
        "",
        "Each recipe is a folder of `recipes/` with its config and a README holding the figures",
        "it produced, the exact commands and the machine they ran on. These pages show those",
        "READMEs as they are in the repository.",
        "",
        "```{toctree}",
        ":maxdepth: 1",
        "",
        *pages,
        "```",
        "",
    ]
    _write_if_changed(out / "index.md", "\n".join(index))
    return pages


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------
# gallery order: tutorials on mixtures first, then a GMM-UBM system in the order it is built

GALLERY_ORDER = [
    "plot_em_1d_step_by_step.py",
    "plot_soft_hard_kmeans.py",
    "plot_sampling.py",
    "plot_nd_fit_ellipses.py",
    "plot_choosing_k.py",
    "plot_ubm_splitting.py",
    "plot_map_adaptation.py",
    "plot_llr_scoring_det.py",
    "plot_score_normalisation.py",
    "plot_calibration.py",
    "plot_ivectors_plda.py",
    "plot_audio_classification.py",
]


class GalleryOrder:
    """sphinx-gallery ``within_subsection_order``: the listed examples in that order, any
    other after them by name."""

    def __init__(self, src_dir: str) -> None:
        self.src_dir = src_dir

    def __call__(self, filename: str) -> tuple[int, str]:
        name = Path(filename).name
        rank = GALLERY_ORDER.index(name) if name in GALLERY_ORDER else len(GALLERY_ORDER)
        return (rank, name)

    def __repr__(self) -> str:  # stable, so the config's hash does not change per build
        return "GalleryOrder"


_SKLEARN_REQUEST = re.compile(r"set_\w+_request")


def skip_sklearn_routing(app, what, name, obj, skip, options):  # type: ignore[no-untyped-def]
    """scikit-learn adds ``set_fit_request`` and the like to every estimator subclass; they
    are scikit-learn's (metadata routing), and their docstrings cite its glossary."""
    return True if _SKLEARN_REQUEST.fullmatch(name) else None


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("autodoc-skip-member", skip_sklearn_routing)
    app.add_directive("gmmspeech-config", ConfigReference)
    app.add_directive("gmmspeech-cli", CLIReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
