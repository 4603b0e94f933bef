"""Temporary folders and files that a killed run leaves behind, and their removal.

A scratch folder (:func:`scratch_folder`) and the temporary file of an atomic write
(:func:`gmmspeech.storage.atomic.atomic_path`) carry the host and the process id of their
writer in their names. A process killed with SIGKILL cannot remove them; the next writer in
the same folder (or :func:`remove_stale`) does, once that process is gone. Another live
process's temporaries, and every name of another shape, are left alone.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .gate import current_gate

log = logging.getLogger(__name__)

#: The name shapes: ``.gmmspeech-<what>-<host>-<pid>-<random>`` (scratch folders) and
#: ``.<target>.<host>-<pid>.<random><suffix>`` (atomic writes).
_SCRATCH = re.compile(r"^\.gmmspeech-[a-z]+-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-[a-z0-9_]+$")
_ATOMIC = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)\.[a-z0-9_]+\.[A-Za-z0-9]+$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def owner_tag() -> str:
    """``<host>-<pid>`` of this process, as temporary names carry it."""
    return f"{_host()}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: alive
    return True


def _stale(m: re.Match[str] | None) -> bool:
    """Whether a matched temporary name belongs to a process of this host that is gone."""
    return m is not None and m["host"] == _host() and not _alive(int(m["pid"]))


def remove_stale(folder: str | os.PathLike[str], *, recursive: bool = False) -> int:
    """Remove the scratch folders and atomic-write temporaries in ``folder`` (and below it,
    with ``recursive``) whose writer process is gone. Returns how many were removed."""
    root = Path(folder)
    if not root.is_dir():
        return 0
    removed = 0
    entries = root.rglob(".*") if recursive else root.glob(".*")
    for p in sorted(entries, key=lambda q: len(q.parts)):
        if p.is_symlink():
            continue
        if p.is_dir() and _stale(_SCRATCH.match(p.name)):
            log.info("removing %s (left by an interrupted run)", p)
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
        elif p.is_file() and _stale(_ATOMIC.match(p.name)):
            log.info("removing %s (left by an interrupted run)", p)
            with contextlib.suppress(OSError):
                p.unlink()
            removed += 1
    return removed


def remove_stale_temps_of(target: Path) -> None:
    """Remove the temporaries of atomic writes of ``target`` whose writer is gone."""
    folder = target.parent if str(target.parent) else Path(".")
    with contextlib.suppress(OSError):
        for p in folder.glob(f".{glob.escape(target.name)}.*"):
            if _stale(_ATOMIC.match(p.name)) and p.is_file() and not p.is_symlink():
                log.info("removing %s (left by an interrupted run)", p)
                with contextlib.suppress(OSError):
                    p.unlink()


@contextlib.contextmanager
def scratch_folder(parent: str | os.PathLike[str], what: str = "stats") -> Iterator[Path]:
    """A new temporary folder in ``parent``, removed when the block ends.

    Stale scratch folders of killed runs in ``parent`` are removed first. Inside a command,
    the folder is declared to its output gate.

    Parameters
    ----------
    parent : path-like
        An existing folder (e.g. next to the output, so that large temporaries stay on the
        output's disk).
    what : str
        Lowercase letters naming the contents, e.g. ``"stats"``.
    """
    remove_stale(parent)
    path = Path(tempfile.mkdtemp(prefix=f".gmmspeech-{what}-{owner_tag()}-", dir=parent))
    gate = current_gate()
    if gate is not None:
        gate.declare_folder(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


__all__ = ["owner_tag", "remove_stale", "remove_stale_temps_of", "scratch_folder"]
