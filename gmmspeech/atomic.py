"""Atomic output: every file gmmspeech writes goes through :func:`atomic_path`.

The data is written to a temporary file in the target's folder, flushed to disk, then
renamed over the target, so a killed writer never leaves a half-written file and a reader
sees either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import GmmSpeechError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.

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
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise GmmSpeechError(
            f"{target}: the output folder {folder} does not exist; create it first"
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
