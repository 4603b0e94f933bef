"""HDF5 conventions shared by every gmmspeech file type.

Every file carries the attributes ``format`` (e.g. ``"gmmspeech.DiagGMM"``),
``format_version`` (an integer), ``gmmspeech_version`` and, where it applies, the JSON of the
configuration that produced it. Files are written through :mod:`gmmspeech.atomic`.
No pickle is used anywhere: structured values are stored as JSON strings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py

from ._version import __version__
from .errors import GmmSpeechError, ModelFormatError


def write_header(
    f: h5py.File | h5py.Group, fmt: str, version: int, config: dict[str, Any] | None = None
) -> None:
    """Write the standard attributes on an open file or group."""
    f.attrs["format"] = fmt
    f.attrs["format_version"] = int(version)
    f.attrs["gmmspeech_version"] = __version__
    if config is not None:
        f.attrs["config"] = to_json(config)


def to_json(value: Any) -> str:
    """Serialise a JSON-compatible value deterministically (sorted keys)."""
    return json.dumps(value, sort_keys=True)


def from_json(text: Any, default: Any = None) -> Any:
    """Parse a JSON attribute written by :func:`to_json` (``None`` or missing -> default)."""
    if text is None:
        return default
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(str(text))


def open_checked(
    path: str | os.PathLike[str],
    fmt: str,
    max_version: int,
    error: type[GmmSpeechError] = ModelFormatError,
) -> h5py.File:
    """Open a gmmspeech HDF5 file for reading and check its format attributes.

    Parameters
    ----------
    path : path-like
        The file to open.
    fmt : str
        The expected ``format`` attribute.
    max_version : int
        The newest ``format_version`` this code can read.
    error : exception class
        What to raise when the file is missing, not HDF5, truncated, foreign or too new.

    Returns
    -------
    h5py.File
        The open file (read-only); the caller closes it.
    """
    p = Path(path)
    if not p.exists():
        raise error(f"{p}: no such file")
    if p.is_dir():
        raise error(f"{p}: is a folder, expected a {fmt} HDF5 file")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        size = p.stat().st_size
        raise error(
            f"{p}: not a readable HDF5 file ({size} bytes; truncated or not HDF5: {exc}); "
            f"expected a {fmt} file written by gmmspeech"
        ) from None
    got = f.attrs.get("format")
    if isinstance(got, bytes):
        got = got.decode()
    if got != fmt:
        f.close()
        what = "no 'format' attribute" if got is None else f"format {got!r}"
        raise error(f"{p}: {what}, expected format {fmt!r}; is this a gmmspeech {fmt} file?")
    version = f.attrs.get("format_version")
    try:
        version_int = int(version)
    except (TypeError, ValueError):
        f.close()
        raise error(f"{p}: missing or invalid 'format_version' attribute ({version!r})") from None
    if version_int < 1 or version_int > max_version:
        f.close()
        raise error(
            f"{p}: format_version {version_int} is not supported by this gmmspeech "
            f"({__version__}, reads versions 1..{max_version}); upgrade gmmspeech"
        )
    return f
