"""The README: short, opens with the set-up commands CI runs, its Python example runs, and
no link in the repository's Markdown points outside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_LINES = 250
SETUP = [
    "pip install . && gmmspeech demo",
    'pip install ".[test]" && python -m pytest -q',
]


def _code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_is_at_most_250_lines() -> None:
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; move detail into docs/ (limit {MAX_LINES})"


def test_readme_opens_with_the_two_setup_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = _code_blocks(text, "bash")[0]
    assert text.index("```bash") < text.index("\n## "), "the set-up block comes first"
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == SETUP


def test_readme_python_example_runs(tmp_path: Path) -> None:
    code = _code_blocks(README.read_text(encoding="utf-8"), "python")[0]
    assert len(code.splitlines()) <= 20
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    target, nontarget = (float(x) for x in done.stdout.split())
    # the example's claim: the speaker's own test frames score above another speaker's
    assert target > 0 > nontarget


def _markdown_files() -> list[Path]:
    skip = ("docs/_build", "docs/auto_examples", "docs/api", "docs/recipes", ".git")
    return [
        p
        for p in ROOT.rglob("*.md")
        if not any(p.relative_to(ROOT).as_posix().startswith(s) for s in skip)
        and "egg-info" not in p.as_posix()
        and ".venv" not in p.parts
    ]


LINK = re.compile(r"\]\(([^)\s]+)\)")


GENERATED = {("docs", "auto_examples"), ("docs", "recipes")}


def test_no_markdown_link_leaves_the_repository() -> None:
    assert README in _markdown_files()
    bad = []
    for page in _markdown_files():
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor on the page
            path = (page.parent / target.split("#")[0]).resolve()
            inside = path.is_relative_to(ROOT)
            rel = path.relative_to(ROOT).parts if inside else ()
            # pages the docs build writes: the gallery and the recipe pages (docs/conf.py)
            generated = path.suffix == "" or rel[:2] in GENERATED
            if not inside or (not generated and not path.exists()):
                bad.append(f"{page.relative_to(ROOT)}: {target}")
    assert not bad, "links outside the repository or to missing files: " + ", ".join(bad)


YAML_BLOCK = re.compile(r"```ya?ml\n(.*?)```", re.S)


def test_yaml_examples_in_the_markdown_pages_parse() -> None:
    # a fusion example once used ${env:...} inside a flow mapping, where its braces end the
    # mapping: the page showed YAML that no loader reads
    bad = []
    for page in _markdown_files():
        for block in YAML_BLOCK.findall(page.read_text(encoding="utf-8")):
            try:
                yaml.safe_load(block)
            except yaml.YAMLError as exc:
                bad.append(f"{page.relative_to(ROOT)}: {str(exc).splitlines()[0]}")
    assert not bad
