"""The documentation's generated references cover the code: every config key, every CLI
option, every public name. Needs the ``docs`` extra (numpydoc, Sphinx); skipped without it.
The site itself is built warning-free by CI (``.ci/run``)."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import typing
from pathlib import Path

import pytest

pytest.importorskip("numpydoc")
pytest.importorskip("sphinx")

import gmmspeech as gs  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
gen = pytest.importorskip("gmmspeech_docs")


def _all_config_keys() -> dict[str, type]:
    """Every leaf key of an experiment config, walked from the dataclasses (independently of
    the generator): ``"ubm.n_components"``, ``"data.background.path"``, ..."""
    keys: dict[str, type] = {}

    def walk(prefix: str, cls: type) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            nested = [
                a
                for a in (hints[f.name], *typing.get_args(hints[f.name]))
                if dataclasses.is_dataclass(a)
            ]
            if nested:
                walk(key + ".", nested[0])
                if f.default_factory is dataclasses.MISSING:
                    keys[key] = cls  # an optional set (None by default) is a key too
            else:
                keys[key] = cls

    walk("", gs.ExperimentConfig)
    return keys


def test_config_reference_lists_every_key_with_a_description() -> None:
    rst = "\n".join(gen.config_reference_rst())
    sections = gen.config_sections(gs.ExperimentConfig)
    documented = {}
    for sec in sections:
        for key, _tp, default, desc in sec.rows:
            for prefix in sec.keys:
                full = key if len(sec.keys) == 1 else f"{prefix}.{key}"
                documented[full.replace("[]", "")] = (default, desc)
    expected = _all_config_keys()
    assert len(expected) > 100
    missing = sorted(k for k in expected if k not in documented)
    assert not missing, f"config keys missing from the reference: {missing}"
    undocumented = sorted(k for k, (_d, desc) in documented.items() if not desc)
    assert not undocumented, f"config keys without a description in the docstring: {undocumented}"
    # defaults come from the dataclasses themselves
    assert documented["ubm.n_components"][0] == str(gs.UBMConfig().n_components)
    assert documented["features.window"][0] == f'"{gs.FeatureConfig().window}"'
    assert "``ubm.n_components``" in rst


def _walk(parser: argparse.ArgumentParser, name: str, out: dict[str, set[str]]) -> None:
    out[name] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                _walk(sub, f"{name} {sub_name}", out)
        elif not isinstance(action, argparse._HelpAction):
            out[name].update(action.option_strings)


def test_cli_reference_lists_every_command_and_option() -> None:
    rst = "\n".join(gen.cli_reference_rst())
    expected: dict[str, set[str]] = {}
    _walk(gen._cli_module().build_parser(), "gmmspeech", expected)
    assert len(expected) > 15
    for command, options in expected.items():
        if command == "gmmspeech":
            continue
        title = f"``{command}``"
        assert f"\n{title}\n" in rst, f"{command} has no section"
        section = rst.split(f"\n{title}\n", 1)[1]
        section = re.split(r"\n``gmmspeech [^`]*``\n[-~]+\n", section, maxsplit=1)[0]
        for option in options:
            assert re.search(rf"(``|, ){re.escape(option)}[ `,]", section), f"{command} {option}"


def test_api_page_lists_every_public_name(tmp_path: Path) -> None:
    page = tmp_path / "api.rst"
    gen.write_api_page(page)
    listed = re.findall(r"^   (\w+)$", page.read_text(encoding="utf-8"), flags=re.M)
    public = [n for n in gs.__all__ if not n.startswith("__")]
    assert sorted(listed) == sorted(public)


def test_recipe_pages_include_every_recipe_readme(tmp_path: Path) -> None:
    recipes = DOCS.parent / "recipes"
    pages = gen.write_recipe_pages(recipes, tmp_path)
    readmes = sorted(recipes.glob("*/*/README.md"))
    assert len(pages) == len(readmes) > 0
    for page, readme in zip(pages, readmes, strict=True):
        text = (tmp_path / f"{page}.md").read_text(encoding="utf-8")
        target = re.search(r"```\{include\} (\S+)", text).group(1)
        assert target.endswith(readme.relative_to(recipes.parent).as_posix())


def test_gallery_examples_draw_a_figure() -> None:
    examples = sorted((DOCS / "examples").glob("plot_*.py"))
    assert len(examples) >= 12
    for path in examples:
        text = path.read_text(encoding="utf-8")
        assert text.startswith('"""\n'), f"{path.name}: sphinx-gallery needs a title docstring"
        assert "plt.subplots" in text or "plt.figure" in text, f"{path.name} draws nothing"
