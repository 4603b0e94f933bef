"""Atomic output: every file gmmspeech writes goes through :func:`atomic_path`.

The data is written to a temporary file in the target's folder, flushed to disk, then
renamed over the target, so a killed writer never leaves a half-written file and a reader
sees either the old file or the new one. The file gets the permissions the umask allows
(``0666 & ~umask``), as a plain ``open`` would give it. Paths a caller marks with
:func:`protected` (e.g. the user's files in an experiment folder) are never replaced.

Every write, and every rename into place (:func:`replace_into`), passes the running command's
output gate (:mod:`gmmspeech.storage.gate`); what a command may replace is declared through
:mod:`gmmspeech.storage.outputs`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import GmmSpeechError
from .gate import OutputRefusedError, current_gate
from .scratch import owner_tag, remove_stale_temps_of

log = logging.getLogger(__name__)

#: The flag that allows replacing an earlier output of the same kind.
OVERWRITE_FLAG = "--overwrite"


_PROTECTED: dict[tuple[int, int], str] = {}


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


@contextlib.contextmanager
def protected(paths: Iterable[str | os.PathLike[str]], why: str) -> Iterator[None]:
    """Within the block, :func:`atomic_path` refuses to replace any of ``paths``.

    Files are recognised by device and inode, so a symlink or hard link to a protected
    file is protected too. ``why`` completes the refusal message.
    """
    added = []
    for path in paths:
        key = _file_id(Path(path))
        if key is not None and key not in _PROTECTED:
            _PROTECTED[key] = why
            added.append(key)
    try:
        yield
    finally:
        for key in added:
            _PROTECTED.pop(key, None)


def check_protected(target: Path) -> None:
    """Refuse ``target`` when it is :func:`protected`."""
    if not _PROTECTED:
        return
    key = _file_id(target)
    if key is not None and key in _PROTECTED:
        raise OutputRefusedError(f"{target}: not replaced: {_PROTECTED[key]}")


# ------------------------------------------------------------------------- writing
def current_umask() -> int:
    """The process umask (read without changing it where the OS allows)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched. The
    new file's mode is ``0o666 & ~umask``.

    Parameters
    ----------
    path : path-like
        The final output file. Its folder must exist.
    suffix : str
        Suffix of the temporary name (some writers need a recognisable extension).

    Yields
    ------
    Path
        The temporary file to write; it exists (empty) when yielded.

    Raises
    ------
    OutputRefusedError
        ``path`` is protected (:func:`protected`).
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise GmmSpeechError(
            f"{target}: the output folder {folder} does not exist; create it first"
        )
    _check_write(target)
    remove_stale_temps_of(target)  # of this output, left by a killed writer
    prefix = f".{target.name}.{owner_tag()}."
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    tmp = Path(tmp_name)
    try:
        try:
            # mkstemp creates 0600; an output file should be what open() would create
            os.fchmod(fd, 0o666 & ~current_umask())
        finally:
            os.close(fd)
        yield tmp
        replace_into(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if exc.filename not in (None, str(tmp), tmp):
            raise
        # the temporary name means nothing to the user: name the output instead
        raise _os_error(exc, target) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _check_write(target: Path) -> None:
    check_protected(target)
    gate = current_gate()
    if gate is not None:
        gate.check_write(target)


def replace_into(tmp: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Rename the finished temporary file ``tmp`` onto ``target``, through the gate.

    For writers that make their own temporary file in ``target``'s folder; on a refusal
    ``tmp`` is left for the caller to remove.
    """
    dest = Path(target)
    _check_write(dest)
    os.replace(tmp, dest)
    gate = current_gate()
    if gate is not None:
        gate.record(dest)


def remove_file(path: str | os.PathLike[str]) -> None:
    """Delete an output file, through the gate (never an input, nor a protected file)."""
    p = Path(path)
    check_protected(p)
    gate = current_gate()
    if gate is not None:
        gate.check_remove(p)
    p.unlink()


def _os_error(exc: OSError, target: Path) -> OSError:
    """``exc`` about ``target``; the C errno that h5py leaves in its message is recovered."""
    code = exc.errno
    if code is None:
        m = re.search(r"errno = (\d+)", str(exc))
        code = int(m.group(1)) if m else None
    reason = os.strerror(code) if code else (str(exc).splitlines() or ["I/O error"])[0]
    return OSError(code or 0, reason, str(target))


@contextlib.contextmanager
def new_folder_or_nothing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield ``path``; if the block fails, remove the folders under it (and ``path``) that
    did not exist before and are left empty, so a failed writer leaves no empty shell."""
    root = Path(path)
    existed = {p for p in (root, *root.parents) if p.exists()}
    before = {p for p in root.rglob("*") if p.is_dir()} if root.is_dir() else set()
    try:
        yield root
    except BaseException:
        made = [p for p in root.rglob("*") if p.is_dir() and p not in before]
        if root not in existed:
            made.append(root)
        made += [p for p in root.parents if not p.exists() or p not in existed]
        for d in sorted(made, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise


__all__ = [
    "OVERWRITE_FLAG",
    "OutputRefusedError",
    "atomic_path",
    "check_protected",
    "current_umask",
    "new_folder_or_nothing",
    "protected",
    "remove_file",
    "replace_into",
]
