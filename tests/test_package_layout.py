"""The package's shape (DESIGN.md section 2): subpackages by concept, imports pointing down.

Reads the syntax trees only; nothing is imported except for the public-name check.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gmmspeech

PACKAGE = Path(gmmspeech.__file__).resolve().parent

# Lowest layer first. A module may import from its own subpackage and from any layer listed
# before its own; errors and _version are the floor every layer stands on.
LAYERS: list[set[str]] = [
    {"errors", "_version"},
    {"config"},
    {"storage"},
    {"forkguard"},
    {"engine"},
    {"corpus"},
    {"features"},
    {"mixture"},
    {"ivector"},
    {"decisions"},
    {"pipeline"},
    {"demo", "benchmarks"},
    {"cli"},
    {"__main__"},
]
RANK = {name: i for i, group in enumerate(LAYERS) for name in group}
# Plain modules allowed directly in gmmspeech/ beyond these: at most MAX_TOP_MODULES.
ALWAYS_TOP = {"__init__", "__main__", "_version", "errors"}
MAX_TOP_MODULES = 8


def _unit(module: str) -> str:
    """The layer unit of a dotted module name: its subpackage, or the top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path) -> list[tuple[str, str, int]]:
    """(target module, imported name, line) of every gmmspeech import in one file."""
    module = _module_name(path, root)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "gmmspeech":
                found += [(target, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [
                (a.name, "", node.lineno) for a in node.names if a.name.startswith("gmmspeech")
            ]
    return found


def upward_imports(root: Path = PACKAGE) -> list[str]:
    """Imports that point from a lower layer to a higher one (or sideways between units)."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        here = _unit(_module_name(path, root))
        if here == "":  # gmmspeech/__init__.py re-exports everything, lazily
            continue
        for target, name, line in _imports(path, root):
            unit = _unit(target) or _unit(f"{target}.{name}")
            if unit in ("", here):
                continue
            if RANK[unit] >= RANK[here]:
                bad.append(f"{path.relative_to(root.parent)}:{line} imports {target}.{name}")
    return bad


def test_every_unit_of_the_package_has_a_layer() -> None:
    units = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.parent.name for p in PACKAGE.glob("*/__init__.py")
    }
    assert units - {"__init__"} <= set(RANK), "add new subpackages to LAYERS"


def test_imports_point_down_the_layers() -> None:
    assert upward_imports() == []


def test_the_layer_check_catches_a_planted_upward_import(tmp_path: Path) -> None:
    pkg = tmp_path / "gmmspeech"
    (pkg / "corpus").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "corpus" / "__init__.py").write_text('"""x"""\n')
    (pkg / "corpus" / "bad.py").write_text("from ..mixture.gmm import DiagGMM\n")
    (pkg / "corpus" / "fine.py").write_text("from ..storage.atomic import atomic_path\n")
    assert upward_imports(pkg) == [
        "gmmspeech/corpus/bad.py:1 imports gmmspeech.mixture.gmm.DiagGMM"
    ]


def test_few_plain_modules_stay_at_the_top() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")} - ALWAYS_TOP
    assert len(top) <= MAX_TOP_MODULES, sorted(top)


@pytest.mark.parametrize("init", sorted(PACKAGE.glob("*/__init__.py")), ids=lambda p: p.parent.name)
def test_each_subpackage_says_what_it_holds_and_may_import(init: Path) -> None:
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    assert len(doc.splitlines()) >= 2, f"{init}: say what the subpackage holds"
    if init.parent.name not in ("benchmarks", "pipeline"):
        assert "May import" in doc, f"{init}: say which layers it may import"


def test_every_public_name_resolves() -> None:
    missing = [n for n in gmmspeech.__all__ if not hasattr(gmmspeech, n)]
    assert missing == []
