"""What a stage declares: the config it hashes and reads, the artefacts it reads and writes.

A stage's hash chains the config keys of its ``sections`` with the hash of the stage before
it, so a key hashed by an earlier stage is covered too: such keys are listed in ``upstream``.
A stage sees the config through a :class:`ConfigView` of those keys (and of
:data:`UNHASHED`); reading any other raises :class:`UndeclaredError`. :func:`check_table`
checks a whole table: every ``upstream`` key hashed earlier, every artefact read written
earlier.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..config.sections import ExperimentConfig, to_dict
from ..errors import GmmSpeechError
from .artefacts import RECORDS, Artefact

if TYPE_CHECKING:  # pragma: no cover
    from .workspace import StageResult, Workspace

#: ``sections=(ALL,)``: the stage reads (and hashes) the whole config.
ALL = "*"

#: How the work runs, not what it computes: every stage may read these, no hash holds them
#: (every engine gives the same numbers; extraction settings decide only when it fails).
UNHASHED = ("compute", "extract")


class UndeclaredError(GmmSpeechError):
    """A stage read a config key or an artefact that its declaration does not name."""


@dataclasses.dataclass(frozen=True)
class Stage:
    """One row of a system's stage table.

    Attributes
    ----------
    name : str
        The stage name (also the name of its record file).
    run : callable
        ``run(workspace) -> (outputs, info)``: does the work and writes every output.
    sections : tuple of str
        Dotted config keys (``"scoring.norm"``, or a whole section ``"ubm"``) in the
        stage's hash; ``(ALL,)`` for the whole config.
    upstream : tuple of str
        Config keys the stage reads that an earlier stage of the table hashes.
    reads, writes : tuple of Artefact
        The files of the experiment the stage reads and writes.
    version : int
        Part of the hash: raised when the stage's outputs change, so that the records of
        folders made before are redone.
    hashed_when_set : tuple of str
        Keys of ``sections`` added after folders were made, whose None means what those
        folders did: hashed only when not None, so that the folders keep their hashes.
    """

    name: str
    run: Callable[[Workspace], StageResult]
    sections: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    reads: tuple[Artefact, ...] = ()
    writes: tuple[Artefact, ...] = ()
    version: int = 1
    hashed_when_set: tuple[str, ...] = ()

    @property
    def config_keys(self) -> frozenset[str]:
        """Every config key the stage may read."""
        return frozenset((*self.sections, *self.upstream, *UNHASHED))

    def hash_input(self, cfg: ExperimentConfig) -> object:
        """The part of ``cfg`` that goes into the stage's hash (JSON-compatible).

        One whole section gives its dict; several keys give ``{last part of key: value}``.
        """
        if self.sections == (ALL,):
            return to_dict(cfg)
        if len(self.sections) == 1 and _is_section(self.sections[0]):
            return _value(cfg, self.sections[0])
        return {
            key.rsplit(".", 1)[-1]: _value(cfg, key)
            for key in self.sections
            if key not in self.hashed_when_set or _value(cfg, key) is not None
        }


def _is_section(key: str) -> bool:
    """Whether ``key`` names a whole section (a dataclass) of the experiment config."""
    tp = typing.get_type_hints(ExperimentConfig).get(key)
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _value(cfg: ExperimentConfig, key: str) -> object:
    """The JSON form of the config value at the dotted ``key``."""
    head, _, field = key.partition(".")
    top = getattr(cfg, head)
    if not field:
        section = dataclasses.is_dataclass(top) and not isinstance(top, type)
        return to_dict(top) if section else top
    return to_dict(top)[field]


def covers(hashed: str, key: str) -> bool:
    """Whether the hashed key ``hashed`` holds the value of ``key``."""
    return hashed in (ALL, key) or key.startswith(hashed + ".")


def _known(key: str) -> bool:
    """Whether ``key`` is :data:`ALL`, a top-level config key or a field of a section."""
    if key == ALL:
        return True
    hints = typing.get_type_hints(ExperimentConfig)
    head, _, field = key.partition(".")
    if not field:
        return head in hints
    tp = hints.get(head)
    return _is_section(head) and field in {f.name for f in dataclasses.fields(tp)}  # type: ignore[arg-type]


def check_table(table: Sequence[Stage]) -> list[str]:
    """The problems of a stage table's declarations (empty when there are none)."""
    problems = []
    hashed: list[str] = []
    written: set[Artefact] = {RECORDS}  # the runner writes the records
    for st in table:
        for key in (*st.sections, *st.upstream):
            if not _known(key):
                problems.append(f"{st.name}: {key!r} is no config key")
        for key in st.upstream:
            if not any(covers(h, key) for h in hashed):
                problems.append(f"{st.name}: upstream {key!r} is hashed by no earlier stage")
        names = [k.rsplit(".", 1)[-1] for k in st.sections]
        if len(set(names)) != len(names):
            problems.append(f"{st.name}: sections {st.sections} repeat a last key part")
        for a in st.reads:
            if a not in written:
                problems.append(f"{st.name}: reads {a.key!r}, which no earlier stage writes")
        if not st.writes:  # a stage that does nothing has no place in a table
            problems.append(f"{st.name}: writes nothing")
        hashed.extend(st.sections)
        written.update(st.writes)
    return problems


class ConfigView:
    """The config as one stage sees it: reading a key it did not declare raises.

    Parameters
    ----------
    obj : object
        The config or one of its sections.
    keys : iterable of str
        The dotted keys the stage may read.
    stage : str
        Named in the error.
    prefix : str
        Dotted path of ``obj`` (with a trailing dot), "" for the config.
    """

    def __init__(self, obj: object, keys: Iterable[str], stage: str, prefix: str = "") -> None:
        self._obj = obj
        self._keys = frozenset(keys)
        self._stage = stage
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        dotted = self._prefix + name
        value = getattr(self._obj, name)
        if any(covers(k, dotted) for k in self._keys):
            return value
        if any(k.startswith(dotted + ".") for k in self._keys):
            return ConfigView(value, self._keys, self._stage, dotted + ".")
        raise UndeclaredError(
            f"stage {self._stage}: reads config {dotted!r}, which its declaration does not "
            f"name; add it to the stage's sections (or upstream, when an earlier stage "
            f"hashes it) in gmmspeech.pipeline.tables"
        )

    def __repr__(self) -> str:
        return f"ConfigView({self._prefix or 'config'} of stage {self._stage})"


__all__ = ["ALL", "UNHASHED", "ConfigView", "Stage", "UndeclaredError", "check_table", "covers"]
