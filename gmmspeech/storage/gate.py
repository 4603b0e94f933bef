"""The output gate of one command: what it may write, checked at every write.

A command line invocation opens one :class:`OutputGate` (:func:`open_gate`) holding the paths
named on its command line. The command declares its outputs (through
:func:`gmmspeech.storage.outputs.check_output`, which also checks the kind of an existing
file and ``--overwrite``), and its input folders (e.g. the experiments a fusion reads). Every
write then passes :meth:`OutputGate.check_write` (:func:`gmmspeech.storage.atomic.atomic_path`
calls it), which refuses to replace

* a file named on the command line that is not the one output it was named for (an input);
* a file inside an input folder;
* any existing file that is neither a declared output nor written by this invocation.

A declared output ``P`` covers ``P``, what is under it (a data dir) and its companions
``P.<suffix>`` (a log, a checkpoint folder); a declared folder covers everything under it. The gate records every write, so
a test can tell a write that went around it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import GmmSpeechError

log = logging.getLogger(__name__)


class OutputRefusedError(GmmSpeechError):
    """An output path holds something the command must not replace."""


FileId = tuple[int, int]


def file_id(path: str | os.PathLike[str]) -> FileId | None:
    """(device, inode) of the file ``path`` resolves to, or None when it does not exist."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(path))


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


class OutputGate:
    """What one command may write (see the module docstring).

    Parameters
    ----------
    command : str
        The command's name, for messages.
    named : iterable of path-like
        Every path named on the command line (inputs and outputs alike).
    """

    def __init__(self, command: str, named: Iterable[str | os.PathLike[str]] = ()) -> None:
        self.command = command
        self._named: collections.Counter[FileId] = collections.Counter()
        self._names: dict[FileId, str] = {}
        self._inputs: dict[FileId, str] = {}
        self._input_folders: list[tuple[Path, str]] = []
        self._outputs: set[Path] = set()
        self._folders: set[Path] = set()
        self._written: set[FileId] = set()
        #: Every file written through the gate, in order (real paths).
        self.written: list[Path] = []
        #: Writes to paths that no declaration covered (new files only: an existing one is
        #: refused). A command's test asserts that this stays empty.
        self.undeclared: list[Path] = []
        for p in named:
            key = file_id(p)
            if key is not None:
                self._named[key] += 1
                self._names.setdefault(key, str(p))

    # ------------------------------------------------------------------ declarations
    def add_inputs(self, paths: Iterable[str | os.PathLike[str] | None]) -> None:
        """Files the command reads that are not on its command line (e.g. from a config)."""
        for p in paths:
            key = None if p is None else file_id(p)
            if key is not None:
                self._inputs.setdefault(key, str(p))

    def add_input_folder(self, folder: str | os.PathLike[str], what: str) -> None:
        """Nothing under ``folder`` may be written or deleted (``what`` names it)."""
        real = _real(folder)
        for out in (*self._outputs, *self._folders):
            if _under(out, real) or _under(real, out):
                raise OutputRefusedError(
                    f"{folder}: {what} is read by this command and cannot also hold its "
                    f"output ({out}); choose another output"
                )
        self._input_folders.append((real, what))

    def declare_output(self, path: str | os.PathLike[str]) -> None:
        """``path`` (and its companions ``path.*``) is an output of this command."""
        real = _real(path)
        self._refuse_input(Path(path), real, declared=True)
        self._outputs.add(real)

    def declare_folder(self, folder: str | os.PathLike[str]) -> None:
        """Everything under ``folder`` is this command's to write (a resumable experiment
        folder: its user files are protected by :func:`gmmspeech.storage.atomic.protected`)."""
        real = _real(folder)
        for inp, what in self._input_folders:
            if _under(real, inp) or _under(inp, real):
                raise OutputRefusedError(
                    f"{folder}: the output folder overlaps {what} ({inp}), an input of this "
                    f"command; choose another output folder"
                )
        self._folders.add(real)

    # -------------------------------------------------------------------- the checks
    def _input_name(self, key: FileId, declared: bool) -> str | None:
        if key in self._inputs:
            return self._inputs[key]
        # an output is named once on the command line: a second naming is an input
        if key in self._named and (self._named[key] > 1 or not declared):
            return self._names[key]
        return None

    def _refuse_input(self, path: Path, real: Path, declared: bool) -> None:
        for folder, what in self._input_folders:
            if _under(real, folder):
                raise OutputRefusedError(
                    f"{path}: inside {what} ({folder}), an input of this command; write the "
                    f"output elsewhere"
                )
        key = file_id(path)
        if key is None or key in self._written:
            return
        name = self._input_name(key, declared)
        if name is not None:
            raise OutputRefusedError(
                f"{path}: this output is also an input of the command ({name}); write the "
                f"output to another path"
            )

    def covers(self, real: Path) -> bool:
        """Whether a declaration covers the real path ``real``."""
        if any(_under(real, f) for f in self._folders):
            return True
        for out in self._outputs:
            if _under(real, out):  # the output itself, or inside an output folder
                return True
            # companions: out.log, out.ckpt/..., out.parts/...
            for p in (real, *real.parents):
                if p.parent == out.parent and p.name.startswith(out.name + "."):
                    return True
        return False

    def check_write(self, target: Path) -> None:
        """Refuse to write ``target`` (see the module docstring); call before writing."""
        real = _real(target)
        declared = real in self._outputs
        self._refuse_input(target, real, declared)
        if not os.path.lexists(target):
            if not self.covers(real):
                if real not in self.undeclared:
                    self.undeclared.append(real)
                log.debug("%s: written without a declaration", target)
            return
        key = file_id(target)
        if key in self._written or self.covers(real):
            return
        raise OutputRefusedError(
            f"{target}: exists and is not an output of gmmspeech {self.command}; it will not "
            f"be replaced: choose another output path, or move it away yourself"
        )

    def check_remove(self, target: Path) -> None:
        """Refuse to delete ``target`` when it is an input, or under an input folder."""
        self._refuse_input(target, _real(target), declared=False)

    def record(self, target: Path) -> None:
        """``target`` was written (renamed into place) by this invocation."""
        key = file_id(target)
        if key is not None:
            self._written.add(key)
        self.written.append(_real(target))


_GATES: list[OutputGate] = []


def current_gate() -> OutputGate | None:
    """The gate of the running command, or None (library use: no gate)."""
    return _GATES[-1] if _GATES else None


@contextlib.contextmanager
def open_gate(command: str, named: Iterable[str | os.PathLike[str]] = ()) -> Iterator[OutputGate]:
    """Within the block, every write through :mod:`gmmspeech.storage.atomic` passes a new
    :class:`OutputGate` for ``command`` (its command-line paths ``named``)."""
    gate = OutputGate(command, named)
    _GATES.append(gate)
    try:
        yield gate
    finally:
        _GATES.remove(gate)


def command_line_paths(values: Iterable[object]) -> list[str]:
    """The strings among ``values`` (argparse values, lists flattened) that name an existing
    file or folder."""
    out = []
    for v in values:
        items = v if isinstance(v, (list, tuple)) else [v]
        for item in items:
            if isinstance(item, (str, os.PathLike)) and item and os.path.lexists(item):
                out.append(os.fspath(item))
    return out


__all__ = [
    "OutputGate",
    "OutputRefusedError",
    "command_line_paths",
    "current_gate",
    "file_id",
    "open_gate",
]
