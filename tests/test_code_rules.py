"""Rules of the package's code, checked on its syntax trees (nothing is imported).

No ``# fmt: skip`` (ruff formats everything), no ``assert`` statement (the package raises
its own errors, which ``python -O`` cannot strip), no module over 600 lines, and no private
name (leading underscore) imported from another subpackage.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gmmspeech"
MAX_LINES = 600


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _fmt_skips(source: str) -> list[int]:
    """Lines with a ``fmt: skip`` / ``fmt: off`` comment (comments only, not strings)."""
    lines = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        text = tok.string.replace(" ", "")
        if tok.type == tokenize.COMMENT and ("fmt:skip" in text or "fmt:off" in text):
            lines.append(tok.start[0])
    return lines


def _asserts(source: str) -> list[int]:
    return [n.lineno for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Assert)]


def _subpackage(module: tuple[str, ...]) -> str:
    """``gmmspeech.<sub>`` of a module path, or ``gmmspeech.<module>`` for a top module."""
    return ".".join(module[:2])


def _module_parts(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _private_imports(path: Path, source: str) -> list[str]:
    """``from <other subpackage> import _name`` in the module at ``path``."""
    here = _module_parts(path)
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[: len(package) - (node.level - 1)]
            target = (*base, *(node.module.split(".") if node.module else ()))
        elif node.module and node.module.split(".")[0] == "gmmspeech":
            target = tuple(node.module.split("."))
        else:
            continue
        for alias in node.names:
            # `from . import _mod` names a module of the target package
            full = target if node.module else (*target, alias.name)
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                if _subpackage(full) != _subpackage(here):
                    found.append(f"{'.'.join(here)}:{node.lineno} {'.'.join(target)}.{alias.name}")
    return found


def test_the_checks_find_planted_offences() -> None:
    bad = "x = 1  # fmt: skip\ny = [\n    1,\n]  # fmt: off\ns = '# fmt: skip'\nassert x\n"
    assert _fmt_skips(bad) == [1, 4]
    assert _asserts(bad) == [6]
    src = "from ..decisions.metrics import _split\nfrom .tables import _x\n"
    found = _private_imports(PACKAGE / "corpus" / "prepare.py", src)
    assert found == ["gmmspeech.corpus.prepare:1 gmmspeech.decisions.metrics._split"]
    src = "from .. import _frames\nfrom ... import _version\nfrom ...errors import _Full\n"
    found = _private_imports(PACKAGE / "features" / "store" / "reader.py", src)
    assert found == [  # features._frames is of the same subpackage
        "gmmspeech.features.store.reader:2 gmmspeech._version",
        "gmmspeech.features.store.reader:3 gmmspeech.errors._Full",
    ]


def test_no_fmt_skip_in_the_package() -> None:
    found = [
        f"{p.relative_to(PACKAGE.parent)}:{n}"
        for p in _modules()
        for n in _fmt_skips(p.read_text(encoding="utf-8"))
    ]
    assert found == [], "fmt: skip / fmt: off comments:\n" + "\n".join(found)


def test_no_assert_statement_in_the_package() -> None:
    found = [
        f"{p.relative_to(PACKAGE.parent)}:{n}"
        for p in _modules()
        for n in _asserts(p.read_text(encoding="utf-8"))
    ]
    assert found == [], "assert statements (raise the project's errors):\n" + "\n".join(found)


def test_no_module_over_600_lines() -> None:
    found = []
    for p in _modules():
        n = len(p.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            found.append(f"{p.relative_to(PACKAGE.parent)}: {n} lines")
    assert found == [], f"modules over {MAX_LINES} lines:\n" + "\n".join(found)


def test_no_private_name_is_imported_across_subpackages() -> None:
    found = [x for p in _modules() for x in _private_imports(p, p.read_text(encoding="utf-8"))]
    assert found == [], "private names imported across subpackages:\n" + "\n".join(found)
