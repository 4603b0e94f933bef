"""The Examples sections of the public API run as doctests.

Every name in ``gmmspeech.__all__`` whose docstring (or one of its methods') holds ``>>>``
examples is run here, with its module's globals, so CI checks that the documented examples
still hold.
"""

from __future__ import annotations

import doctest
import inspect
import re
import sys

import numpy as np
import pytest

import gmmspeech

_EXAMPLES = re.compile(r"^\s*Examples\n\s*-{8,}\n", re.MULTILINE)
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _public_objects() -> dict[str, object]:
    return {name: getattr(gmmspeech, name) for name in gmmspeech.__all__ if name != "__version__"}


def _doctests(name: str, obj: object) -> list[doctest.DocTest]:
    module = sys.modules[obj.__module__]  # type: ignore[attr-defined]
    globs = {**vars(module), "np": np}
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = finder.find(obj, f"gmmspeech.{name}", module=module, globs=globs)
    return [t for t in tests if t.examples]


_WITH_EXAMPLES = {
    name: obj
    for name, obj in _public_objects().items()
    if _EXAMPLES.search(inspect.getdoc(obj) or "") and ">>>" in (inspect.getdoc(obj) or "")
}


def test_at_least_30_public_names_have_numpydoc_examples() -> None:
    assert len(_WITH_EXAMPLES) >= 30, sorted(_WITH_EXAMPLES)


@pytest.mark.parametrize("name", sorted(_WITH_EXAMPLES))
def test_examples_run(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    tests = _doctests(name, _WITH_EXAMPLES[name])
    assert tests, f"{name}: an Examples section but no doctest found"
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def test_a_wrong_example_fails() -> None:
    """The runner above really compares outputs (a broken example is caught)."""

    def broken() -> None:
        """
        Examples
        --------
        >>> 1 + 1
        3
        """

    test = doctest.DocTestFinder().find(broken, "broken", globs={})[0]
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    runner.run(test, out=lambda _s: None)
    assert runner.summarize(verbose=False).failed == 1
