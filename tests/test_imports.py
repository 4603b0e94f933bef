"""The package's import graph: no cycles, and no imports hidden inside functions.

Walks every module's syntax tree (no import is executed), so a cycle that only shows at run
time through a function-local import is caught too. Heavy optional dependencies may be
imported lazily inside functions; everything else is imported at module level.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gmmspeech"

# Optional or slow-to-import third-party modules that may be imported inside a function so
# that `import gmmspeech` and the CLI start fast.
LAZY_ALLOWED = ("dask", "distributed", "matplotlib", "sklearn", "numba")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """Package modules named by a relative ``from ... import`` (module and imported names)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    target = ".".join(base + ([node.module] if node.module else []))
    names = [f"{target}.{a.name}" for a in node.names]
    if node.module is None:
        # `from . import mod` needs the submodule, not the package's __init__ again
        return names
    return [target, *names]


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                # imports for type checkers only never run
                for sub in ast.walk(node):
                    sub._type_only = True  # type: ignore[attr-defined]
        for node in ast.walk(tree):
            if getattr(node, "_type_only", False):
                continue
            if isinstance(node, ast.ImportFrom) and node.level:
                targets = _resolve(name, path, node)
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert cycles == [], f"import cycles: {cycles}"


def test_no_function_local_imports() -> None:
    offenders = []
    for path in _modules().values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [("." * node.level) + (node.module or "")]
                else:
                    continue
                if all(n.split(".")[0] in LAZY_ALLOWED for n in names):
                    continue
                offenders.append(f"{path.name}:{node.lineno} {fn.name}: {', '.join(names)}")
    assert offenders == [], "function-local imports:\n" + "\n".join(offenders)
